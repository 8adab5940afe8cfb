"""One error model for every part: a root, and two branches that say whether trying again can help.

A caller that retries (the uplink, the updater, a BLE session) decides *how* from the class
of what failed, not from its message: a :class:`TransientError` (an outage, a timeout, a busy
replica) is worth another attempt soon; a :class:`PermanentError` (a revoked certificate, a
refused artifact, a malformed input) will fail the same way until a person changes something,
so retrying fast only burns battery and log lines. :func:`cardiogate.core.backoff.retry_policy_for`
turns the class into a backoff.

Existing exception types keep their names and hang under one of the branches; those that
already were a ``ValueError`` stay one too, so ``except ValueError`` callers keep working.
"""

from __future__ import annotations


class CardiogateError(Exception):
    """Anything the product raises on purpose. ``retryable`` is None when the class does not say."""

    retryable: bool | None = None


class TransientError(CardiogateError):
    """The same call may succeed later without anyone changing anything (outage, timeout, contention)."""

    retryable = True


class PermanentError(CardiogateError):
    """The same call will fail the same way until configuration, identity or input changes."""

    retryable = False


class UplinkUnavailable(TransientError):
    """The ingest could not be reached or broke the stream (network, restart, overload)."""


class UplinkRefused(PermanentError):
    """The ingest refused this gateway (gRPC UNAUTHENTICATED / PERMISSION_DENIED): revoked or unknown identity."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


# gRPC status names (grpc.StatusCode.X.name) that no retry can fix: the caller's identity or rights.
REFUSAL_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


def rpc_error(status: str, detail: str) -> UplinkRefused | UplinkUnavailable:
    """The error for a gRPC status name from the cloud (ingest, rollout, fleet: one port, one identity) and its
    details: refused for identity and rights, else unavailable."""
    if status in REFUSAL_STATUSES:
        return UplinkRefused(status, detail)
    return UplinkUnavailable(f"{status}: {detail}")
