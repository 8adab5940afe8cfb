"""NEWS2 (Royal College of Physicians, 2017) early-warning score, SpO2 scale 1, transparent sub-scores.

In the kernel because two parts score it and must agree: the gateway's alarm engine on live vitals
and the cloud's risk baseline on feature windows.

Scoring table (value -> points), exactly as the RCP chart, applied to values rounded the way they are
charted (integers; temperature to 0.1 °C; halves round up)::

    respiration rate /min   <=8: 3   9-11: 1   12-20: 0   21-24: 2   >=25: 3
    SpO2 scale 1 %          <=91: 3  92-93: 2  94-95: 1   >=96: 0
    air or oxygen           air: 0   oxygen: 2
    systolic BP mmHg        <=90: 3  91-100: 2 101-110: 1 111-219: 0  >=220: 3
    pulse /min              <=40: 3  41-50: 1  51-90: 0   91-110: 1  111-130: 2  >=131: 3
    consciousness           A: 0     new confusion (C), V, P or U: 3
    temperature °C          <=35.0: 3  35.1-36.0: 1  36.1-38.0: 0  38.1-39.0: 1  >=39.1: 2

Clinical risk: total >= 7 high; 5-6 medium; otherwise a 3 in any single parameter is low-medium; else low.

Missing parameters score nothing and mark the result ``partial``: a partial total is a lower bound of the
full one (no parameter scores below 0), so alarming on it can never over-alarm, only under-alarm.

SpO2 scale 2 (target 88-92 % in hypercapnic respiratory failure) is a clinical decision and not offered:
for such patients lower the ``spo2_low`` alarm limits per patient instead.

Rhythm: the on-device rhythm model's class adds an advisory flag (``rhythm_af``, ``rhythm_other``) and never
changes the total. NEWS2 is a validated, calibrated score; adding points for a model output would make it
a different, unvalidated score and no longer comparable to the chart; the pulse rate already carries the
haemodynamic effect of a fast arrhythmia, and AF has its own advisory alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Band = Literal["low", "low-medium", "medium", "high"]
Consciousness = Literal["A", "C", "V", "P", "U"]
Rhythm = Literal["normal", "af", "other", "noisy"]
PARAMETERS = ("respiration_rate", "spo2", "air_or_oxygen", "systolic", "pulse", "consciousness", "temperature")


@dataclass(frozen=True, slots=True)
class News2Result:
    """Total, each parameter's points (None = not measured), the risk band and advisory flags."""

    total: int
    subscores: dict[str, int | None]
    band: Band
    partial: bool
    missing: tuple[str, ...]
    flags: tuple[str, ...]


def _charted(value: float) -> int:
    """Round as charted: to the nearest integer, halves up (not banker's rounding)."""
    return math.floor(value + 0.5)


def score_respiration_rate(rate: float) -> int:
    r = _charted(rate)
    if r <= 8:
        return 3
    if r <= 11:
        return 1
    if r <= 20:
        return 0
    return 2 if r <= 24 else 3


def score_spo2_scale1(spo2: float) -> int:
    s = _charted(spo2)
    if s <= 91:
        return 3
    if s <= 93:
        return 2
    return 1 if s <= 95 else 0


def score_air_or_oxygen(on_oxygen: bool) -> int:
    return 2 if on_oxygen else 0


def score_systolic(systolic: float) -> int:
    s = _charted(systolic)
    if s <= 90:
        return 3
    if s <= 100:
        return 2
    if s <= 110:
        return 1
    return 0 if s <= 219 else 3


def score_pulse(pulse: float) -> int:
    p = _charted(pulse)
    if p <= 40:
        return 3
    if p <= 50:
        return 1
    if p <= 90:
        return 0
    if p <= 110:
        return 1
    return 2 if p <= 130 else 3


def score_consciousness(level: Consciousness) -> int:
    return 0 if level == "A" else 3


def score_temperature(celsius: float) -> int:
    tenths = math.floor(celsius * 10 + 0.5 + 1e-9)  # integer tenths avoid 35.05-style float surprises
    if tenths <= 350:
        return 3
    if tenths <= 360:
        return 1
    if tenths <= 380:
        return 0
    return 1 if tenths <= 390 else 2


def band_of(total: int, any_three: bool) -> Band:
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    return "low-medium" if any_three else "low"


def news2(*, pulse: float | None = None, spo2: float | None = None, systolic: float | None = None,
          respiration_rate: float | None = None, temperature: float | None = None,
          consciousness: Consciousness | None = None, on_oxygen: bool | None = None,
          rhythm: Rhythm | None = None) -> News2Result:
    """Score whatever is measured; unmeasured parameters are listed in ``missing``."""
    subscores: dict[str, int | None] = {
        "respiration_rate": None if respiration_rate is None else score_respiration_rate(respiration_rate),
        "spo2": None if spo2 is None else score_spo2_scale1(spo2),
        "air_or_oxygen": None if on_oxygen is None else score_air_or_oxygen(on_oxygen),
        "systolic": None if systolic is None else score_systolic(systolic),
        "pulse": None if pulse is None else score_pulse(pulse),
        "consciousness": None if consciousness is None else score_consciousness(consciousness),
        "temperature": None if temperature is None else score_temperature(temperature),
    }
    points = [s for s in subscores.values() if s is not None]
    total = sum(points)
    missing = tuple(name for name in PARAMETERS if subscores[name] is None)
    flags: list[str] = []
    if missing:
        flags.append("partial")
    if rhythm == "af":
        flags.append("rhythm_af")
    elif rhythm == "other":
        flags.append("rhythm_other")
    return News2Result(total, subscores, band_of(total, 3 in points), bool(missing), missing, tuple(flags))
