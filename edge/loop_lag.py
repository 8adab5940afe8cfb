"""How late the gateway's event loop wakes up: the one number that shows when something blocks it.

Every BLE notification, alarm decision and MQTT publish runs on one asyncio loop, so anything
that blocks it (a disk write, a long computation) delays all of them. A small task sleeps for
a fixed interval and records how much later than asked it woke. The latest value and a
histogram go to the metrics registry; recent samples stay in memory so tests and benchmarks
can read percentiles, and the gateway logs a summary with its status.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass

from cardiogate.core import metrics
from cardiogate.core.logs import get_logger

log = get_logger(__name__)

_LATEST = metrics.gauge("gateway_loop_lag_latest_seconds", "How late the gateway's event loop last woke up")
_LAG = metrics.histogram("gateway_loop_lag_seconds", "How late the gateway's event loop woke up from a timed sleep",
                         buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0))


@dataclass(frozen=True, slots=True)
class LagSummary:
    """Loop lag over the samples kept, in seconds."""

    samples: int
    p50_s: float
    p99_s: float
    max_s: float


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile (0-100) of an ascending list; 0 for an empty one."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class LoopLagMonitor:
    """Measures the running loop's wake-up lag every ``interval_s``; keeps the last ``keep`` samples."""

    def __init__(self, interval_s: float = 0.1, keep: int = 36_000, warn_s: float = 0.1) -> None:
        """``warn_s``: a wake-up this late is logged as a stall (alarms were held up that long)."""
        self.interval_s = interval_s
        self.warn_s = warn_s
        self._samples: deque[float] = deque(maxlen=keep)
        self.max_s = 0.0
        self.count = 0

    def record(self, lag_s: float) -> None:
        lag_s = max(0.0, lag_s)
        self._samples.append(lag_s)
        self.count += 1
        self.max_s = max(self.max_s, lag_s)
        _LATEST.set(lag_s)
        _LAG.observe(lag_s)
        if lag_s >= self.warn_s:
            log.warning("event loop stalled", lag_ms=round(lag_s * 1e3, 1))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(loop.time() - asked)

    def summary(self) -> LagSummary:
        values = sorted(self._samples)
        return LagSummary(len(values), percentile(values, 50), percentile(values, 99), max(values, default=0.0))
