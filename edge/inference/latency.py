"""Per-inference latency, kept as a bounded window so p50/p99 reflect recent behaviour."""

from __future__ import annotations

from collections import deque

import numpy as np


class LatencyRecorder:
    def __init__(self, keep: int = 2048) -> None:
        self._ms: deque[float] = deque(maxlen=keep)
        self.count = 0

    def record(self, milliseconds: float) -> None:
        self._ms.append(milliseconds)
        self.count += 1

    def percentile(self, q: float) -> float | None:
        """The q-th percentile in ms over the kept window, or None before the first inference."""
        return float(np.percentile(np.fromiter(self._ms, dtype=np.float64), q)) if self._ms else None

    @property
    def p50_ms(self) -> float | None:
        return self.percentile(50.0)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile(99.0)

    def reset(self) -> None:
        self._ms.clear()
        self.count = 0
