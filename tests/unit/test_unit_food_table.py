"""The shipped food table: it matches a rebuild from SR28, the build keeps plain foods only, and ranking
respects the sodium cap and the no-potassium-push constraint."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from cardiogate.cloud.care.build_food_table import FOOD_TABLE_COLUMNS, SHIPPED_TABLE, build_text, keep
from cardiogate.cloud.care.foods import (
    LOW_SODIUM_CAP_MG,
    POTASSIUM_RICH_MG,
    Food,
    FoodTable,
    FoodTableError,
    Limits,
    load_food_table,
    parse_food_table,
    rank,
    search,
)

pytestmark = pytest.mark.care

REPO = Path(__file__).resolve().parents[2]
ABBREV = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "usda-sr28" / "ABBREV.csv"


def test_the_shipped_table_is_the_build_of_abbrev() -> None:
    if not ABBREV.is_file():
        pytest.skip(f"USDA SR28 ABBREV.csv is not at {ABBREV} (set CARDIOGATE_DATA_DIR)")
    assert build_text(ABBREV) == SHIPPED_TABLE.read_text(encoding="utf-8")


def test_the_shipped_table_is_compact_and_complete() -> None:
    table = load_food_table()
    assert 300 <= len(table.foods) <= 2000
    assert len({f.ndb_no for f in table.foods}) == len(table.foods)
    header = SHIPPED_TABLE.read_text(encoding="utf-8").splitlines()[0]
    assert tuple(header.split(",")) == FOOD_TABLE_COLUMNS
    for food in table.foods:
        assert food.amount("sodium_mg") is not None and food.amount("potassium_mg") is not None
        assert food.food_group  # every kept food comes from a kept group


@pytest.mark.parametrize(("ndb", "description", "kept"), [
    (9040, "BANANAS,RAW", True),
    (11090, "BROCCOLI,RAW", True),
    (11091, "BROCCOLI,CKD,BLD,DRND,WO/SALT", True),
    (11092, "BROCCOLI,CKD,BLD,DRND,W/SALT", False),
    (12087, "CASHEW NUTS,DRY RSTD,W/SALT", False),
    (12585, "NUTS,ALMONDS,OIL RSTD,WO/SALT", True),
    (9032, "APRICOTS,DRIED,SULFURED,UNCKD", False),
    (1093, "MILK,DRY,NONFAT,REG,WO/ ADDED VIT A & VIT D", False),
    (3112, "BABYFOOD,VEG,CARROTS,STR", False),
    (21138, "FAST FOODS,HAMBURGER", False),
    (7057, "SAUSAGE,PORK,CKD", False),
    (10008, "PORK,FRSH,CARCASS,SEPARABLE LN&FAT,RAW", False),
    (13069, 'BEEF,FLANK,STEAK,LN,0" FAT,CHOIC,CKD,BRSD', True),
    (13070, 'BEEF,FLANK,STEAK,LN & FAT,0" FAT,CHOIC,RAW', False),
    (15016, "FISH,COD,ATLANTIC,CKD,DRY HEAT", True),  # dry heat is cooking, not drying
    (15017, "FISH,COD,ATLANTIC,DRIED AND SALTED", False),
    (16016, "BEANS,BLACK,MATURE SEEDS,RAW", False),
    (16015, "BEANS,BLACK,MATURE SEEDS,CKD,BLD,WO/SALT", True),
    (11355, "POTATOES,RUSSET,FLESH & SKN,BKD", True),
    (11886, "TOMATOES,RED,RIPE,CND,W/ GREEN CHILIES", False),
    (11887, "TOMATO PRODUCTS,CND,PASTE,WO/ SALT ADDED", True),
    (4053, "OIL,OLIVE,SALAD OR COOKING", False),
    (99001, "SOMETHING ELSE", False),
])
def test_the_build_keeps_whole_plain_foods(ndb: int, description: str, kept: bool) -> None:
    assert keep(ndb, description) is kept


def _food(ndb: str, potassium: float, sodium: float, serving: float | None = 100.0, sat: float = 0.0) -> Food:
    return Food(ndb, f"FOOD{ndb},RAW", "vegetables", {"potassium_mg": potassium, "sodium_mg": sodium,
                                                      "sat_fat_g": sat, "magnesium_mg": 10.0},
                serving, "1 cup" if serving else "")


def test_ranking_respects_the_sodium_cap_per_100g_and_per_serving() -> None:
    salty = _food("00001", 900.0, 400.0)
    salty_serving = _food("00002", 800.0, 100.0, serving=200.0)  # 100 mg per 100 g, 200 mg per serving
    plain = _food("00003", 500.0, 10.0)
    table = FoodTable((salty, salty_serving, plain))
    assert [f.ndb_no for f in rank(table, "potassium", Limits())] == ["00002", "00001", "00003"]  # per serving
    capped = rank(table, "potassium", Limits(sodium_cap_mg=LOW_SODIUM_CAP_MG))
    assert [f.ndb_no for f in capped] == ["00003"]


def test_ranking_without_potassium_push_drops_potassium_rich_foods_for_any_nutrient() -> None:
    rich = _food("00001", 450.0, 5.0)
    rich_serving = _food("00002", 150.0, 5.0, serving=250.0)  # 375 mg per serving
    lean = _food("00003", 120.0, 5.0)
    table = FoodTable((rich, rich_serving, lean))
    limits = Limits(potassium_cap_mg=POTASSIUM_RICH_MG)
    assert [f.ndb_no for f in rank(table, "magnesium", limits)] == ["00003"]
    assert rank(table, "potassium", limits) == [lean]


def test_ranking_respects_both_caps_on_the_real_table() -> None:
    table = load_food_table()
    limits = Limits(sodium_cap_mg=LOW_SODIUM_CAP_MG, potassium_cap_mg=POTASSIUM_RICH_MG)
    for nutrient in ("magnesium", "calcium", "iron", "fibre"):
        foods = rank(table, nutrient, limits, count=10)
        assert foods, nutrient
        assert all(f.worst("sodium_mg") <= LOW_SODIUM_CAP_MG for f in foods)
        assert all(f.worst("potassium_mg") <= POTASSIUM_RICH_MG for f in foods)
        heads = [f.description.split(",")[0] for f in foods]
        assert len(heads) == len(set(heads))  # one food per kind


def test_unconstrained_potassium_foods_include_what_a_dietitian_would_name() -> None:
    top = rank(load_food_table(), "potassium", Limits(), count=5)
    assert top[0].per_serving("potassium_mg") is not None and top[0].per_serving("potassium_mg") > 800  # type: ignore[operator]


def test_search_finds_every_word_and_prefers_prefix_matches() -> None:
    hits = search(load_food_table(), "banana raw", 5)
    assert hits and hits[0].description.startswith("BANANAS") and all("RAW" in h.description for h in hits)
    assert search(load_food_table(), "nothing-like-this", 5) == []
    assert load_food_table().get("9040") is not None  # an NDB number without its leading zero


def test_a_wrong_food_table_is_refused() -> None:
    with pytest.raises(FoodTableError, match="header"):
        parse_food_table(io.StringIO("a,b\n1,2\n"))
    header = ",".join(FOOD_TABLE_COLUMNS)
    row = "09040,BANANAS,fruits,89,x,27,1,5,0.26,2.6,0.112,0,118,1 medium"
    with pytest.raises(FoodTableError, match="not a number"):
        parse_food_table(io.StringIO(f"{header}\n{row}\n"))
