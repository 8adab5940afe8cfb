"""Exponential backoff with jitter, and the retry policy chosen by the class of what failed.

Shared by BLE reconnects, MQTT, the uplink and the ingest's claim waits. A transient failure
(outage, timeout) is retried on the caller's own short schedule; a permanent one (a revoked
certificate, a refused identity) on a long one: trying every few seconds cannot fix it and
only floods the cloud and the logs, while trying every few minutes still notices a fix
(re-enrollment, un-revocation) without anyone restarting the gateway.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cardiogate.core.errors import PermanentError

_SHARED_RNG = random.Random()


def jittered(cap_s: float, rng: random.Random | None = None) -> float:
    """A delay drawn uniformly in [cap/2, cap]: spread out so that many clients do not retry in step."""
    return (rng or _SHARED_RNG).uniform(cap_s / 2, cap_s)


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
        return jittered(cap, self._rng)

    def reset(self) -> None:
        self._attempt = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to wait between attempts after one kind of failure: the first delay and the ceiling."""

    name: str
    initial_s: float
    max_s: float

    def backoff(self, rng: random.Random | None = None) -> Backoff:
        return Backoff(self.initial_s, self.max_s, _rng=rng or random.Random())


# A refusal (revoked or unknown identity, missing rights) needs a person: retry every few minutes.
PERMANENT_RETRY = RetryPolicy("permanent", 60.0, 600.0)


def retry_policy_for(exc: BaseException, transient: RetryPolicy) -> RetryPolicy:
    """The policy for this failure: the permanent one for a :class:`PermanentError`, else the caller's own
    ``transient`` schedule (an unclassified error is treated as transient: a wrong guess costs a few retries,
    while the opposite guess would leave an outage unnoticed for minutes)."""
    if isinstance(exc, PermanentError):
        return PERMANENT_RETRY
    return transient
