"""``cardiogate demo``: cloud + gateway + simulated patients on this machine, with a live status.

The local MQTT plane is locked as on a site: the demo writes the broker's files as
``cardiogate gateway mqtt-setup`` does (TLS, one identity per client, per-identity ACL) and runs
its own Mosquitto from them on a free port, or, without the mosquitto binary, an embedded amqtt
broker serving the same files. tansu is started as the Kafka broker; nothing else needs to be
installed or running.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardiogate.app.site_mqtt import MONITOR, NURSE, SiteMqtt, mosquitto_binary, prepare_site_mqtt
from cardiogate.app.stack import LocalStack, Patient


@dataclass
class PatientStatus:
    heart_rate: float | None = None
    connected: bool = False
    alarms: list[str] = field(default_factory=list)
    samples_in_kafka: int = 0


def demo_patients(count: int, tachy_at_s: float) -> list[Patient]:
    """``count`` patients; the first becomes tachycardic (to ~165 bpm) ``tachy_at_s`` seconds in."""
    patients = []
    for i in range(count):
        base = 68.0 + 6.0 * i
        knots = [(0.0, base)] + ([(tachy_at_s, base), (tachy_at_s + 6.0, 165.0)] if i == 0 else [])
        patients.append(Patient(f"pt-{1001 + i}", f"C0:00:00:00:00:{i + 1:02X}", knots, seed=i + 1))
    return patients


def _kafka_counter(bootstrap: str, status: dict[str, PatientStatus], stop: threading.Event) -> None:
    from cardiogate.app.kafka_reader import RecordReader

    reader = None
    while not stop.is_set() and reader is None:
        try:
            reader = RecordReader(bootstrap, ["ecg.raw"])
        except Exception:
            time.sleep(1)
    assert reader is not None or stop.is_set()
    try:
        while reader is not None and not stop.is_set():
            for kr in reader.poll(0.5):
                st = status.setdefault(kr.record.patient, PatientStatus())
                st.samples_in_kafka += kr.record.samples.sample_count
    finally:
        if reader is not None:
            reader.close()


def _clock(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9).strftime("%H:%M:%S.%f")[:-3]


async def _watch_mqtt(mqtt: SiteMqtt, status: dict[str, PatientStatus], alarm_lines: list[str]) -> None:
    import aiomqtt

    while True:
        try:
            async with mqtt.client(MONITOR, f"cardiogate-demo-{time.time_ns()}") as client:
                await client.subscribe(f"cardiogate/{mqtt.site}/#", qos=1)
                async for msg in client.messages:
                    parts = str(msg.topic).split("/")
                    if len(parts) != 4 or not isinstance(msg.payload, bytes | bytearray):
                        continue
                    patient, leaf = parts[2], parts[3]
                    st = status.get(patient)
                    if st is None or not msg.payload:  # another run's retained topics on a shared broker
                        continue
                    body = json.loads(msg.payload)
                    if leaf == "vitals":
                        if body.get("source") == "hrm" and "heart_rate_bpm" in body:  # the watch's own HR
                            st.heart_rate = body["heart_rate_bpm"]
                    elif leaf == "state":
                        st.connected = bool(body.get("connected"))
                    elif leaf == "alarms":
                        line = (f"ALARM {body['state'].upper():7} {body['priority']:6} {patient} {body['condition']}: "
                                f"{body['value']:g} (limit {body['limit']:g}), triggering sample at "
                                f"{_clock(body['trigger_sample_device_time_ns'])}")
                        st.alarms.append(body["condition"])
                        alarm_lines.append(line)
                        print(line, flush=True)
        except aiomqtt.MqttError:
            await asyncio.sleep(1)


def _print_access(mqtt: SiteMqtt, patient: str) -> None:
    """How to reach the locked broker (paths only: the passwords stay in their 0600 files)."""
    roles = ", ".join(f"{name} ({role})" for name, role in sorted(mqtt.identities.items()))
    print(f"demo: MQTT on 127.0.0.1:{mqtt.port}, identities {roles}; credentials in {mqtt.directory / 'credentials'}",
          flush=True)
    print(f"demo: e.g. mosquitto_sub -p {mqtt.port} --cafile {mqtt.ca_file} -u {MONITOR} "
          f"-P \"$(cat {mqtt.password_file(MONITOR)})\" -t 'cardiogate/{mqtt.site}/#'; a nurse station "
          f"acknowledges on {mqtt.command_topic(patient, NURSE)}", flush=True)


def _print_api(stack: LocalStack, dashboard: bool) -> None:
    users = ", ".join(f"{name} ({role})" for name, role in stack.api_users.items())
    print(f"demo: API at {stack.api_url} (GraphQL /graphql, risk WebSocket /ws/risk, OpenAPI /openapi.json, "
          f"tokens from POST /auth/token); users {users}, passwords in {stack.workdir / 'api-credentials'}",
          flush=True)
    if dashboard:
        print(f"demo: dashboard at {stack.api_url}/ : sign in as demo-nurse (ward), demo-clinician (ward, labels) "
              f"or demo-operator (fleet, models); each password is the file of that name in "
              f"{stack.workdir / 'api-credentials'}", flush=True)


def _build_dashboard() -> bool:
    """Build the web dashboard if its sources changed; the demo goes on without it when that fails."""
    from cardiogate.app.dashboard_build import DashboardBuildError, ensure_built

    try:
        ensure_built(say=lambda line: print(f"demo: {line}", flush=True))
    except (DashboardBuildError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"demo: the web dashboard is not available: {exc}", flush=True)
        return False
    return True


def _status_line(elapsed: float, status: dict[str, PatientStatus]) -> str:
    cells = []
    for patient in sorted(status):
        st = status[patient]
        hr = f"{st.heart_rate:.0f}" if st.heart_rate is not None else "--"
        flag = "!" if st.alarms else " "
        cells.append(f"{patient} HR {hr:>3}{flag}")
    delivered = sum(s.samples_in_kafka for s in status.values())
    alarms = sum(len(s.alarms) for s in status.values())
    return f"[{elapsed:5.0f}s] " + " | ".join(cells) + f" | alarms {alarms} | ECG samples in Kafka {delivered:,}"


async def run_demo(duration_s: float, patients: int, workdir: Path | None, keep: bool,
                   embedded_mqtt: bool = False) -> int:
    """Run the demo; returns a process exit code."""
    dashboard = await asyncio.to_thread(_build_dashboard)
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="cardiogate-demo-")) if workdir is None else workdir
    broker: Any = None
    stack = LocalStack(work, demo_patients(patients, tachy_at_s=min(12.0, max(2.0, duration_s / 3))), read_side=True)
    if embedded_mqtt or mosquitto_binary() is None:
        from cardiogate.app.embedded_mqtt import start_embedded_broker

        stack.mqtt = prepare_site_mqtt(work / "mqtt", stack.site, stack.gateway_id)
        broker = await start_embedded_broker(stack.mqtt)
        print(f"demo: started an embedded MQTT broker (amqtt) on 127.0.0.1:{stack.mqtt.port}: TLS, a password per "
              "identity, per-identity publish and subscribe ACL", flush=True)
    else:
        print("demo: starting Mosquitto on a free port: TLS, a password per identity, per-identity ACL", flush=True)
    status: dict[str, PatientStatus] = {p.pseudonym: PatientStatus() for p in stack.patients}
    alarm_lines: list[str] = []
    stop = threading.Event()
    counter = threading.Thread(target=_kafka_counter, args=(stack.kafka_bootstrap, status, stop), daemon=True)
    # The monitor subscribes before anything else starts: the tachycardia may begin while the cloud's read side
    # is still coming up, and an alarm is an event, not retained state.
    await asyncio.to_thread(stack.start_mqtt)
    assert stack.mqtt is not None
    watcher: asyncio.Task[None] | None = asyncio.create_task(_watch_mqtt(stack.mqtt, status, alarm_lines))
    starting = asyncio.ensure_future(asyncio.to_thread(stack.start))
    print(f"demo: starting tansu, cloud ingest, stream processor, API, simulator and gateway (logs in {work})",
          flush=True)
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a service manager: stop cleanly either way
        if main_task is not None:
            loop.add_signal_handler(sig, main_task.cancel)
    try:
        await asyncio.shield(starting)
        assert stack.mqtt is not None
        _print_access(stack.mqtt, stack.patients[0].pseudonym)
        _print_api(stack, dashboard)
        counter.start()
        t0 = time.monotonic()
        while duration_s <= 0 or time.monotonic() - t0 < duration_s:
            await asyncio.sleep(2.0)
            dead = stack.check_alive()
            if dead:
                print(f"demo: {', '.join(dead)} exited unexpectedly; see {work}", flush=True)
                return 1
            print(_status_line(time.monotonic() - t0, status), flush=True)
    except asyncio.CancelledError:
        print("demo: interrupted", flush=True)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        print("demo: stopping ...", flush=True)
        with contextlib.suppress(Exception):
            await starting  # a start still under way must finish before its processes can be stopped
        stop.set()
        if counter.is_alive():
            await asyncio.to_thread(counter.join, 5)
        await asyncio.to_thread(stack.stop)
        if broker is not None:
            await broker.shutdown()
        if own_dir and not keep:
            shutil.rmtree(work, ignore_errors=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    delivered = sum(s.samples_in_kafka for s in status.values())
    print(f"demo: done. {len(alarm_lines)} alarm event(s); {delivered:,} ECG samples delivered to Kafka.")
    return 0
