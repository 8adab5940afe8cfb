"""NEWS2 (RCP 2017, SpO2 scale 1): every table boundary, rounding, risk bands, partial scores, rhythm flags."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardiogate.core.news2 import (
    news2,
    score_consciousness,
    score_pulse,
    score_respiration_rate,
    score_spo2_scale1,
    score_systolic,
    score_temperature,
)

# (value, points) at both sides of every boundary of the RCP chart.
TABLES: dict[str, tuple[Callable[[float], int], list[tuple[float, int]]]] = {
    "respiration_rate": (score_respiration_rate, [
        (4, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (40, 3)]),
    "spo2": (score_spo2_scale1, [
        (80, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]),
    "systolic": (score_systolic, [
        (60, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3), (260, 3)]),
    "pulse": (score_pulse, [
        (30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3),
        (180, 3)]),
    "temperature": (score_temperature, [
        (34.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2),
        (41.0, 2)]),
}
CASES = [(name, value, points) for name, (_, rows) in TABLES.items() for value, points in rows]


@pytest.mark.parametrize(("name", "value", "points"), CASES)
def test_rcp_table_boundaries(name: str, value: float, points: int) -> None:
    assert TABLES[name][0](value) == points


@pytest.mark.parametrize(("value", "points"), [(90.4, 0), (90.5, 1), (110.49, 1), (130.5, 3)])
def test_pulse_is_rounded_as_charted_halves_up(value: float, points: int) -> None:
    assert score_pulse(value) == points


@pytest.mark.parametrize(("value", "points"), [(35.04, 3), (35.05, 1), (38.04, 0), (38.05, 1), (39.05, 2)])
def test_temperature_is_rounded_to_a_tenth(value: float, points: int) -> None:
    assert score_temperature(value) == points


def test_consciousness_and_oxygen() -> None:
    assert score_consciousness("A") == 0
    assert [score_consciousness(level) for level in ("C", "V", "P", "U")] == [3, 3, 3, 3]
    assert news2(on_oxygen=True).subscores["air_or_oxygen"] == 2
    assert news2(on_oxygen=False).subscores["air_or_oxygen"] == 0


def full(**overrides: object) -> dict[str, object]:
    """A complete, all-normal observation set (total 0) with some values replaced."""
    base: dict[str, object] = {"pulse": 70, "spo2": 98, "systolic": 125, "respiration_rate": 16,
                               "temperature": 37.0, "consciousness": "A", "on_oxygen": False}
    return {**base, **overrides}


def test_all_normal_is_zero_and_complete() -> None:
    result = news2(**full())  # type: ignore[arg-type]
    assert (result.total, result.band, result.partial, result.missing, result.flags) == (0, "low", False, (), ())
    assert set(result.subscores.values()) == {0}


@pytest.mark.parametrize(("overrides", "total", "band"), [
    ({"pulse": 95}, 1, "low"),
    ({"pulse": 95, "respiration_rate": 22, "temperature": 38.5}, 4, "low"),
    ({"spo2": 91}, 3, "low-medium"),  # a single red score
    ({"consciousness": "V"}, 3, "low-medium"),
    ({"pulse": 115, "respiration_rate": 22, "on_oxygen": True}, 6, "medium"),
    ({"pulse": 115, "respiration_rate": 22, "spo2": 95}, 5, "medium"),
    ({"pulse": 135, "respiration_rate": 26}, 6, "medium"),  # two 3s: the total decides
    ({"pulse": 115, "respiration_rate": 22, "spo2": 93, "systolic": 105, "temperature": 38.5}, 8, "high"),
    ({"pulse": 135, "spo2": 91, "consciousness": "U"}, 9, "high"),
    ({"pulse": 115, "respiration_rate": 22, "spo2": 95, "on_oxygen": True}, 7, "high"),
])
def test_totals_and_risk_bands(overrides: dict[str, object], total: int, band: str) -> None:
    result = news2(**full(**overrides))  # type: ignore[arg-type]
    assert (result.total, result.band) == (total, band)


def test_partial_score_lists_what_is_missing() -> None:
    result = news2(pulse=135, spo2=97)
    assert result.partial
    assert result.missing == ("respiration_rate", "air_or_oxygen", "systolic", "consciousness", "temperature")
    assert result.subscores["pulse"] == 3 and result.subscores["systolic"] is None
    assert (result.total, result.band, result.flags) == (3, "low-medium", ("partial",))


@pytest.mark.parametrize(("rhythm", "flag"), [("af", "rhythm_af"), ("other", "rhythm_other"),
                                               ("normal", None), ("noisy", None)])
def test_rhythm_adds_an_advisory_flag_never_points(rhythm: str, flag: str | None) -> None:
    plain = news2(**full(pulse=115))  # type: ignore[arg-type]
    with_rhythm = news2(**full(pulse=115, rhythm=rhythm))  # type: ignore[arg-type]
    assert with_rhythm.total == plain.total == 2
    assert with_rhythm.band == plain.band
    assert with_rhythm.flags == ((flag,) if flag else ())


VITALS = st.fixed_dictionaries({}, optional={
    "pulse": st.floats(20, 220), "spo2": st.floats(60, 100), "systolic": st.floats(50, 260),
    "respiration_rate": st.floats(3, 50), "temperature": st.floats(32, 42),
    "consciousness": st.sampled_from(["A", "C", "V", "P", "U"]), "on_oxygen": st.booleans()})


@given(VITALS, VITALS)
def test_total_is_the_sum_and_a_partial_total_is_a_lower_bound(some: dict[str, object],
                                                                more: dict[str, object]) -> None:
    partial = news2(**some)  # type: ignore[arg-type]
    assert partial.total == sum(v for v in partial.subscores.values() if v is not None)
    assert all(0 <= v <= 3 for v in partial.subscores.values() if v is not None)
    assert partial.partial == (len(some) < 7)
    fuller = news2(**{**more, **some})  # type: ignore[arg-type]
    assert fuller.total >= partial.total  # measuring more can only add points
    expected = ("high" if partial.total >= 7 else "medium" if partial.total >= 5
                else "low-medium" if 3 in partial.subscores.values() else "low")
    assert partial.band == expected
