"""A simulated tachycardia reaches the cloud's live views within 2 s of the gateway's MQTT alarm, and the
processor's windows agree with what the simulated watches really sent, and one trace follows the alarm
through every process.

The real stack with its read side (simulated watch on a bumble radio, gateway, locked Mosquitto, gRPC
ingest, tansu, store consumers, stream processor, API): a nurse subscribes to the patient's risk
updates twice, over GraphQL (``realTimeRiskUpdate``, graphql-transport-ws) and on ``/ws/risk``, and a
monitor listens to the site's MQTT alarms. When the gateway raises the heart-rate alarm, the
processor's provisional risk report naming that alarm must reach both subscriptions less than 2 s after
the alarm reached MQTT. Redis carries the fan-out when it answers; otherwise the API follows
risk-events from Kafka (both are the demo's real configurations).

A second patient stays at a steady heart rate until the first whole minute of their data has closed:
its 1-minute window, read through the API's ``vitalsHistory``, must match the simulator's ground truth
(the heart rates the watch put on the air in that minute of device time: mean within 0.5 bpm) and be
complete (every ECG sample arrived: completeness exactly 1, no sample missing). Five-minute windows
are computed by the same code and checked against an offline recomputation in
tests/integration/test_processor.py; waiting for one here would add five minutes to every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from cardiogate.app.site_mqtt import MONITOR, mosquitto_binary
from cardiogate.app.stack import LocalStack, Patient
from cardiogate.sim.truth import read_truth
from tests.conftest import REPO
from tests.harness.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.e2e, pytest.mark.api, pytest.mark.timeout(240)]

SITE, GATEWAY, PATIENT, STEADY = "rs-site", "gw-rs-1", "pt-8080", "pt-8181"
TACHY_AT_S = 10.0
SUBSCRIBE = ("subscription($p: ID!) { realTimeRiskUpdate(userId: $p) { score level report { provisional trigger "
             "modelName baseline } } }")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if mosquitto_binary() is None:
        pytest.fail("the mosquitto binary must be installed for the e2e tests (each stack runs its own broker)")
    patient = Patient(PATIENT, "C0:00:00:00:80:80", [(0.0, 72.0), (TACHY_AT_S, 72.0), (TACHY_AT_S + 6.0, 165.0)],
                      seed=80)
    steady = Patient(STEADY, "C0:00:00:00:81:81", [(0.0, 64.0)], seed=81)
    with OtlpReceiver() as traces:
        tracing = {"tracing": {"enabled": True, "endpoint": traces.endpoint, "schedule_delay_s": 0.2}}
        stack = LocalStack(tmp_path_factory.mktemp("read-side"), [patient, steady], gateway_id=GATEWAY, site=SITE,
                           read_side=True, gateway_extra=tracing, cloud_extra=tracing)
        out = asyncio.run(_drive(stack))
        out["spans"] = traces.spans()
    return out


async def _mqtt_alarms(stack: LocalStack, out: list[tuple[float, dict[str, Any]]]) -> None:
    async with stack.mqtt_client(MONITOR, f"rs-watch-{time.time_ns()}") as client:
        await client.subscribe(f"cardiogate/{SITE}/{PATIENT}/alarms", qos=1)
        async for msg in client.messages:
            if isinstance(msg.payload, bytes | bytearray) and msg.payload:
                out.append((time.monotonic(), json.loads(msg.payload)))


async def _ws_risk(url: str, token: str, out: list[tuple[float, dict[str, Any]]]) -> None:
    async with websockets.connect(f"{url}/ws/risk?userId={PATIENT}&token={token}") as ws:
        async for message in ws:
            body = json.loads(message)
            if body.get("type") == "risk":
                out.append((time.monotonic(), body["report"]))


async def _graphql(url: str, token: str, out: list[tuple[float, dict[str, Any]]]) -> None:
    async with websockets.connect(f"{url}/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                                  additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "connection_ack", ack
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIBE, "variables": {"p": PATIENT}}}))
        async for message in ws:
            body = json.loads(message)
            assert body["type"] != "error", body
            if body["type"] == "next":
                assert "errors" not in body["payload"], body
                out.append((time.monotonic(), body["payload"]["data"]["realTimeRiskUpdate"]))


async def _drive(stack: LocalStack) -> dict[str, Any]:
    await asyncio.to_thread(stack.start_mqtt)
    alarms: list[tuple[float, dict[str, Any]]] = []
    ws_updates: list[tuple[float, dict[str, Any]]] = []
    gql_updates: list[tuple[float, dict[str, Any]]] = []
    tasks: list[asyncio.Task[None]] = []
    out: dict[str, Any] = {}
    try:
        tasks.append(asyncio.create_task(_mqtt_alarms(stack, alarms)))
        await asyncio.to_thread(stack.start)
        url = stack.api_url
        password = (stack.workdir / "api-credentials" / "demo-nurse").read_text().strip()
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            token = (await api.post("/auth/token", json={"username": "demo-nurse", "password": password})
                     ).json()["access_token"]
        tasks.append(asyncio.create_task(_ws_risk(url.replace("http", "ws"), token, ws_updates)))
        tasks.append(asyncio.create_task(_graphql(url.replace("http", "ws"), token, gql_updates)))
        deadline = time.monotonic() + 120
        raised = None
        while time.monotonic() < deadline:
            raised = next(((t, a) for t, a in alarms if a.get("condition") == "hr_high"
                           and a.get("state") == "raised"), None)
            if raised is not None and _first(ws_updates, raised[1]) and _first(gql_updates, raised[1]):
                break
            for task in tasks:
                if task.done():
                    task.result()  # a subscription that failed: its error, not a timeout
            await asyncio.sleep(0.05)
        out.update(raised=raised, ws=list(ws_updates), gql=list(gql_updates))
        out["window"] = await _first_whole_minute(url, token, stack)
        out["truth"] = read_truth(stack.truth_path)
        out["alive"] = stack.check_alive()
        async with httpx.AsyncClient(timeout=10) as scraper:
            out["metrics"] = {name: (await scraper.get(url)).text for name, url in stack.metrics_urls.items()}
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await asyncio.to_thread(stack.stop)
    return out


WINDOWS = """query($p: ID!) { vitalsHistory(userId: $p, widthS: 60) { start end revision hrMean hrCount completeness
             samplesReceived samplesMissing recordCount } }"""


async def _first_whole_minute(url: str, token: str, stack: LocalStack) -> dict[str, Any] | None:
    """The steady patient's first 1-minute window that starts after their watch's first sample."""
    first_us = None
    deadline = time.monotonic() + 150
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        while time.monotonic() < deadline:
            if first_us is None:
                truth = [t for t in read_truth(stack.truth_path) if t.get("watch") == "C0:00:00:00:81:81"
                         and t.get("kind") in ("hr", "ecg")]
                first_us = min((t.get("t_us", t.get("t0_us", 0)) for t in truth), default=None)
            answer = (await api.post("/graphql", json={"query": WINDOWS, "variables": {"p": STEADY}},
                                     headers={"authorization": f"Bearer {token}"})).json()
            assert "errors" not in answer, answer
            for w in answer["data"]["vitalsHistory"]:
                if first_us is not None and _us(w["start"]) >= first_us:
                    return dict(w)
            await asyncio.sleep(2.0)
    return None


def _us(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso).timestamp() * 1_000_000)


def _trigger(update: dict[str, Any]) -> str:
    report = update.get("report", update)
    return str(report.get("trigger", ""))


def _first(updates: list[tuple[float, dict[str, Any]]], alarm: dict[str, Any]) -> float | None:
    return next((t for t, u in updates if alarm["alarm_id"] in _trigger(u)), None)


def test_the_high_alarm_reaches_both_risk_subscriptions_within_2_s(run: dict[str, Any]) -> None:
    assert run["raised"] is not None, "the gateway raised no heart-rate alarm"
    t_alarm, alarm = run["raised"]
    for name in ("ws", "gql"):
        t = _first(run[name], alarm)
        assert t is not None, f"no provisional risk update for {alarm['alarm_id']} on {name}: {run[name][-5:]}"
        print(f"{name}: the provisional risk update arrived {t - t_alarm:.2f} s after the MQTT alarm")
        assert t - t_alarm < 2.0, f"{name}: {t - t_alarm:.2f} s after the MQTT alarm"
    assert run["alive"] == []


def test_the_update_is_a_provisional_baseline_report_at_least_medium(run: dict[str, Any]) -> None:
    _, alarm = run["raised"]
    update = next(u for _, u in run["gql"] if alarm["alarm_id"] in _trigger(u))
    assert update["report"]["provisional"] is True and update["report"]["baseline"] is True
    assert update["report"]["modelName"] == "news2-baseline"
    assert update["level"] != "low", update  # a medium alarm lifts the report to at least low-medium
    ws = next(u for _, u in run["ws"] if alarm["alarm_id"] in _trigger(u))
    assert ws["provisional"] is True and ws["patient"] == PATIENT


def test_the_first_whole_minute_matches_the_watchs_ground_truth(run: dict[str, Any]) -> None:
    window = run["window"]
    assert window is not None, "no whole 1-minute window of the steady patient closed within 150 s"
    start, end = _us(window["start"]), _us(window["end"])
    sent = [t["hr"] for t in run["truth"] if t.get("watch") == "C0:00:00:00:81:81" and t.get("kind") == "hr"
            and start <= t["t_us"] < end]
    assert sent, "the watch sent no heart rate in that minute"
    truth_mean = sum(sent) / len(sent)
    print(f"steady patient, minute {window['start']}: HR mean {window['hrMean']:.2f} from {window['hrCount']} "
          f"readings, ground truth {truth_mean:.2f} from {len(sent)}; completeness {window['completeness']}, "
          f"{window['samplesReceived']} ECG samples")
    assert abs(window["hrMean"] - truth_mean) <= 0.5, (window, truth_mean, len(sent))
    assert window["completeness"] == 1.0 and window["samplesMissing"] == 0, window
    assert window["samplesReceived"] > 0 and window["revision"] == 0


def test_one_trace_follows_the_alarm_from_the_gateway_to_the_subscription(run: dict[str, Any]) -> None:
    """Every hop exports over OTLP; the alarm's spans form one chain: gateway -> ingest -> processor -> API."""
    _, alarm = run["raised"]
    spans: list[ReceivedSpan] = run["spans"]
    roots = [s for s in spans if s.name == "gateway.alarm" and s.attributes.get("alarm.id") == alarm["alarm_id"]]
    assert roots, f"no gateway span for {alarm['alarm_id']}: {sorted({s.name for s in spans})}"
    assert all(r.parent_span_id == "" for r in roots), "the gateway's decision starts the trace"
    chain = ["cardiogate-gateway:gateway.alarm", "cardiogate-ingest:ingest.alarm",
             "cardiogate-processor:processor.provisional_risk", "cardiogate-api:api.risk_update.deliver"]
    paths = []
    for root in roots:  # raised, and escalated if it escalated meanwhile: each is its own trace
        by_id = {s.span_id: s for s in spans if s.trace_id == root.trace_id}
        for delivered in (s for s in by_id.values() if s.name == "api.risk_update.deliver"):
            path, span = [], by_id.get(delivered.span_id)
            while span is not None:
                path.append(f"{span.service}:{span.name}")
                span = by_id.get(span.parent_span_id)
            paths.append(list(reversed(path)))
    assert chain in paths, f"the alarm's traces: {paths or [[f'{s.service}:{s.name}' for s in spans][:20]]}"


def _documented_metrics() -> dict[str, list[str]]:
    """docs/operations.md's "Metrics by service" table: service -> the series it must expose."""
    text = (REPO / "docs" / "operations.md").read_text()
    table = text.split("## Metrics by service", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines()
            if line.startswith("| ") and "`" in line and not line.startswith("| service ")]
    return {cells[0].strip(): re.findall(r"`([a-z0-9_]+)`", cells[2]) for cells in rows}


def test_every_service_exposes_the_documented_metrics(run: dict[str, Any]) -> None:
    scraped = {"gateway": "gateway", "ingest": "cloud", "processor": "processor", "consumers": "consumers",
               "API": "api"}
    documented = _documented_metrics()
    assert set(documented) == set(scraped), documented
    for service, names in documented.items():
        families = text_string_to_metric_families(run["metrics"][scraped[service]])
        exposed = set()
        for family in families:
            exposed.add(family.name)
            exposed.add(f"{family.name}_total" if family.type == "counter" else family.name)
        missing = [n for n in names if n not in exposed]
        assert not missing, f"{service} does not expose {missing}"
    assert 'store_records_applied_total{outcome="vitals"}' in run["metrics"]["consumers"]
    assert "processor_provisional_reports_total 0.0" not in run["metrics"]["processor"], \
        "the processor made provisional reports, but its metric did not count them"
