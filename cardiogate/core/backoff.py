"""Exponential backoff with full jitter, shared by BLE reconnects and the uplink."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays grow as initial * 2**n, capped, each drawn uniformly in [cap/2, cap]."""

    initial_s: float
    max_s: float
    _attempt: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        cap = min(self.max_s, self.initial_s * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self._attempt = 0
