"""Shadow evaluation: the candidate labels the same live windows as the live model, and
only the live model's labels are ever acted on.

The figures are what the cloud's gates judge: agreement with the champion, the
candidate's latency p99, and how often each model would have alarmed. A model that
agrees on average but alarms twice as often is still a regression for alarm fatigue.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cardiogate.edge.updater.runners import Runner, Window

NORMAL_LABELS = frozenset({"N", "~", "normal", "noisy"})


@dataclass(frozen=True)
class ShadowFigures:
    windows: int = 0
    agreements: int = 0
    shadow_s: float = 0.0
    candidate_p99_ms: float = 0.0
    live_p99_ms: float = 0.0
    candidate_alarm_rate: float = 0.0
    live_alarm_rate: float = 0.0
    candidate_errors: int = 0

    @property
    def agreement(self) -> float:
        return self.agreements / self.windows if self.windows else 1.0


def _p99(values: deque[float]) -> float:
    return float(np.percentile(np.fromiter(values, dtype=np.float64), 99.0)) if values else 0.0


class ShadowEvaluator:
    """Counts agreement, latency and alarm rates of a candidate against the live model."""

    def __init__(self, candidate: Runner, *, normal_labels: frozenset[str] = NORMAL_LABELS,
                 clock: Callable[[], float] = time.monotonic, keep: int = 4096) -> None:
        self.candidate = candidate
        self._normal = normal_labels
        self._clock = clock
        self._started = clock()
        self._cand_ms: deque[float] = deque(maxlen=keep)
        self._live_ms: deque[float] = deque(maxlen=keep)
        self.windows = 0
        self.agreements = 0
        self.candidate_alarms = 0
        self.live_alarms = 0
        self.candidate_errors = 0

    def observe(self, window: Window, live_label: str, live_ms: float | None = None) -> str | None:
        """Run the candidate on ``window``; returns its label (None if it raised)."""
        began = time.perf_counter()
        try:
            label = self.candidate.predict(window)
        except Exception:  # any runtime failure counts against the candidate, never the gateway
            self.candidate_errors += 1
            return None
        self._cand_ms.append((time.perf_counter() - began) * 1000.0)
        if live_ms is not None:
            self._live_ms.append(live_ms)
        self.windows += 1
        self.agreements += label == live_label
        self.candidate_alarms += label not in self._normal
        self.live_alarms += live_label not in self._normal
        return label

    def figures(self) -> ShadowFigures:
        n = self.windows
        return ShadowFigures(n, self.agreements, self._clock() - self._started, _p99(self._cand_ms),
                             _p99(self._live_ms), self.candidate_alarms / n if n else 0.0,
                             self.live_alarms / n if n else 0.0, self.candidate_errors)
