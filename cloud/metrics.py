"""The ingest's counters: exported through the process-wide Prometheus registry, and counted per
service instance as well.

Prometheus' registry is one per process, while a process may run several ingest instances
(tests run replicas side by side); :class:`Metrics` keeps each instance's own counts for
:meth:`Metrics.get` and status logs, and adds every increment to the exported counter of the
same name (exported as ``<name>_total``). Count per batch or per stream, never per record.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import Counter as PromCounter

from cardiogate.core import metrics as registry

# name -> (help text, label names); a name not listed is exported with a generic help text.
INGEST_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ingest_streams_opened": ("Upload streams accepted (Hello checked).", ()),
    "ingest_streams_drained": ("Streams ended because the replica was draining.", ()),
    "ingest_refused_streams": ("Streams ended with a refusal, by reason.", ("reason",)),
    "ingest_rejected_batches": ("Batches rejected as invalid (BatchRejected or malformed), by reason.", ("reason",)),
    "ingest_batches": ("Batches written (claimed, sent to Kafka, committed).", ()),
    "ingest_invalid_trace_context": ("Alarms whose trace context was malformed (the alarm went on untraced).", ()),
    "ingest_records_written": ("Records Kafka confirmed, by stream kind.", ("kind",)),
    "ingest_records_duplicate": ("Records acked as already written (a gateway resending).", ()),
    "ingest_throttled_batches": ("Batches held back by the gateway's rate limit.", ()),
    "ingest_kafka_failures": ("Streams of a batch that Kafka failed to confirm.", ()),
    "ingest_ledger_claims_lost": ("Stream claims lost while writing (records may be duplicated).", ()),
    "ingest_claim_waits": ("Waits for a stream another write held.", ()),
}

KAFKA_PRODUCE_LATENCY = registry.histogram(
    "ingest_kafka_produce_latency_seconds", "One batch's records handed to Kafka until every delivery report came.")
ACTIVE_STREAMS = registry.gauge("ingest_active_streams", "Upload streams open now.")

STREAM_KINDS = frozenset({"ecg", "vitals", "alarms", "events"})


def stream_kind(stream_id: str) -> str:
    """The kind a stream id names (``<device>/<kind>``), or ``other``: a bounded label."""
    kind = stream_id.rpartition("/")[2]
    return kind if kind in STREAM_KINDS else "other"


def _exported(name: str, labels: tuple[str, ...]) -> PromCounter:
    help_text, declared = INGEST_COUNTERS.get(name, (f"cardiogate counter {name}.", labels))
    return registry.counter(name, help_text, declared)


# Declared up front, so every documented series is in the exposition from the start (an alert rule on
# a count that has not happened yet still finds its series).
for _name, (_help, _labels) in INGEST_COUNTERS.items():
    registry.counter(_name, _help, _labels)


class Metrics:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self._counts[key] += amount
        if amount:
            exported = _exported(name, tuple(k for k, _ in key[1]))
            (exported.labels(**labels) if labels else exported).inc(amount)

    def get(self, name: str, **labels: str) -> int:
        """The count for exactly these labels; with none given, the sum over all label sets."""
        if labels:
            return self._counts[(name, tuple(sorted(labels.items())))]
        return sum(v for (n, _), v in self._counts.items() if n == name)

    def snapshot(self) -> dict[str, int]:
        """Flat ``name{label=value,...}`` keys, Prometheus-style."""
        out = {}
        for (name, labels), value in sorted(self._counts.items()):
            suffix = ",".join(f'{k}="{v}"' for k, v in labels)
            out[f"{name}{{{suffix}}}" if suffix else name] = value
        return out
