"""The risk window's per-minute history: the same statistics as the ring it replaced, memory that follows the data.

``RingHistory`` below is the previous implementation (a ring of every minute of the horizon per signal,
allocated at the signal's first reading), kept as the reference: the history that holds only the
minutes with readings must give bit-for-bit the same answers on any stream, reordered, gappy or not.
"""

from __future__ import annotations

import math
import tracemalloc
from array import array
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from cardiogate.core.risk_window import _PLAUSIBLE, HORIZON_MIN, NORMAL, NS_PER_MIN, SIGNALS, VitalsHistory

NS = 1_000_000_000


class _Ring:
    __slots__ = ("high", "last", "last_ns", "low", "minute", "n", "squares", "total", "worst")

    def __init__(self, horizon: int) -> None:
        self.minute = array("q", [-1]) * horizon
        self.last_ns = array("q", [0]) * horizon
        self.n = array("q", [0]) * horizon
        self.total, self.squares, self.low, self.high, self.last, self.worst = (
            array("d", [0.0]) * horizon for _ in range(6))


class RingHistory:
    """The risk window as it was (commit 31377c7): the reference for VitalsHistory."""

    def __init__(self, horizon_min: int = HORIZON_MIN) -> None:
        self.horizon_min = horizon_min
        self._rings: dict[str, _Ring] = {}
        self.latest_ns = 0

    def add(self, signal: str, value: float | None, device_ns: int) -> bool:
        if signal not in _PLAUSIBLE or value is None or not math.isfinite(value):
            return False
        lo, hi = _PLAUSIBLE[signal]
        if not lo <= value <= hi:
            return False
        minute = device_ns // NS_PER_MIN
        if minute <= max(self.latest_ns, device_ns) // NS_PER_MIN - self.horizon_min:
            return False
        ring = self._rings.get(signal)
        if ring is None:
            ring = self._rings[signal] = _Ring(self.horizon_min)
        slot = minute % self.horizon_min
        if ring.minute[slot] != minute:
            ring.minute[slot], ring.n[slot], ring.last_ns[slot] = minute, 1, device_ns
            ring.total[slot], ring.squares[slot] = value, value * value
            ring.low[slot] = ring.high[slot] = ring.last[slot] = ring.worst[slot] = value
        else:
            ring.n[slot] += 1
            ring.total[slot] += value
            ring.squares[slot] += value * value
            ring.low[slot], ring.high[slot] = min(ring.low[slot], value), max(ring.high[slot], value)
            if device_ns >= ring.last_ns[slot]:
                ring.last[slot], ring.last_ns[slot] = value, device_ns
            normal = NORMAL.get(signal)
            if normal is not None and abs(value - normal) > abs(ring.worst[slot] - normal):
                ring.worst[slot] = value
        self.latest_ns = max(self.latest_ns, device_ns)
        return True

    def _valid(self, ring: _Ring) -> npt.NDArray[np.bool_]:
        minutes = np.frombuffer(ring.minute, dtype=np.int64)
        return np.asarray((minutes >= 0) & (minutes > self.latest_ns // NS_PER_MIN - self.horizon_min))

    def minutes(self, signal: str) -> int:
        ring = self._rings.get(signal)
        return 0 if ring is None else int(self._valid(ring).sum())

    def stats(self, signal: str) -> dict[str, float]:
        ring = self._rings.get(signal)
        valid = self._valid(ring) if ring is not None else None
        if ring is None or valid is None or not valid.any():
            return dict.fromkeys(("mean", "min", "max", "std", "last", "worst"), math.nan)

        def col(values: array[float] | array[int]) -> npt.NDArray[np.float64]:
            return np.asarray(np.frombuffer(values, dtype=np.float64 if values.typecode == "d" else np.int64)[valid],
                              dtype=np.float64)

        n = float(col(ring.n).sum())
        mean = float(col(ring.total).sum()) / n
        var = max(float(col(ring.squares).sum()) / n - mean * mean, 0.0)
        worst_values = col(ring.worst)
        normal = NORMAL.get(signal, mean)
        last_ns = np.frombuffer(ring.last_ns, dtype=np.int64)[valid]
        return {"mean": mean, "min": float(col(ring.low).min()), "max": float(col(ring.high).max()),
                "std": math.sqrt(var), "last": float(col(ring.last)[int(np.argmax(last_ns))]),
                "worst": float(worst_values[int(np.argmax(np.abs(worst_values - normal)))])}


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def _stream(seed: int, minutes: int) -> list[tuple[str, float | None, int]]:
    """Readings as a gateway sees them: 1 Hz-ish heart rate and SpO2, a cuff every few minutes, jitter, bursts
    reordered across minute boundaries, duplicated times, values equally far either side of normal, gaps longer
    than a short horizon, and the odd implausible, missing or non-finite value."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, float | None, int]] = []
    t = int(rng.integers(0, 3)) * NS_PER_MIN - 90 * NS  # starts before minute 0 (minutes below 0 never count)
    end = t + minutes * NS_PER_MIN
    while t < end:
        step = int(rng.choice([NS // 2, NS, NS, 2 * NS, 7 * NS, 59 * NS]))
        if rng.random() < 0.002:
            step = int(rng.integers(5, 60)) * NS_PER_MIN  # the watch away for a while
        t += step
        out.append(("hr", float(rng.choice([70.0, 90.0, 80.0, 62.0, 145.0, 80.5])), t))
        if rng.random() < 0.9:
            out.append(("spo2", float(np.round(rng.uniform(85.0, 100.0), 1)), t + int(rng.integers(-3, 3)) * NS))
        if rng.random() < 0.02:
            sys_, dia = float(rng.integers(90, 160)), float(rng.integers(50, 95))
            out += [("sys", sys_, t), ("dia", dia, t), ("map", (sys_ + 2 * dia) / 3, t)]
        if rng.random() < 0.01:
            out.append(("hr", float(rng.choice([900.0, math.nan, math.inf])), t))
        if rng.random() < 0.01:
            out.append(("map", None, t))
    for _ in range(len(out) // 20):  # neighbours swapped: notifications reordered on the radio
        i = int(rng.integers(0, len(out) - 1))
        out[i], out[i + 1] = out[i + 1], out[i]
    for _ in range(len(out) // 200):  # a reading delivered much later than it was taken
        i = int(rng.integers(0, len(out) - 40))
        out.insert(i + int(rng.integers(1, 40)), out.pop(i))
    return out


@pytest.mark.parametrize(("seed", "horizon", "minutes"), [(1, 7, 300), (2, 30, 600), (3, 61, 400), (4, 240, 900),
                                                           (5, HORIZON_MIN, 200)])
def test_the_history_answers_exactly_as_the_ring_did(seed: int, horizon: int, minutes: int) -> None:
    ref, new = RingHistory(horizon), VitalsHistory(horizon)
    for k, (signal, value, t) in enumerate(_stream(seed, minutes)):
        assert new.add(signal, value, t) == ref.add(signal, value, t)
        if k % 17 == 0 or signal in ("sys", "dia", "map"):
            for s in SIGNALS:
                assert new.minutes(s) == ref.minutes(s)
                assert _same(new.stats(s), ref.stats(s)), (k, s, new.stats(s), ref.stats(s))
    for s in SIGNALS:
        assert new.minutes(s) == ref.minutes(s) and _same(new.stats(s), ref.stats(s))


def test_a_late_reading_that_begins_an_older_minute_and_ties_in_worst_follow_the_ring() -> None:
    ref, new = RingHistory(10), VitalsHistory(10)
    readings = [("hr", 90.0, 5 * NS_PER_MIN), ("hr", 70.0, 3 * NS_PER_MIN), ("hr", 80.0, 12 * NS_PER_MIN),
                ("hr", 70.0, 9 * NS_PER_MIN), ("hr", 90.0, 12 * NS_PER_MIN), ("hr", 75.0, 12 * NS_PER_MIN - 1)]
    for signal, value, t in readings:
        assert new.add(signal, value, t) == ref.add(signal, value, t)
        assert new.minutes("hr") == ref.minutes("hr") and _same(new.stats("hr"), ref.stats("hr"))
    assert new.stats("hr")["last"] == 90.0  # the newest reading, not the last to arrive


def _traced(fill: Callable[[], object]) -> int:
    """Bytes still allocated by ``fill`` while what it returns is alive."""
    tracemalloc.start()
    try:
        kept = fill()
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return used


def test_memory_follows_the_minutes_held() -> None:
    def fifty_patients_ten_minutes() -> list[VitalsHistory]:
        patients = [VitalsHistory() for _ in range(50)]
        for second in range(600):
            for h in patients:
                h.add("hr", 72.0, second * NS)
                h.add("spo2", 97.0, second * NS)
                if second % 300 == 0:
                    for signal, value in (("sys", 120.0), ("dia", 80.0), ("map", 93.3)):
                        h.add(signal, value, second * NS)
        return patients

    def a_patient_day() -> VitalsHistory:
        h = VitalsHistory()
        for second in range(0, 25 * 3600, 2):
            h.add("hr", 72.0 + second % 5, second * NS)
            h.add("spo2", 97.0, second * NS)
            if second % 300 == 0:
                for signal, value in (("sys", 120.0), ("dia", 80.0), ("map", 93.3)):
                    h.add(signal, value, second * NS)
        assert h.minutes("hr") == HORIZON_MIN and h.minutes("sys") == HORIZON_MIN // 5
        return h

    # The ring took 26 MB for this from the first minute on; a gateway's soak never sees a patient-day.
    assert _traced(fifty_patients_ten_minutes) < 1_000_000
    # A day of 1 Hz heart rate and SpO2 and a cuff every 5 minutes: 0.52 MB as the ring.
    assert _traced(a_patient_day) < 250_000
