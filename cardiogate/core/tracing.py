"""One alarm, one trace: OpenTelemetry spans across the gateway, the ingest, the processor and the API.

An alarm crosses four processes and two brokers before a clinician's screen shows it. When one is
late, the question is where; a trace answers it. The trace context travels with the alarm itself,
as a W3C ``traceparent`` string: in the telemetry record (gateway -> ingest, because one gRPC batch
carries many records), in a Kafka record header (ingest -> processor), and in the risk report the
processor derives from the alarm (processor -> API). Each hop starts a child span of what it
received and passes its own span on.

Only alarms are traced (a few a day per patient), so the cost is nothing on the sample path.
Tracing is off unless ``[tracing] enabled``; spans go over OTLP/HTTP (protobuf) to a collector.
OpenTelemetry is imported only when tracing is on, so a gateway without it pays no memory.
While a span is open, log lines carry its ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import atexit
import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
from pydantic import Field

from cardiogate.core.logs import get_logger
from cardiogate.core.settings import StrictModel

log = get_logger(__name__)

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


class TracingSettings(StrictModel):
    """``[tracing]``: where spans go. Off by default (a gateway has no collector unless one is set up)."""

    enabled: bool = False
    endpoint: str = Field(default="http://127.0.0.1:4318/v1/traces", description="OTLP/HTTP traces endpoint")
    export_timeout_s: float = Field(default=5.0, gt=0, le=60)
    schedule_delay_s: float = Field(default=1.0, gt=0, le=60, description="how long spans wait to be batched")


class _State:
    tracer: Any = None
    propagator: Any = None


_state = _State()


def setup_tracing(settings: TracingSettings, service: str) -> bool:
    """Start exporting this process's spans as ``service``; True when tracing is on."""
    if not settings.enabled or _state.tracer is not None:
        return _state.tracer is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=settings.endpoint, timeout=settings.export_timeout_s)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=settings.schedule_delay_s * 1000))
    _state.tracer = provider.get_tracer("cardiogate")
    _state.propagator = TraceContextTextMapPropagator()
    atexit.register(provider.shutdown)  # the last spans are sent before the process ends
    log.info("tracing on", service=service, endpoint=settings.endpoint)
    return True


def tracing_enabled() -> bool:
    return _state.tracer is not None


@contextlib.contextmanager
def child_span(name: str, parent: str | None = None, attributes: Mapping[str, str | int | float | bool] | None = None,
               kind: str = "internal", start_time_ns: int | None = None) -> Iterator[str]:
    """A span under ``parent`` (a traceparent string; empty or None starts a new trace) while the block runs.

    Yields the new span's own traceparent, to hand to the next hop; yields "" when tracing is off or
    no parent was given and ``kind`` is not a trace root (``"producer"`` starts traces, others only continue).
    """
    if _state.tracer is None or (not parent and kind != "producer"):
        yield ""
        return
    from opentelemetry import trace

    context = _state.propagator.extract({TRACEPARENT: parent}) if parent else None
    span_kind = {"producer": trace.SpanKind.PRODUCER, "consumer": trace.SpanKind.CONSUMER,
                 "server": trace.SpanKind.SERVER}.get(kind, trace.SpanKind.INTERNAL)
    with _state.tracer.start_as_current_span(name, context=context, kind=span_kind, start_time=start_time_ns,
                                             attributes=dict(attributes or {})) as span:
        carrier: dict[str, str] = {}
        _state.propagator.inject(carrier, context=trace.set_span_in_context(span))
        ctx = span.get_span_context()
        with structlog.contextvars.bound_contextvars(trace_id=f"{ctx.trace_id:032x}", span_id=f"{ctx.span_id:016x}"):
            yield carrier.get(TRACEPARENT, "")


def valid_traceparent(value: str) -> bool:
    """A W3C trace-context ``traceparent`` of version 00 (from outside: a gateway or a Kafka header)."""
    return len(value) == 55 and _TRACEPARENT.fullmatch(value) is not None


def traceparent_of(headers: Any) -> str:
    """The ``traceparent`` among Kafka record headers (a list of (key, bytes) pairs, or None)."""
    for key, value in headers or ():
        if key == TRACEPARENT and value:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            return text if valid_traceparent(text) else ""
    return ""
