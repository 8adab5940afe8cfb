"""Per-gateway token buckets (pure: the caller passes the time).

A batch costs its records and its bytes. A bucket may go into debt by one batch, so
a batch larger than the bucket still passes eventually; the debt is how long the
caller holds the stream back (back-pressure) before it reads the next batch. If
that wait would be longer than allowed, the batch is refused instead and nothing
is taken from the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate: float       # tokens per second
    capacity: float   # most tokens saved up
    tokens: float
    updated: float    # time of the last refill, seconds

    @classmethod
    def full(cls, rate: float, burst_s: float, now: float) -> TokenBucket:
        return cls(rate, rate * burst_s, rate * burst_s, now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` would be paid for (0 if now)."""
        self.refill(now)
        return max(0.0, min(cost, self.capacity) - self.tokens) / self.rate

    def take(self, cost: float, now: float) -> None:
        self.refill(now)
        self.tokens -= cost


@dataclass
class GatewayLimiter:
    """Records/s and bytes/s for one gateway, across all its streams on this replica."""

    records: TokenBucket
    bytes: TokenBucket

    def admit(self, records: int, size: int, now: float, max_wait_s: float) -> float | None:
        """Take the batch's cost and return how long to hold back, or None to refuse it."""
        wait = max(self.records.wait_for(records, now), self.bytes.wait_for(size, now))
        if wait > max_wait_s:
            return None
        self.records.take(records, now)
        self.bytes.take(size, now)
        return wait
