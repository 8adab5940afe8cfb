"""One metrics registry for every cardiogate process, exported in Prometheus' text format.

Each module declares its metrics once, at import, through :func:`counter`, :func:`gauge` and
:func:`histogram`; declaring the same name again returns the same metric (modules are
re-imported in tests, and two parts of one process may share a metric). Labels must stay
bounded: site, gateway, device kind, stream kind, outcome, reason. Never a patient
pseudonym or a device address: those are unbounded and they are patient data.

:func:`set_constant_labels` names the process (a gateway's site and id) once; every series
``/metrics`` serves carries those labels. :func:`start` serves ``/metrics`` where
:class:`MetricsSettings` says, 127.0.0.1 by default, so a gateway never exposes it to the
ward network by accident.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from pydantic import field_validator

from cardiogate.core.logs import get_logger
from cardiogate.core.settings import StrictModel

log = get_logger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, open fds

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


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_constant: dict[str, str] = {}


def label_value(text: str) -> str:
    """``text`` made into a valid constant label value (other characters become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64]
    return cleaned if cleaned[:1].isalnum() else f"x{cleaned}"[:64]


def set_constant_labels(**labels: str) -> None:
    """Labels stamped on every exported series of this process (the gateway's site and id, the
    ingest's replica), so dashboards can split by them without each module knowing them.

    A metric's own label of the same name wins. Values must be short identifiers."""
    bad = FORBIDDEN_LABELS.intersection(labels)
    if bad:
        raise MetricDeclarationError(f"constant label(s) {sorted(bad)} are unbounded or patient data")
    for name, value in labels.items():
        if not _LABEL_VALUE.fullmatch(value):
            raise MetricDeclarationError(f"constant label {name}={value!r} is not a short identifier")
    with _lock:
        _constant.clear()
        _constant.update(labels)


class _Stamped(Collector):
    """What ``/metrics`` serves: :data:`REGISTRY` with the constant labels added at scrape time."""

    def collect(self) -> Iterator[Metric]:
        with _lock:
            constant = dict(_constant)
        for metric in REGISTRY.collect():
            if constant:
                metric.samples = [s._replace(labels={**constant, **s.labels}) for s in metric.samples]
            yield metric


EXPOSED = CollectorRegistry()
EXPOSED.register(_Stamped())


def exposition() -> bytes:
    """The registry in Prometheus' text format, constant labels included (what ``/metrics`` serves)."""
    return generate_latest(EXPOSED)


def sample_value(name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """One sample's current value (``None`` if absent), without the constant labels; for tests and
    status pages, not for hot paths."""
    return REGISTRY.get_sample_value(name, dict(labels or {}))


def parse_listen(listen: str) -> tuple[str, int] | None:
    """``host:port`` (IPv6 in brackets) as a pair; the empty string means disabled (None)."""
    listen = listen.strip()
    if not listen:
        return None
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port (or an empty string to disable), got {listen!r}")
    return host.strip("[]"), int(port)


class MetricsSettings(StrictModel):
    """Where the process serves ``/metrics``. Loopback by default: a scraper on the same host (or a
    tunnel) reads it, and nothing on the ward network can. An empty ``listen`` turns it off."""

    listen: str = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _valid(cls, listen: str) -> str:
        parse_listen(listen)
        return listen.strip()


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` frees its port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(host: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; port 0 picks a free one
    (the returned server says which). Raises OSError if the address cannot be bound."""
    server, thread = start_http_server(port, addr=host, registry=EXPOSED)
    bound_host, bound_port = server.server_address[:2]
    return MetricsServer(str(bound_host), int(bound_port), server, thread)


def start(settings: MetricsSettings, service: str) -> MetricsServer | None:
    """Start the endpoint the settings ask for, or none. A port already taken is logged, not fatal:
    monitoring patients matters more than being scraped."""
    address = parse_listen(settings.listen)
    if address is None:
        log.info("metrics endpoint disabled", service=service)
        return None
    host, port = address
    try:
        server = serve(host, port)
    except OSError as exc:
        log.warning("metrics endpoint not started", service=service, listen=settings.listen, error=str(exc))
        return None
    if not _is_loopback(host):
        log.warning("metrics endpoint reachable from the network", service=service, listen=settings.listen)
    log.info("metrics endpoint listening", service=service, host=server.host, port=server.port)
    return server


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
