"""Token buckets (pure: the caller passes the time), used by the gateway's uplink pacing and the ingest.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; rate 0 is unlimited.
The level may go negative: one item larger than the bucket still passes, and the items after it
pay for it. That debt is how long the caller holds the stream back (back-pressure).

The ingest's :class:`GatewayLimiter` charges a batch its records and its bytes; if the wait
would be longer than allowed, the batch is refused instead and nothing is taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class TokenBucket:
    """A rate with a burst, in any unit."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._level = self.burst
        self._at = now

    @classmethod
    def full(cls, rate: float, burst_s: float, now: float) -> TokenBucket:
        """A full bucket holding ``burst_s`` seconds of ``rate``."""
        return cls(rate, rate * burst_s, now)

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def level(self, now: float) -> float:
        """Tokens available at ``now`` (negative while in debt)."""
        if self.unlimited:
            return math.inf
        self._level = min(self.burst, self._level + max(0.0, now - self._at) * self.rate)
        self._at = max(self._at, now)
        return self._level

    def spend(self, amount: float, now: float) -> None:
        if not self.unlimited:
            self._level = self.level(now) - amount

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until the level reaches ``amount`` (at most the burst; 0 if now)."""
        if self.unlimited:
            return 0.0
        return max(0.0, (min(amount, self.burst) - self.level(now)) / self.rate)

    wait_for = wait_s
    take = spend


@dataclass
class GatewayLimiter:
    """Records/s and bytes/s for one gateway, across all its streams on this replica."""

    records: TokenBucket
    bytes: TokenBucket

    def admit(self, records: int, size: int, now: float, max_wait_s: float) -> float | None:
        """Take the batch's cost and return how long to hold back, or None to refuse it."""
        wait = max(self.records.wait_s(records, now), self.bytes.wait_s(size, now))
        if wait > max_wait_s:
            return None
        self.records.spend(records, now)
        self.bytes.spend(size, now)
        return wait
