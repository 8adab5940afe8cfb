"""The gateway's Prometheus metrics, declared in one place so ``/metrics`` and docs/architecture.md agree.

Every series also carries the gateway's ``site`` and ``gateway`` (constant labels set at start).
The other labels are bounded by construction: device kind (what the wearable offers, from
:data:`DEVICE_KINDS`), characteristic, outbox lane, alarm priority and category. Never a patient
pseudonym or a device address. Counters are bumped where things happen; gauges are refreshed
from the gateway's own state by :func:`refresh`, on the event loop, about once a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cardiogate.core.metrics import counter, gauge, histogram

DEVICE_KINDS = ("ecg_watch", "polar_ecg", "hr_monitor", "pulse_oximeter", "bp_cuff", "other", "unknown")
"""``unknown``: not connected yet since the gateway started; ``other``: offers nothing we classify."""

NOTIFICATIONS = counter("gateway_notifications", "BLE notifications and indications received.",
                        ("device_kind", "characteristic"))
DECODE_ERRORS = counter("gateway_decode_errors", "Malformed packets (dropped and logged).",
                        ("device_kind", "characteristic"))
RR_DROPPED = counter("gateway_rr_dropped", "Invalid RR intervals (0) removed from otherwise good heart-rate packets.",
                     ("device_kind",))
ECG_GAPS = counter("gateway_ecg_gaps", "Gaps in a device's ECG stream (each also a gap record).", ("device_kind",))
ECG_MISSING_SAMPLES = counter("gateway_ecg_missing_samples", "ECG samples the gaps account for.", ("device_kind",))
RECONNECTS = counter("gateway_reconnects", "Links established again after the first one.", ("device_kind",))
SESSION_FAILURES = counter("gateway_ble_session_failures",
                           "BLE attempts or links that ended in failure (not seen, timeout, link lost).",
                           ("device_kind",))
DEVICES_CONNECTED = gauge("gateway_devices_connected", "Paired devices connected now.", ("device_kind",))
DEVICES_PAIRED = gauge("gateway_devices_paired", "Devices paired with this gateway.")

OUTBOX_RECORDS = gauge("gateway_outbox_records", "Records waiting in the outbox.", ("lane",))
OUTBOX_BYTES = gauge("gateway_outbox_bytes", "Budget bytes the waiting records take.", ("lane",))
OUTBOX_OLDEST_AGE = gauge("gateway_outbox_oldest_age_seconds", "Age of the oldest waiting record.", ("lane",))
OUTBOX_FILL = gauge("gateway_outbox_fill_ratio", "Outbox bytes over its disk budget (0 without a budget).")

UPLINK_CONNECTED = gauge("gateway_uplink_connected", "1 while the gRPC uplink session is up.")
UPLINK_BATCHES = counter("gateway_uplink_batches", "Batches written to the uplink stream.")
UPLINK_RECORDS = counter("gateway_uplink_records_sent", "Records sent (resends included).")
UPLINK_BYTES = counter("gateway_uplink_bytes_sent", "Record bytes sent, before gRPC compression.")
UPLINK_ACKED = counter("gateway_uplink_records_acked", "Records the ingest acked (they leave the outbox).")
UPLINK_REJECTED = counter("gateway_uplink_records_rejected", "Records in batches the ingest rejected as invalid.")
UPLINK_BATCH_LATENCY = histogram("gateway_uplink_batch_latency_seconds",
                                 "A batch written to the stream until the ingest's ack or rejection of it.")
MQTT_CONNECTED = gauge("gateway_mqtt_connected", "1 while connected to the local MQTT broker.")

ALARMS_RAISED = counter("gateway_alarms_raised", "Alarms raised.", ("priority", "category"))
ALARM_LATENCY = histogram("gateway_alarm_latency_seconds",
                          "Triggering sample (device time) until the raised or escalated alarm is handed to the "
                          "MQTT publisher.", ("priority",))
INFERENCE_LATENCY = histogram("gateway_inference_latency_seconds", "One rhythm model run (all its windows).")
RISK_SCORED = counter("gateway_risk_scored", "Risk model scores (one per patient per risk window).")
RISK_FAILURES = counter("gateway_risk_failures", "Risk model runs that failed (the rule-based alarms go on).")
BUILD_INFO = gauge("gateway_build_info", "Always 1; the software version as a label.", ("version",))


def refresh(connected_kinds: Iterable[tuple[str, bool]], paired: int, lanes: Mapping[str, tuple[int, int, float]],
            fill_ratio: float, uplink_connected: bool, mqtt_connected: bool) -> None:
    """Set the gauges from a snapshot: (device kind, connected) per device; (records, bytes, oldest
    age) per outbox lane."""
    connected = dict.fromkeys(DEVICE_KINDS, 0)
    for kind, up in connected_kinds:
        if up:
            connected[kind if kind in connected else "other"] += 1
    for kind, n in connected.items():
        DEVICES_CONNECTED.labels(kind).set(n)
    DEVICES_PAIRED.set(paired)
    for lane, (records, nbytes, oldest_s) in lanes.items():
        OUTBOX_RECORDS.labels(lane).set(records)
        OUTBOX_BYTES.labels(lane).set(nbytes)
        OUTBOX_OLDEST_AGE.labels(lane).set(oldest_s)
    OUTBOX_FILL.set(fill_ratio)
    UPLINK_CONNECTED.set(int(uplink_connected))
    MQTT_CONNECTED.set(int(mqtt_connected))
