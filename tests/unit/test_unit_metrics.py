"""The metrics registry: declare-once, refusal of unbounded or patient labels, constant labels, the
/metrics endpoint (loopback by default, a taken port is not fatal), the ingest's per-instance counts,
and the gateway's bounded device kinds and gauges."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from cardiogate.cloud.metrics import Metrics, stream_kind
from cardiogate.cloud.settings import CloudSettings
from cardiogate.core import metrics
from cardiogate.edge import gateway_metrics
from cardiogate.edge.ble.profiles import device_kind
from cardiogate.edge.codecs.ecg_waveform import ECG_WAVEFORM_UUID
from cardiogate.edge.codecs.heart_rate import HEART_RATE_MEASUREMENT_UUID
from cardiogate.edge.codecs.polar_pmd import PMD_DATA_UUID
from cardiogate.edge.codecs.pulse_oximeter import PLX_SPOT_CHECK_MEASUREMENT_UUID
from cardiogate.edge.settings import GatewaySettings


@pytest.fixture(autouse=True)
def _no_constant_labels() -> Iterator[None]:
    metrics.set_constant_labels()
    yield
    metrics.set_constant_labels()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_metric_is_declared_once_and_the_same_name_gives_the_same_metric() -> None:
    first = metrics.counter("unit_declared_things", "things", ["kind"])
    assert metrics.counter("unit_declared_things", "other help", ["kind"]) is first
    with pytest.raises(metrics.MetricDeclarationError):
        metrics.counter("unit_declared_things", "things", ["reason"])
    with pytest.raises(metrics.MetricDeclarationError):
        metrics.gauge("unit_declared_things", "things", ["kind"])
    first.labels("a").inc(3)
    assert metrics.sample_value("unit_declared_things_total", {"kind": "a"}) == 3


@pytest.mark.parametrize("label", ["patient", "pseudonym", "address", "device_address", "user_id"])
def test_patient_data_and_unbounded_labels_are_refused(label: str) -> None:
    for declare in (metrics.counter, metrics.gauge, metrics.histogram):
        with pytest.raises(metrics.MetricDeclarationError, match=label):
            declare(f"unit_refused_{label}_{declare.__name__}", "x", ["site", label])
    assert metrics.sample_value(f"unit_refused_{label}_counter_total") is None
    with pytest.raises(metrics.MetricDeclarationError):
        metrics.set_constant_labels(**{label: "x"})


def test_constant_labels_are_stamped_on_every_series_and_a_metrics_own_label_wins() -> None:
    c = metrics.counter("unit_stamped", "x", ["gateway"])
    c.labels("own").inc()
    metrics.set_constant_labels(site="ward-3", gateway="gw-7")
    text = metrics.exposition().decode()
    assert 'unit_stamped_total{gateway="own",site="ward-3"} 1.0' in text
    assert 'process_resident_memory_bytes{gateway="gw-7",site="ward-3"}' in text
    with pytest.raises(metrics.MetricDeclarationError):
        metrics.set_constant_labels(site="a b")  # not an identifier
    assert metrics.label_value("ingest 1/eu") == "ingest_1_eu" and metrics.label_value("-x") == "x-x"


def test_the_listen_setting_is_loopback_by_default_and_can_be_turned_off() -> None:
    assert GatewaySettings().metrics.listen == "127.0.0.1:9464"
    assert CloudSettings().metrics.listen == "127.0.0.1:9465"
    assert CloudSettings(metrics={}).metrics.listen == "127.0.0.1:9465"
    assert metrics.parse_listen("") is None and metrics.parse_listen("[::1]:9464") == ("::1", 9464)
    assert metrics.start(metrics.MetricsSettings(listen=""), "unit") is None
    for bad in ("9464", "host:", "127.0.0.1:70000", "127.0.0.1:x"):
        with pytest.raises(ValidationError):
            GatewaySettings(metrics={"listen": bad})


def test_the_endpoint_serves_the_registry_on_loopback_and_closes() -> None:
    metrics.gauge("unit_served", "x").set(42)
    metrics.set_constant_labels(service="unit")
    server = metrics.start(metrics.MetricsSettings(listen="127.0.0.1:0"), "unit")
    assert server is not None and server.host == "127.0.0.1" and server.port > 0
    try:
        assert scrape(server.port)[("unit_served", (("service", "unit"),))] == 42
    finally:
        server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_a_taken_port_leaves_the_process_running_without_an_endpoint() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert metrics.start(metrics.MetricsSettings(listen=f"127.0.0.1:{port}"), "unit") is None


def test_ingest_metrics_count_per_instance_and_add_to_the_exported_counter() -> None:
    before = metrics.sample_value("ingest_refused_streams_total", {"reason": "unit_test"}) or 0.0
    one, two = Metrics(), Metrics()
    one.inc("ingest_refused_streams", reason="unit_test")
    two.inc("ingest_refused_streams", 2, reason="unit_test")
    assert (one.get("ingest_refused_streams", reason="unit_test"), two.get("ingest_refused_streams")) == (1, 2)
    assert metrics.sample_value("ingest_refused_streams_total", {"reason": "unit_test"}) == before + 3
    assert (stream_kind("C0:00:00:00:00:01/ecg"), stream_kind("D/alarms"), stream_kind("D/pt-0001")) == (
        "ecg", "alarms", "other")


def test_device_kind_is_bounded_and_follows_what_the_device_offers() -> None:
    def offers(*uuids: str) -> str:
        return device_kind(lambda u: u in uuids)
    assert offers(HEART_RATE_MEASUREMENT_UUID, ECG_WAVEFORM_UUID) == "ecg_watch"
    assert offers(HEART_RATE_MEASUREMENT_UUID, PMD_DATA_UUID) == "polar_ecg"
    assert offers(HEART_RATE_MEASUREMENT_UUID) == "hr_monitor"
    assert offers(PLX_SPOT_CHECK_MEASUREMENT_UUID) == "pulse_oximeter"
    assert offers() == "other"
    assert {offers(), offers(HEART_RATE_MEASUREMENT_UUID)} <= set(gateway_metrics.DEVICE_KINDS)


def test_gateway_gauges_follow_a_snapshot_and_unknown_kinds_fold_into_other() -> None:
    gateway_metrics.refresh([("ecg_watch", True), ("ecg_watch", False), ("hr_monitor", True), ("made-up", True)], 4,
                            {"raw": (12, 3400, 1.5), "alarms": (0, 0, 0.0)}, 0.25, True, False)
    got = {kind: metrics.sample_value("gateway_devices_connected", {"device_kind": kind})
           for kind in gateway_metrics.DEVICE_KINDS}
    assert got == {**dict.fromkeys(gateway_metrics.DEVICE_KINDS, 0.0), "ecg_watch": 1.0, "hr_monitor": 1.0,
                   "other": 1.0}
    assert metrics.sample_value("gateway_outbox_records", {"lane": "raw"}) == 12
    assert metrics.sample_value("gateway_outbox_oldest_age_seconds", {"lane": "raw"}) == 1.5
    assert (metrics.sample_value("gateway_devices_paired"), metrics.sample_value("gateway_outbox_fill_ratio"),
            metrics.sample_value("gateway_uplink_connected"), metrics.sample_value("gateway_mqtt_connected")) == (
        4, 0.25, 1, 0)
