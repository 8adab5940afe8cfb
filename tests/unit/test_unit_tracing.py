"""Trace context from outside is checked before it is trusted, and tracing that is off costs nothing."""

from __future__ import annotations

import subprocess
import sys

from cardiogate.core.tracing import child_span, traceparent_of, valid_traceparent

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_only_well_formed_version_00_traceparents_are_accepted() -> None:
    assert valid_traceparent(GOOD)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    for bad in ("", GOOD.upper(), GOOD + "-extra", "01" + GOOD[2:], GOOD.replace(trace_id, "0" * 32),
                GOOD.replace("00f067aa0ba902b7", "0" * 16), GOOD.replace("-01", "-1"), "00-xyz-abc-01",
                GOOD[:-2] + "\u00e9\u00e9"):
        assert not valid_traceparent(bad), bad


def test_kafka_headers_yield_only_a_valid_traceparent() -> None:
    assert traceparent_of([("gateway", b"gw-1"), ("traceparent", GOOD.encode())]) == GOOD
    assert traceparent_of([("traceparent", b"00-garbage")]) == ""
    assert traceparent_of([("traceparent", b"\xff\xfe")]) == ""
    assert traceparent_of(None) == ""


def test_with_tracing_off_a_span_is_nothing_and_opentelemetry_is_never_loaded() -> None:
    with child_span("gateway.alarm", kind="producer") as traceparent:
        assert traceparent == ""
    with child_span("ingest.alarm", GOOD) as traceparent:
        assert traceparent == ""
    code = ("import sys; from cardiogate.edge.settings import GatewaySettings; import cardiogate.edge.gateway; "
            "print(any(m.startswith('opentelemetry') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False", "the gateway imports OpenTelemetry although tracing is off"
