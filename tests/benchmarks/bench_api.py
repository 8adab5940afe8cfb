"""API latency under concurrent dashboards, and live risk fan-out to many WebSocket subscribers.

The real API (``run_api``: uvicorn, FastAPI, Strawberry, one process) runs in a child process on
127.0.0.1 over a database seeded with ``--patients`` patients across two sites, each with latest
vitals, feature windows and risk reports (every fourth with an active alarm), and users of every
role. Rate limits are off (``api.rate_per_s = 0``): the bench measures the service, not its
bucket. Not a test; run by hand (results in docs/benchmarks.md):

    .venv/bin/python -m tests.benchmarks.bench_api [--clients 200] [--requests 20] [--list-requests 5]
        [--ws-clients 1000] [--db sqlite|postgresql] [--ws-kind risk|graphql] [--skip-http] [--skip-ws]

(a) Request latency: ``--clients`` concurrent clients (asyncio + httpx, one keep-alive connection
and one login each), each sending ``--requests`` requests back to back (``--list-requests`` for
the list), one operation at a time:
``GET /healthz`` (no auth, no database: the framework's floor, the baseline the others are
divided by), ``getRiskAssessment(userId)`` for patients of the client's own site (token check,
authorization, an audit row, Redis and the database), and the ``patients`` list (the whole site:
vitals, alarms and risk of every patient). Latency is per request, measured by the client;
throughput is completed requests over the operation's wall time. Client and API run on the same
machine, so the CPU columns say which side was busy: a client near one core is the bench's limit.

(b) Fan-out: ``--ws-clients`` WebSockets (``/ws/risk``, or the GraphQL subscription
``realTimeRiskUpdate`` over graphql-transport-ws with ``--ws-kind graphql``) watch
``--ws-patients`` patients. Once Redis reports every subscription, ``--reports`` risk reports per
patient are published on ``cardiogate:risk:<patient>`` (as the processor does), ``--interval-ms``
apart, each carrying its publish time in ``computed_time_ns``; each delivery's latency is the
subscriber's receipt time minus that. The sockets share one token per site (a nurse's): a login
per socket would only add argon2id work before the clock starts. Skipped when Redis does not answer (without it the API
fans out only what it reads from Kafka itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from cardiogate.app.stack import free_port
from cardiogate.core.logs import setup_logging
from cardiogate.proto.v1 import features_pb2

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SITES = ("ward-1", "ward-2")
PASSWORD = "correct horse battery staple"
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z, aligned to 300 s
S = 10**9

RISK_QUERY = ("query Risk($id: ID!) { getRiskAssessment(userId: $id) { score confidence level news2 computedAt "
              "revision factors { name value contribution } recommendations } }")
PATIENTS_QUERY = ("query Patients { patients { pseudonym site news2 vitals { name value time } "
                  "risk { score level computedAt } activeAlarms { alarmId condition priority state } } }")
SUBSCRIPTION = ("subscription Live($id: ID!) { realTimeRiskUpdate(userId: $id) { userId score level "
                "report { revision computedAt } } }")


# -- the database and the API process ------------------------------------------------------------------


@dataclass
class Seeded:
    url: str
    patients: dict[str, list[str]]  # site -> pseudonyms
    users: dict[str, str]  # username -> site ("" for operator and admin)


def clinical_users(site: str) -> list[str]:
    return [f"nurse-{site}", f"clinician-{site}"]


def seed(url: str, n_patients: int) -> Seeded:
    """Sites, patients (latest vitals, two 5-minute windows and reports, every fourth an active alarm),
    gateways and users of every role. Pseudonyms are unique per run: Redis channels are shared."""
    from cardiogate.cloud import history
    from cardiogate.cloud.api.users import add_user
    from cardiogate.cloud.db import alarms_current, latest_vitals
    from cardiogate.cloud.registry.fleet import FleetRegistry
    from cardiogate.cloud.registry.migrate import open_database

    engine = open_database(url)
    try:
        fleet = FleetRegistry(engine)
        tag = uuid.uuid4().hex[:6]
        patients: dict[str, list[str]] = {site: [] for site in SITES}
        for i, site in enumerate(SITES):
            fleet.add_site(site, f"Ward {i + 1}")
            fleet.add_gateway(f"gw-{site}", site)
        for k in range(n_patients):
            site = SITES[k % len(SITES)]
            pseudonym = f"pt-{tag}-{k:05d}"
            fleet.add_patient(pseudonym, site)
            fleet.assign(pseudonym, f"gw-{site}")
            patients[site].append(pseudonym)
        users: dict[str, str] = {}
        for site in SITES:
            for username in clinical_users(site):
                add_user(engine, username, PASSWORD, username.split("-", 1)[0], [site])
                users[username] = site
        for username, role in (("operator", "operator"), ("admin", "admin")):
            add_user(engine, username, PASSWORD, role, [])
            users[username] = ""
        with engine.begin() as conn:
            for site, names in patients.items():
                for k, p in enumerate(names):
                    for vital, value in (("hr", 60.0 + k % 40), ("spo2", 93.0 + k % 6)):
                        conn.execute(latest_vitals.insert().values(
                            patient=p, vital=vital, value=value, device_time_ns=T0, receive_time_ns=T0,
                            device_id=f"{p}-w", gateway=f"gw-{site}", stream_id=f"{p}-w/vitals", sequence=1))
                    if k % 4 == 0:
                        conn.execute(alarms_current.insert().values(
                            alarm_id=f"a-{p}", patient=p, device_id=f"{p}-w", gateway=f"gw-{site}",
                            condition="tachycardia", priority="high", state="active", value=131.0, limit=130.0,
                            raised_time_ns=T0, cleared_time_ns=None, updated_time_ns=T0))
                starts = (T0, T0 + 300 * S)
                history.save(conn, [window(p, t, 70.0 + j) for p in names for j, t in enumerate(starts)],
                             [report(p, t, 0.2 + 0.3 * j, revision=0) for p in names for j, t in enumerate(starts)])
    finally:
        engine.dispose()
    return Seeded(url, patients, users)


def window(patient: str, start_ns: int, hr: float) -> features_pb2.FeatureWindow:
    return features_pb2.FeatureWindow(schema_version=1, patient=patient, width_s=300, start_device_time_ns=start_ns,
                                      end_device_time_ns=start_ns + 300 * S, computed_time_ns=start_ns + 301 * S,
                                      hr_mean=hr, hr_min=hr - 5, hr_max=hr + 5, hr_count=300, spo2_min=94.0,
                                      record_count=600)


def report(patient: str, start_ns: int, score: float, revision: int, computed_ns: int | None = None
           ) -> features_pb2.RiskReport:
    """A risk report as the processor's baseline writes it (the fan-out puts its publish time in computed_time_ns)."""
    return features_pb2.RiskReport(
        schema_version=1, patient=patient, width_s=300, window_start_device_time_ns=start_ns,
        window_end_device_time_ns=start_ns + 300 * S, score=score, confidence=0.8,
        factors=[features_pb2.RiskFactor(name="news2", value=5, contribution=0.6, description="NEWS2 subtotal 5"),
                 features_pb2.RiskFactor(name="af_burden", value=0.3, contribution=0.4, description="30% AF")],
        recommendations=["review within 1 hour"], model_name="news2-baseline", model_version="1", baseline=True,
        news2=5, level="medium", computed_time_ns=computed_ns if computed_ns is not None else start_ns + 301 * S,
        revision=revision)


@contextlib.contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """An empty database: SQLite in ``directory``, or a fresh schema in PostgreSQL's ``test`` database."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'cloud.sqlite3'}"
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def serve(settings_file: str) -> None:
    """Child process: ``run_api`` until killed (the same entry point as ``cardiogate api run``)."""
    from cardiogate.cloud.api.run import run_api
    from cardiogate.cloud.settings import CloudSettings

    setup_logging("INFO")  # as `cardiogate api run` logs, into api.log
    settings = CloudSettings.model_validate_json(Path(settings_file).read_text())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_api(settings))


@contextlib.contextmanager
def api_process(directory: Path, db_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The API on a free port in a child process (its log in ``directory/api.log``); yields its base URL."""
    from cardiogate.cloud.api.settings import ApiAuthSettings, ApiSettings
    from cardiogate.cloud.settings import CloudSettings

    listen = f"127.0.0.1:{free_port()}"
    settings = CloudSettings(database_url=db_url, api=ApiSettings(
        listen=listen, rate_per_s=0, redis_url=REDIS_URL, auth=ApiAuthSettings(issuer_key=directory / "issuer.key")))
    settings_file = directory / "api-settings.json"
    settings_file.write_text(settings.model_dump_json())
    log_path = directory / "api.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.bench_api", "--serve", str(settings_file)],
                                cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{listen}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer within 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- measuring -------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of a process so far; None: this one."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(q / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Latencies:
    name: str
    ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    cpu_client: float = 0.0
    cpu_api: float = 0.0

    def p(self, q: float) -> float:
        return percentile(sorted(self.ms), q)

    @property
    def per_s(self) -> float:
        return len(self.ms) / self.seconds if self.seconds else 0.0


def raise_open_files(needed: int) -> None:
    """Each WebSocket is a descriptor here and two in the API (the socket and its Redis subscription)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < needed:
            print(f"open-file limit {new} (hard limit) is below the {needed} wanted; connections may fail",
                  file=sys.stderr)


async def login(client: httpx.AsyncClient, username: str) -> str:
    response = await client.post("/auth/token", json={"username": username, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


Request = Callable[[int, int], Awaitable[httpx.Response]]  # (client index, request number) -> response


def graphql_error(response: httpx.Response) -> str | None:
    """Why a response is not a success, or None."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and body.get("errors"):
            return json.dumps(body["errors"])[:300]
    return None


async def load(name: str, clients: int, requests: int, send: Request, api_pid: int) -> Latencies:
    """Every client sends ``requests`` requests back to back, all clients at once, after one untimed
    warm-up request each (connections open, caches and the first audit rows written)."""
    out = Latencies(name)
    await asyncio.gather(*(send(i, -1) for i in range(clients)), return_exceptions=True)
    start_gate = asyncio.Event()

    async def one_client(i: int) -> None:
        await start_gate.wait()
        for r in range(requests):
            t0 = time.perf_counter()
            try:
                error = graphql_error(await send(i, r))
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is None:
                out.ms.append((time.perf_counter() - t0) * 1000)
            else:
                out.errors += 1
                out.first_error = out.first_error or error

    tasks = [asyncio.create_task(one_client(i)) for i in range(clients)]
    await asyncio.sleep(0)
    cpu_client, cpu_api = cpu_s(), cpu_s(api_pid)
    t0 = time.perf_counter()
    start_gate.set()
    await asyncio.gather(*tasks)
    out.seconds = time.perf_counter() - t0
    out.cpu_client, out.cpu_api = cpu_s() - cpu_client, cpu_s(api_pid) - cpu_api
    return out


async def http_bench(args: argparse.Namespace, base: str, seeded: Seeded, api_pid: int) -> list[Latencies]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=base, timeout=120, limits=limits) for _ in range(args.clients)]
    try:
        # one login per client, a few at a time: argon2id is meant to cost CPU
        gate = asyncio.Semaphore(4)
        users = [clinical_users(SITES[i % len(SITES)])[(i // len(SITES)) % 2] for i in range(args.clients)]

        async def log_in(client: httpx.AsyncClient, username: str) -> str:
            async with gate:
                return await login(client, username)

        t0 = time.perf_counter()
        tokens = await asyncio.gather(*(log_in(c, u) for c, u in zip(clients, users, strict=True)))
        print(f"{args.clients} logins in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        for client, token in zip(clients, tokens, strict=True):
            client.headers["Authorization"] = f"Bearer {token}"
        site_patients = [seeded.patients[seeded.users[u]] for u in users]

        async def healthz(i: int, r: int) -> httpx.Response:
            return await clients[i].get("/healthz")

        async def risk(i: int, r: int) -> httpx.Response:
            names = site_patients[i]  # client i starts at its own offset, so clients ask for different patients
            return await clients[i].post("/graphql", json={"query": RISK_QUERY,
                                                           "variables": {"id": names[(i + r) % len(names)]}})

        async def patients(i: int, r: int) -> httpx.Response:
            return await clients[i].post("/graphql", json={"query": PATIENTS_QUERY})

        results = []
        for name, send, n in (("GET /healthz", healthz, args.requests), ("getRiskAssessment", risk, args.requests),
                              ("patients (site list)", patients, args.list_requests)):
            print(f"load: {name}", file=sys.stderr, flush=True)
            results.append(await load(name, args.clients, n, send, api_pid))
        return results
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


# -- fan-out ------------------------------------------------------------------------------------------


@dataclass
class FanOut:
    connections: int = 0
    expected: int = 0
    received: int = 0
    ms: list[float] = field(default_factory=list)
    connect_s: float = 0.0
    subscribed_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def sent_ns(message: dict[str, Any], kind: str) -> tuple[int, int] | None:
    """(revision, publish time ns) of a delivery, or None for any other message."""
    if kind == "risk":
        if message.get("type") != "risk":
            return None
        r = message["report"]
        return int(r.get("revision", 0)), int(r["computedTimeNs"])
    if message.get("type") != "next":
        return None
    r = message["payload"]["data"]["realTimeRiskUpdate"]["report"]
    return int(r["revision"]), round(datetime.fromisoformat(r["computedAt"]).timestamp() * 1e9)


async def open_socket(base_ws: str, kind: str, patient: str, token: str) -> Any:
    """A subscribed connection (``/ws/risk`` has said ready; graphql-transport-ws has acked and subscribed)."""
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    if kind == "risk":
        ws = await connect(f"{base_ws}/ws/risk?userId={patient}&token={token}", open_timeout=120,
                           ping_interval=None, max_queue=None)
        first = json.loads(await ws.recv())
        if first.get("type") != "ready":
            await ws.close()
            raise RuntimeError(f"/ws/risk refused: {first}")
        return ws
    ws = await connect(f"{base_ws}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=120,
                       ping_interval=None, max_queue=None)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    ack = json.loads(await ws.recv())
    if ack.get("type") != "connection_ack":
        await ws.close()
        raise RuntimeError(f"graphql-transport-ws refused: {ack}")
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": SUBSCRIPTION, "variables": {"id": patient}}}))
    return ws


async def fan_out(args: argparse.Namespace, base: str, seeded: Seeded) -> FanOut:
    import redis.asyncio as aioredis

    out = FanOut()
    watched = [seeded.patients[SITES[k % len(SITES)]][k // len(SITES)] for k in range(args.ws_patients)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        tokens = {site: await login(client, clinical_users(site)[0]) for site in SITES}
    site_of = {p: site for site, names in seeded.patients.items() for p in names}
    base_ws = base.replace("http://", "ws://", 1)
    redis = aioredis.Redis.from_url(REDIS_URL)
    gate = asyncio.Semaphore(args.ws_connect_parallel)
    sockets: list[Any] = []
    delivered: set[tuple[int, int]] = set()  # (connection, revision)
    all_delivered = asyncio.Event()

    async def connect_one(j: int) -> None:
        patient = watched[j % len(watched)]
        async with gate:
            try:
                sockets.append((j, await open_socket(base_ws, args.ws_kind, patient, tokens[site_of[patient]])))
            except Exception as exc:
                out.failures.append(f"{type(exc).__name__}: {exc}")

    async def read(j: int, ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                now = time.time_ns()
                got = sent_ns(json.loads(raw), args.ws_kind)
                if got is not None and (j, got[0]) not in delivered:
                    delivered.add((j, got[0]))
                    out.ms.append((now - got[1]) / 1e6)
                    if out.expected and len(delivered) >= out.expected:
                        all_delivered.set()

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(connect_one(j) for j in range(args.ws_clients)))
        out.connect_s = time.perf_counter() - t0
        out.connections = len(sockets)
        readers = [asyncio.create_task(read(j, ws)) for j, ws in sockets]
        channels = [f"cardiogate:risk:{p}" for p in watched]
        while True:  # every subscription is a Redis subscriber once the API's subscribe() ran
            counts = await redis.pubsub_numsub(*channels)
            if sum(int(n) for _, n in counts) >= out.connections:
                break
            if time.perf_counter() - t0 > 180:
                out.failures.append(f"only {sum(int(n) for _, n in counts)} of {out.connections} subscribed "
                                    "after 180 s")
                break
            await asyncio.sleep(0.2)
        out.subscribed_s = time.perf_counter() - t0
        out.expected = args.reports * out.connections
        for revision in range(1, args.reports + 1):
            for p in watched:
                payload = report(p, T0 + 600 * S, 0.5, revision, computed_ns=time.time_ns()).SerializeToString()
                await redis.publish(f"cardiogate:risk:{p}", payload)
            await asyncio.sleep(args.interval_ms / 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_delivered.wait(), args.drain_s)
        out.received = len(delivered)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await asyncio.gather(*(asyncio.wait_for(ws.close(), 5) for _, ws in sockets), return_exceptions=True)
        await redis.aclose()
    return out


# -- the report -----------------------------------------------------------------------------------


def print_http(args: argparse.Namespace, results: list[Latencies]) -> None:
    floor = results[0]
    print(f"(a) {args.clients} concurrent clients, each {args.requests} requests per operation "
          f"({args.list_requests} for the patients list); one keep-alive connection and token per client; "
          "rate limits off")
    print("| operation | requests | errors | p50 ms | p99 ms | max ms | req/s | p50 / healthz | p99 / healthz "
          "| CPU s client | CPU s API |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r.name} | {len(r.ms):,} | {r.errors} | {r.p(50):.1f} | {r.p(99):.1f} | {max(r.ms, default=0):.1f} "
              f"| {r.per_s:,.0f} | {r.p(50) / floor.p(50):.1f} | {r.p(99) / floor.p(99):.1f} "
              f"| {r.cpu_client:.1f} | {r.cpu_api:.1f} |")
    for r in results:
        if r.errors:
            print(f"{r.name}: first error: {r.first_error}")


def print_fan_out(args: argparse.Namespace, f: FanOut) -> None:
    ms = sorted(f.ms)
    route = "/ws/risk" if args.ws_kind == "risk" else "GraphQL realTimeRiskUpdate (graphql-transport-ws)"
    print(f"(b) fan-out over Redis pub/sub to {args.ws_clients} WebSockets ({route}) watching {args.ws_patients} "
          f"patients; {args.reports} reports per patient, {args.interval_ms:.0f} ms apart")
    print(f"connected {f.connections} in {f.connect_s:.1f} s, all subscribed after {f.subscribed_s:.1f} s")
    print("| deliveries expected | received | p50 ms | p99 ms | max ms |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {f.expected:,} | {f.received:,} | {percentile(ms, 50):.1f} | {percentile(ms, 99):.1f} "
          f"| {max(ms, default=float('nan')):.1f} |")
    if f.failures:
        print(f"{len(f.failures)} connection failures, first: {f.failures[0]}")


def redis_answers() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


async def bench(args: argparse.Namespace, base: str, seeded: Seeded, api_pid: int, use_redis: bool) -> None:
    if not args.skip_http:
        print_http(args, await http_bench(args, base, seeded, api_pid))
    if args.skip_ws:
        return
    if not use_redis:
        print(f"(b) skipped: Redis does not answer at {REDIS_URL} (the fan-out goes through Redis pub/sub)")
        return
    print("fan-out: connecting", file=sys.stderr, flush=True)
    print_fan_out(args, await fan_out(args, base, seeded))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite",
                   help="postgresql: a fresh schema in database 'test' at 127.0.0.1:5432 (trust auth)")
    p.add_argument("--patients", type=int, default=200, help="patients, spread over two sites")
    p.add_argument("--clients", type=int, default=200, help="concurrent HTTP clients")
    p.add_argument("--requests", type=int, default=20, help="requests per client to /healthz and getRiskAssessment")
    p.add_argument("--list-requests", type=int, default=5,
                   help="requests per client for the patients list (a whole site each: far slower)")
    p.add_argument("--ws-clients", type=int, default=1000, help="WebSocket subscribers")
    p.add_argument("--ws-patients", type=int, default=10, help="patients the subscribers watch")
    p.add_argument("--ws-kind", choices=["risk", "graphql"], default="risk",
                   help="risk: /ws/risk; graphql: realTimeRiskUpdate over graphql-transport-ws")
    p.add_argument("--ws-connect-parallel", type=int, default=50, help="WebSocket handshakes in flight at once")
    p.add_argument("--reports", type=int, default=20, help="reports published per watched patient")
    p.add_argument("--interval-ms", type=float, default=100.0, help="between rounds of publishing")
    p.add_argument("--drain-s", type=float, default=15.0, help="how long to wait for the last deliveries")
    p.add_argument("--skip-http", action="store_true", help="only the fan-out")
    p.add_argument("--skip-ws", action="store_true", help="only the request latency")
    p.add_argument("--serve", metavar="SETTINGS_JSON", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    setup_logging("WARNING")  # the seeding's per-user lines are not the bench's output
    if args.ws_patients > args.patients or args.patients < len(SITES):
        p.error("--patients must be at least 2 and at least --ws-patients")
    raise_open_files(2 * args.ws_clients + args.clients + 1024)
    use_redis = redis_answers()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, database(args.db, Path(tmp)) as url:
        t0 = time.perf_counter()
        seeded = seed(url, args.patients)
        print(f"seeded {args.patients} patients in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        with api_process(Path(tmp), url) as (base, proc):
            print(f"API (uvicorn, one process) on {args.db}, {args.patients} patients over {len(SITES)} sites; "
                  f"live updates via {'Redis' if use_redis else 'the process itself (no Redis)'}; "
                  f"{os.cpu_count()} CPUs shared by the API and the clients")
            asyncio.run(bench(args, base, seeded, proc.pid, use_redis))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
