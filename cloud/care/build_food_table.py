"""Build the compact food table the nutrition analysis suggests from, out of USDA SR28's ``ABBREV.csv``.

The USDA National Nutrient Database for Standard Reference, release 28 (public domain) lists 8,790
foods. Suggestions should be foods a patient can simply eat, so the build keeps whole, plain foods
only. The rule, applied in this order:

1. Food group: SR numbers its foods by group, the NDB number's leading digits being the group code
   (01 dairy and egg, 05 poultry, 09 fruits, ...). Kept: dairy and egg, poultry, fruits, pork,
   vegetables, nuts and seeds, beef, finfish and shellfish, legumes, lamb/veal/game, cereal grains
   and pasta. Everything else goes (spices, baby foods, fats and oils, soups and sauces, sausages and
   luncheon meats, breakfast cereals, beverages, baked goods, sweets, fast foods, meals, snacks,
   restaurant foods, and numbers outside the group scheme).
2. Processing: a description naming salt added (``W/ SALT``, ``SALTED``, brine), curing or smoking,
   pickling, drying, powders, concentrates, dehydrated or freeze-dried forms, supplements, baby food,
   formulas, imitation products, syrups, sauces, spreads, butter and cream, flours, meals and starches,
   breading, batter, frying or a brand name is dropped.
   ``WO/ SALT``, ``UNSALTED`` and ``NO SALT`` count as plain; "dry heat" and "dry roasted" are
   cooking, not drying.
3. Eaten as described: meat, fish, legume and grain entries are kept only when cooked (SR's raw meat,
   dry mature seeds and dry grain are not what one eats); red meat only as lean cuts ("LN", never
   "lean and fat"), poultry without skin. Canned foods are kept only with no salt added.
4. Completeness: sodium and potassium per 100 g must be known (the constraints need them).

Output columns: the NDB number (5 digits), SR's short description, the derived food group, energy,
potassium, magnesium, sodium, calcium, iron, total dietary fibre, saturated fat, cholesterol (all per
100 g, as SR gives them), and SR's first household weight (grams and description). Rows are sorted by
NDB number and numbers written in one fixed format, so the same ``ABBREV.csv`` always gives the same
bytes: the shipped ``food_table.csv`` can be checked against a rebuild.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

FOOD_TABLE_COLUMNS: tuple[str, ...] = (
    "ndb_no", "description", "food_group", "energy_kcal", "potassium_mg", "magnesium_mg", "sodium_mg",
    "calcium_mg", "iron_mg", "fibre_g", "sat_fat_g", "cholesterol_mg", "serving_g", "serving_desc",
)

# ABBREV.csv column -> our column (per 100 g)
_NUMERIC: dict[str, str] = {
    "energy_kcal": "Energ_Kcal", "potassium_mg": "Potassium_(mg)", "magnesium_mg": "Magnesium_(mg)",
    "sodium_mg": "Sodium_(mg)", "calcium_mg": "Calcium_(mg)", "iron_mg": "Iron_(mg)", "fibre_g": "Fiber_TD_(g)",
    "sat_fat_g": "FA_Sat_(g)", "cholesterol_mg": "Cholestrl_(mg)", "serving_g": "GmWt_1",
}
_REQUIRED_SOURCE = ("NDB_No", "Shrt_Desc", "GmWt_Desc1", *_NUMERIC.values())

# SR28 food group codes (FD_GROUP.txt) kept, by their code
FOOD_GROUPS: dict[int, str] = {
    1: "dairy and egg", 5: "poultry", 9: "fruits", 10: "pork", 11: "vegetables", 12: "nuts and seeds",
    13: "beef", 15: "finfish and shellfish", 16: "legumes", 17: "lamb, veal and game", 20: "cereal grains and pasta",
}
_COOKED_ONLY = frozenset({5, 10, 13, 15, 16, 17, 20})

_PLAIN_SALT = re.compile(r"\b(WO/ ?SALT|WITHOUT SALT|UNSALTED|NO SALT(?: ADDED)?|LO NA|LOW SODIUM)\b")
_EXCLUDED = re.compile(
    r"\b(W/ ?SALT|WITH SALT|SALTED|SALT|BRINE|CURED|SMOKED|PICKLED|PICKLES|DRIED|DRY|DEHYD|DEHYDRATED|"
    r"POWDER|POWDERED|PDR|CONC|CONCD|CONCENTRATE|FREEZE-DRIED|SUPPLEMENT|BABYFOOD|BABYFD|INFANT|FORMULA|"
    r"IMITN|IMITATION|SYRUP|SAUCE|GRAVY|BREADED|BATTERED|BATTER|FRIED|FAST FOOD|RESTAURANT|MIX|PREP|"
    r"SWTND|SWEETENED|CANDIED|JERKY|SPRD|SPREAD|FLR|FLOUR|STARCH|BUTTER|CRM|CREAM|WHIPPED|DSSRT|DESSERT|"
    r"MEAL|DEFATTED|CRUDE)\b|'S\b")
# red meat: lean cuts only ("LN"), never "lean and fat" or fat trimmings; poultry: meat without skin
_LEAN = re.compile(r"\bLN\b")
_WITH_FAT = re.compile(r"&\s*F|\bAND FAT\b|(?:^|,)FAT,|\bINTERMUSCULAR\b|\bSEPARABLE FAT\b")
_SKIN = re.compile(r"\b(SKN|SKIN)\b")
_RED_MEAT = frozenset({10, 13, 17})
# cooking methods that name "dry" without the food being dried
_DRY_COOKING = re.compile(r"\bDRY (HEAT|RSTD|ROASTED)\b")
_COOKED = re.compile(r"\b(CKD|COOKED|RSTD|ROASTED|BRSD|BRAISED|BKD|BAKED|BRLD|BROILED|GRILLED|STWD|STEWED|DRY HEAT|"
                     r"SIMMRD|SIMMERED|BLD|BOILED|STMD|STEAMED|POACHED|MICROWAVED)\b")
_CANNED = re.compile(r"\b(CND|CANNED)\b")


class FoodTableError(ValueError):
    """ABBREV.csv is not the table the build expects."""


def food_group(ndb_no: int) -> str | None:
    """The SR food group of an NDB number, or None when the number falls outside the kept groups."""
    return FOOD_GROUPS.get(ndb_no // 1000)


def keep(ndb_no: int, description: str) -> bool:
    """The build's rule (see the module docstring) for one food."""
    code = ndb_no // 1000
    if code not in FOOD_GROUPS:
        return False
    text = description.upper()
    plain_salt = _PLAIN_SALT.search(text) is not None
    unsalted = _DRY_COOKING.sub(" ", _PLAIN_SALT.sub(" ", text))
    if _EXCLUDED.search(unsalted):
        return False
    if _CANNED.search(text) and not plain_salt:
        return False
    if code in _COOKED_ONLY and _COOKED.search(text) is None:
        return False
    if code in _RED_MEAT and (_LEAN.search(text) is None or _WITH_FAT.search(text) is not None):
        return False
    return not (code == 5 and _SKIN.search(text) is not None)


def _number(text: str, column: str, ndb: str) -> float | None:
    value = text.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise FoodTableError(f"NDB {ndb}: {column} is not a number: {value!r}") from exc
    if not math.isfinite(number) or number < 0:
        raise FoodTableError(f"NDB {ndb}: {column} must be a finite number >= 0, not {value!r}")
    return number


def _format(number: float | None) -> str:
    return "" if number is None else f"{number:.6g}"


def derive_rows(source: Iterable[dict[str, str]]) -> Iterator[dict[str, str]]:
    """The kept foods of ABBREV.csv rows, in our columns (unsorted)."""
    for row in source:
        ndb = row["NDB_No"].strip()
        if not ndb.isdigit():
            raise FoodTableError(f"NDB_No must be digits, not {ndb!r}")
        description = row["Shrt_Desc"].strip()
        if not keep(int(ndb), description):
            continue
        numbers = {ours: _number(row[theirs], theirs, ndb) for ours, theirs in _NUMERIC.items()}
        if numbers["sodium_mg"] is None or numbers["potassium_mg"] is None:
            continue
        serving_desc = row["GmWt_Desc1"].strip() if numbers["serving_g"] else ""
        if not serving_desc or not numbers["serving_g"]:
            numbers["serving_g"], serving_desc = None, ""
        out = {"ndb_no": f"{int(ndb):05d}", "description": description, "food_group": food_group(int(ndb)) or "",
               "serving_desc": serving_desc}
        out.update({k: _format(v) for k, v in numbers.items()})
        yield out


def build_text(abbrev: Path) -> str:
    """The derived table as CSV text (deterministic: sorted by NDB number, fixed number format)."""
    with abbrev.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _REQUIRED_SOURCE if c not in (reader.fieldnames or [])]
        if missing:
            raise FoodTableError(f"{abbrev} is not SR28's ABBREV.csv: missing columns {missing}")
        rows = sorted(derive_rows(reader), key=lambda r: r["ndb_no"])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FOOD_TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def build(abbrev: Path, out: Path) -> int:
    """Write the derived table to ``out``; returns its number of foods."""
    text = build_text(abbrev)
    out.write_text(text, encoding="utf-8")
    return text.count("\n") - 1


SHIPPED_TABLE = Path(__file__).resolve().parent / "food_table.csv"
