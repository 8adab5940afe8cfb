"""One metrics registry for every cardiogate process, exported in Prometheus' text format.

Each module declares its metrics once, at import, through :func:`counter`, :func:`gauge` and
:func:`histogram`; declaring the same name again returns the same metric (modules are
re-imported in tests, and two parts of one process may share a metric). Labels must stay
bounded: site, gateway, device kind, stream kind, outcome, reason. Never a patient
pseudonym or a device address: those are unbounded and they are patient data.

:func:`serve` starts the ``/metrics`` endpoint; callers bind it to 127.0.0.1 unless told
otherwise, so a gateway never exposes it to the ward network by accident.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds: from well under a millisecond (an in-memory step) to tens of seconds (an outage).
LATENCY_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5,
                                        1.0, 2.5, 5.0, 10.0, 30.0)

FORBIDDEN_LABELS = frozenset({"patient", "pseudonym", "address", "device_address", "user", "user_id"})

_lock = threading.Lock()
_declared: dict[str, Counter | Gauge | Histogram] = {}

M = TypeVar("M", Counter, Gauge, Histogram)


class MetricDeclarationError(ValueError):
    """A metric was declared twice with another type or labels, or with a forbidden label."""


def _declare(kind: type[M], name: str, documentation: str, labels: Sequence[str], **extra: object) -> M:
    bad = FORBIDDEN_LABELS.intersection(labels)
    if bad:
        raise MetricDeclarationError(f"metric {name}: label(s) {sorted(bad)} are unbounded or patient data")
    with _lock:
        existing = _declared.get(name)
        if existing is not None:
            if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labels):
                raise MetricDeclarationError(f"metric {name} is already declared with other type or labels")
            return existing
        metric = kind(name, documentation, labelnames=tuple(labels), registry=REGISTRY, **extra)  # type: ignore[arg-type]
        _declared[name] = metric
        return metric


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A monotonic count (exported as ``<name>_total``)."""
    return _declare(Counter, name, documentation, labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    """A value that goes up and down (depth, lag, connected devices)."""
    return _declare(Gauge, name, documentation, labels)


def histogram(name: str, documentation: str, labels: Sequence[str] = (),
              buckets: Sequence[float] = LATENCY_BUCKETS_S) -> Histogram:
    """A distribution, by default of latencies in seconds."""
    return _declare(Histogram, name, documentation, labels, buckets=tuple(buckets))


def exposition() -> bytes:
    """The registry in Prometheus' text format (what ``/metrics`` serves)."""
    return generate_latest(REGISTRY)


def serve(host: str, port: int) -> tuple[str, int]:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; port 0 picks a free one.

    Returns the address actually bound.
    """
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    bound_host, bound_port = server.server_address[:2]
    return str(bound_host), int(bound_port)
