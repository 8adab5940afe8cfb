"""The gateway's and the ingest's ``/metrics`` during a short real run (watch -> BLE -> gateway -> ingest -> Kafka).

Scraped over HTTP while the stack runs, as Prometheus would: the key series exist with sane
values, every label is bounded (no patient pseudonym, no device address anywhere in the
exposition), and both endpoints listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cardiogate.app.stack import LocalStack, Patient
from cardiogate.sim.truth import read_truth
from tests.conftest import port_open

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PATIENT = "pt-7311"
ADDRESS = "C0:00:00:00:00:3B"
SITE = "metrics-site"
GATEWAY = "gw-metrics-1"
CONNECT_TIMEOUT_S = 90.0
RUN_S = 16.0  # after the watch is connected: the high heart rate alarms 5 s in, the rhythm model runs at 5 and 15 s
# Scenario times count from the simulator's start, and the gateway may take a while to connect on a busy
# machine: so the heart rate is high throughout, and a malformed packet comes every few seconds.
MALFORMED_EVERY_S = 4.0

PSEUDONYM = re.compile(r"^pt-", re.IGNORECASE)
BLE_ADDRESS = re.compile(r"([0-9A-Fa-f]{2}[:_-]){5}[0-9A-Fa-f]{2}")

Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for the e2e tests (.ci/run starts it)")
    work = tmp_path_factory.mktemp("metrics")
    patient = Patient(PATIENT, ADDRESS, [(0.0, 165.0)], seed=7,
                      malformed_hr_at_s=[MALFORMED_EVERY_S * (i + 1) for i in range(40)])
    stack = LocalStack(work, [patient], gateway_id=GATEWAY, site=SITE)
    return asyncio.run(_run(stack))


async def _run(stack: LocalStack) -> dict[str, Any]:
    try:
        await asyncio.to_thread(stack.start)
        await _connected(stack.metrics_urls["gateway"])
        await asyncio.sleep(RUN_S)
        assert stack.check_alive() == [], f"a part died; logs in {stack.workdir}"
        texts = {name: await asyncio.to_thread(_get, url) for name, url in stack.metrics_urls.items()}
        listeners = {name: _listeners(port) for name, port in (("gateway", stack.gateway_metrics_port),
                                                                ("cloud", stack.cloud_metrics_port))}
    finally:
        await asyncio.to_thread(stack.stop)
    sent = Counter(t["kind"] for t in read_truth(stack.truth_path))  # everything the watch sent, run to the end
    return {"text": texts, "samples": {name: _parse(text) for name, text in texts.items()}, "listeners": listeners,
            "sent": sent, "workdir": stack.workdir}


async def _connected(url: str) -> None:
    """Wait until the gateway's own metrics say the watch is connected."""
    deadline = asyncio.get_running_loop().time() + CONNECT_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        try:
            samples = _parse(await asyncio.to_thread(_get, url))
        except OSError:  # the gateway is still starting
            samples = []
        if any(n == "gateway_devices_connected" and v == 1 for n, _, v in samples):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the watch did not connect within {CONNECT_TIMEOUT_S:.0f} s")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        return str(reply.read().decode())


def _parse(text: str) -> Samples:
    return [(s.name, dict(s.labels), float(s.value)) for family in text_string_to_metric_families(text)
            for s in family.samples]


def _listeners(port: int) -> list[str]:
    """Local addresses listening on ``port`` (Linux /proc/net/tcp and tcp6, hex as the kernel writes it)."""
    found = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over samples of ``name`` whose labels include ``labels``."""
    hits = [v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert hits, f"no sample {name}{labels}"
    return sum(hits)


def test_gateway_counts_what_came_over_the_air_and_went_up(scraped: dict[str, Any]) -> None:
    s, sent = scraped["samples"]["gateway"], scraped["sent"]
    # scraped before the run ended, so at most what the watch sent in all, and most of it
    ecg = value(s, "gateway_notifications_total", device_kind="ecg_watch", characteristic="ecg")
    assert sent["ecg"] / 2 < ecg <= sent["ecg"]
    hr = value(s, "gateway_notifications_total", device_kind="ecg_watch", characteristic="heart_rate")
    assert sent["hr"] / 2 < hr <= sent["hr"] + sent["malformed_hr"]
    assert 1 <= value(s, "gateway_decode_errors_total", device_kind="ecg_watch", characteristic="heart_rate") \
        <= sent["malformed_hr"]
    assert value(s, "gateway_devices_connected", device_kind="ecg_watch") == 1
    assert value(s, "gateway_devices_connected") == 1 and value(s, "gateway_devices_paired") == 1
    assert value(s, "gateway_uplink_connected") == 1 and value(s, "gateway_mqtt_connected") == 1
    batches, sent = value(s, "gateway_uplink_batches_total"), value(s, "gateway_uplink_records_sent_total")
    acked = value(s, "gateway_uplink_records_acked_total")
    assert batches >= 5 and sent >= batches and 0 < acked <= sent
    assert value(s, "gateway_outbox_records", lane="raw") >= 0 and 0 <= value(s, "gateway_outbox_fill_ratio") < 1
    assert value(s, "gateway_build_info") == 1


def test_gateway_latency_histograms_are_filled_and_plausible(scraped: dict[str, Any]) -> None:
    s = scraped["samples"]["gateway"]
    for name, at_least, under_s in (("gateway_uplink_batch_latency_seconds", 5, 5.0),
                                    ("gateway_alarm_latency_seconds", 1, 5.0),
                                    ("gateway_inference_latency_seconds", 1, 1.0),
                                    ("gateway_loop_lag_seconds", 5, 2.0)):
        count = value(s, f"{name}_count")
        assert count >= at_least, name
        assert value(s, f"{name}_bucket", le=str(under_s)) == count, f"{name}: an observation over {under_s} s"
        assert 0 < value(s, f"{name}_sum") / count < under_s
    assert value(s, "gateway_alarms_raised_total", priority="high", category="physiological") >= 1


def test_ingest_counts_batches_records_and_kafka_latency(scraped: dict[str, Any]) -> None:
    s = scraped["samples"]["cloud"]
    batches = value(s, "ingest_batches_total")
    assert batches >= 5
    assert value(s, "ingest_records_written_total", kind="ecg") >= 5
    assert value(s, "ingest_records_written_total", kind="vitals") >= 10
    assert value(s, "ingest_streams_opened_total") >= 1 and value(s, "ingest_active_streams") == 1
    count = value(s, "ingest_kafka_produce_latency_seconds_count")
    assert count >= batches  # one observation per batch sent to Kafka
    assert 0 < value(s, "ingest_kafka_produce_latency_seconds_sum") / count < 5.0
    gateway_batches = value(scraped["samples"]["gateway"], "gateway_uplink_batches_total")
    assert batches <= gateway_batches + 3  # scraped a moment apart: a few more may have gone up since


def test_every_series_names_its_process_and_no_label_is_patient_data(scraped: dict[str, Any]) -> None:
    for name, want in (("gateway", {"site": SITE, "gateway": GATEWAY}), ("cloud", {"service": "ingest"})):
        samples = scraped["samples"][name]
        assert len(samples) > 30
        assert all(want.items() <= labels.items() for _, labels, _ in samples), name
        values = {v for _, labels, _ in samples for v in labels.values()}
        assert not [v for v in values if PSEUDONYM.match(v) or BLE_ADDRESS.search(v)], name
        text = scraped["text"][name]
        assert PATIENT not in text and ADDRESS not in text and ADDRESS.replace(":", "_") not in text


def test_both_endpoints_listen_on_loopback_only(scraped: dict[str, Any]) -> None:
    for name, addresses in scraped["listeners"].items():
        # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex); nothing on 0.0.0.0 or an IPv6 address
        assert addresses == ["0100007F"], f"{name} /metrics listens on {addresses}"
