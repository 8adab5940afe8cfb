"""The rule baseline risk model: NEWS2 boundaries, levels, and honest reports."""

from __future__ import annotations

import pytest

from cardiogate.cloud.risk import (
    MODEL_NAME,
    MODEL_VERSION,
    News2Baseline,
    RiskModel,
    band_of,
    score_pulse,
    score_respiration_rate,
    score_spo2_scale1,
    score_systolic,
)
from cardiogate.proto.v1 import features_pb2


@pytest.mark.parametrize(("value", "points"), [(40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1),
                                               (111, 2), (130, 2), (131, 3), (90.4, 0), (90.5, 1)])
def test_pulse(value: float, points: int) -> None:
    assert score_pulse(value) == points


@pytest.mark.parametrize(("value", "points"), [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)])
def test_spo2_scale1(value: float, points: int) -> None:
    assert score_spo2_scale1(value) == points


@pytest.mark.parametrize(("value", "points"), [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0),
                                               (220, 3)])
def test_systolic(value: float, points: int) -> None:
    assert score_systolic(value) == points


@pytest.mark.parametrize(("value", "points"), [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)])
def test_respiration_rate(value: float, points: int) -> None:
    assert score_respiration_rate(value) == points


@pytest.mark.parametrize(("total", "three", "band"), [(0, False, "low"), (4, False, "low"), (3, True, "low-medium"),
                                                      (5, False, "medium"), (6, True, "medium"), (7, False, "high")])
def test_bands(total: int, three: bool, band: str) -> None:
    assert band_of(total, three) == band


def window(**fields: object) -> features_pb2.FeatureWindow:
    return features_pb2.FeatureWindow(patient="p", width_s=300, start_device_time_ns=0,
                                      end_device_time_ns=300 * 10**9, **fields)  # type: ignore[arg-type]


def test_report_names_the_baseline_and_scores_news2() -> None:
    model: RiskModel = News2Baseline()
    r = model.assess(window(hr_mean=135.0, spo2_mean=91.0, systolic_mean=120.0, af_burden=0.5, revision=2))
    assert (r.model_name, r.model_version, r.baseline) == (MODEL_NAME, MODEL_VERSION, True) == (
        "news2-baseline", "1", True)
    assert r.news2 == 6 and r.level == "medium" and r.revision == 2
    assert any("rule baseline" in s for s in r.recommendations)
    names = [f.name for f in r.factors]
    assert names == ["news2", "af_burden"]
    assert "temperature" in r.factors[0].description and "respiration_rate" in r.factors[0].description
    assert r.score == pytest.approx(0.6 * 6 / 7 + 0.1)
    assert r.confidence == pytest.approx(4 / 5)
    assert 0.0 <= r.score <= 1.0


def test_single_three_is_low_medium_and_seven_is_high() -> None:
    assert News2Baseline().assess(window(hr_mean=70.0, spo2_mean=91.0)).level == "low-medium"
    high = News2Baseline().assess(window(hr_mean=140.0, spo2_mean=90.0, systolic_mean=95.0))
    assert (high.news2, high.level) == (8, "high") and high.score <= 1.0


def test_trend_and_alarms() -> None:
    r = News2Baseline().assess(window(hr_mean=100.0, alarm_counts={"high": 1, "low": 2}),
                               previous=window(hr_mean=85.0))
    factors = {f.name: f for f in r.factors}
    assert factors["hr_trend"].value == 15.0 and factors["hr_trend"].contribution == pytest.approx(0.05)
    assert factors["alarms"].value == 3.0 and "1 high" in factors["alarms"].description
    assert any("high-priority" in s for s in r.recommendations)


def test_empty_window_gives_a_report_not_a_crash() -> None:
    r = News2Baseline().assess(window(hr_mean=float("nan")))
    assert (r.news2, r.level, r.score, r.confidence) == (-1, "low", 0.0, 0.0)
    assert r.baseline and any("rule baseline" in f.description for f in r.factors)
