"""The food table (built by :mod:`cardiogate.cloud.care.build_food_table`) and food ranking under constraints.

Suggestions are ranked by what one household serving gives (a cup of beans, not 100 g of dried
parsley), falling back to 100 g when SR gives no serving. A constraint removes foods, it never
re-ranks them: under a sodium cap no suggested food exceeds the cap per 100 g or per serving, and
without a potassium push no suggestion is potassium-rich, whatever nutrient it is suggested for.
Only one food per first word of the description is kept, so a list is not five kinds of beans.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cardiogate.cloud.care.build_food_table import FOOD_TABLE_COLUMNS, SHIPPED_TABLE

# per 100 g field of each nutrient a suggestion can target, and its unit
NUTRIENT_FIELDS: dict[str, tuple[str, str]] = {
    "potassium": ("potassium_mg", "mg"), "magnesium": ("magnesium_mg", "mg"), "calcium": ("calcium_mg", "mg"),
    "iron": ("iron_mg", "mg"), "fibre": ("fibre_g", "g"), "sodium": ("sodium_mg", "mg"),
}

# US FDA 'low sodium' claim (21 CFR 101.61): 140 mg or less per reference amount; applied per 100 g and per serving
LOW_SODIUM_CAP_MG = 140.0
LOW_SODIUM_SOURCE = "US FDA 'low sodium' nutrient content claim, 21 CFR 101.61(b)(4): 140 mg or less per serving"
# National Kidney Foundation: foods with more than 200 mg potassium per portion are high-potassium foods
POTASSIUM_RICH_MG = 200.0
POTASSIUM_RICH_SOURCE = ("National Kidney Foundation, 'Potassium and Your CKD Diet': more than 200 mg per portion "
                         "is a high-potassium food")
# UK FSA front-of-pack 'low' saturated fat: 1.5 g or less per 100 g
LOW_SAT_FAT_G = 1.5
LOW_SAT_FAT_SOURCE = "UK Food Standards Agency front-of-pack guidance: 'low' saturated fat is 1.5 g or less per 100 g"


class FoodTableError(ValueError):
    """A food table file that is not the built table."""


@dataclass(frozen=True)
class Food:
    ndb_no: str
    description: str
    food_group: str
    per_100g: dict[str, float | None]  # the numeric columns (energy_kcal, potassium_mg, ...)
    serving_g: float | None
    serving_desc: str

    @property
    def name(self) -> str:
        """SR's abbreviated upper-case description, readable: 'BEANS,BLACK,CKD' -> 'Beans, black, ckd'."""
        text = ", ".join(p.strip() for p in self.description.split(",") if p.strip()).lower()
        return text[:1].upper() + text[1:]

    def amount(self, column: str) -> float | None:
        return self.per_100g.get(column)

    def per_serving(self, column: str) -> float | None:
        value = self.per_100g.get(column)
        if value is None or self.serving_g is None:
            return None
        return value * self.serving_g / 100.0

    def worst(self, column: str) -> float:
        """The larger of the amount per 100 g and per serving (what a cap must hold for); 0 when unknown."""
        return max(self.amount(column) or 0.0, self.per_serving(column) or 0.0)


@dataclass(frozen=True)
class FoodTable:
    foods: tuple[Food, ...]

    @functools.cached_property
    def by_ndb(self) -> dict[str, Food]:
        return {f.ndb_no: f for f in self.foods}

    def get(self, ndb_no: str) -> Food | None:
        key = ndb_no.strip()
        return self.by_ndb.get(f"{int(key):05d}" if key.isdigit() else key)


def _float(text: str, column: str, line: int) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise FoodTableError(f"line {line}: {column} is not a number: {text!r}") from exc
    if not math.isfinite(value) or value < 0:
        raise FoodTableError(f"line {line}: {column} must be finite and >= 0")
    return value


def parse_food_table(lines: Iterable[str]) -> FoodTable:
    """The table from its CSV text; raises :class:`FoodTableError` on a wrong header or value."""
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != FOOD_TABLE_COLUMNS:
        raise FoodTableError(f"not a food table: the header must be {','.join(FOOD_TABLE_COLUMNS)}")
    numeric = [c for c in FOOD_TABLE_COLUMNS if c not in ("ndb_no", "description", "food_group", "serving_desc")]
    foods = []
    for line, row in enumerate(reader, start=2):
        values = {c: _float(row[c], c, line) for c in numeric}
        if values["sodium_mg"] is None or values["potassium_mg"] is None:
            raise FoodTableError(f"line {line}: sodium and potassium are required")
        serving = values.pop("serving_g")
        foods.append(Food(row["ndb_no"], row["description"], row["food_group"], values, serving,
                          row["serving_desc"] if serving else ""))
    return FoodTable(tuple(foods))


@functools.lru_cache(maxsize=4)
def load_food_table(path: Path | None = None) -> FoodTable:
    """The table at ``path``, or the one shipped with cardiogate (read once per process)."""
    source = path or SHIPPED_TABLE
    try:
        with source.open(encoding="utf-8", newline="") as fh:
            return parse_food_table(fh)
    except OSError as exc:
        raise FoodTableError(f"cannot read the food table {source}: {exc}") from exc


@dataclass(frozen=True)
class Limits:
    """What a suggestion must respect (None: no such limit)."""

    sodium_cap_mg: float | None = None  # per 100 g and per serving
    potassium_cap_mg: float | None = None  # per 100 g and per serving (no potassium push)
    sat_fat_cap_g: float | None = None  # per 100 g

    def allows(self, food: Food) -> bool:
        if self.sodium_cap_mg is not None and food.worst("sodium_mg") > self.sodium_cap_mg:
            return False
        if self.potassium_cap_mg is not None and food.worst("potassium_mg") > self.potassium_cap_mg:
            return False
        return self.sat_fat_cap_g is None or (food.amount("sat_fat_g") or 0.0) <= self.sat_fat_cap_g


def _score(food: Food, column: str) -> float:
    serving = food.per_serving(column)
    return serving if serving is not None else food.amount(column) or 0.0


def rank(table: FoodTable, nutrient: str, limits: Limits, count: int = 5,
         exclude: Iterable[str] = ()) -> list[Food]:
    """The ``count`` foods richest in ``nutrient`` per serving that ``limits`` allow, one per first word."""
    column = NUTRIENT_FIELDS[nutrient][0]
    skip = set(exclude)
    candidates = [f for f in table.foods if f.ndb_no not in skip and (f.amount(column) or 0.0) > 0
                  and limits.allows(f)]
    candidates.sort(key=lambda f: (-_score(f, column), f.ndb_no))
    out: list[Food] = []
    heads: set[str] = set()
    for food in candidates:
        head = food.description.split(",")[0].strip()
        if head in heads:
            continue
        heads.add(head)
        out.append(food)
        if len(out) == count:
            break
    return out


def search(table: FoodTable, text: str, limit: int) -> Sequence[Food]:
    """Foods whose description holds every word of ``text`` (case-insensitive); prefix matches first."""
    words = text.upper().replace(",", " ").split()
    hits = [f for f in table.foods if all(w in f.description.upper() for w in words)]
    hits.sort(key=lambda f: (not f.description.upper().startswith(words[0]) if words else False,
                             len(f.description), f.ndb_no))
    return hits[:limit]
