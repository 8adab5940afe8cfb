"""End-to-end uplink throughput (outbox -> mTLS gRPC -> ingest -> Kafka) beside a raw producer.

One run, one tansu broker: first a plain confluent-kafka producer (the ingest's producer
configuration with librdkafka's default linger, connected before the clock starts) writes
the serialized records of the benchmark straight to Kafka and flushes; then a gateway's
outbox, holding the same records, is drained by the real uplink through the real ingest
(mTLS, authorization, validation, de-duplication ledger, Kafka, acks) until every record
is acked, which the ingest does only after Kafka confirmed it. The ratio e2e / raw says
how close the pipeline gets to a bare producer. Each process's CPU time per record shows
where the cost is. Not a test; run by hand (results in docs/benchmarks.md):

    .venv/bin/python tests/benchmarks/bench_ingest_vs_producer.py [--records 100000] [--repeat 3]

The ingest runs in a child process (as in production, apart from the gateway);
``--ingest inproc`` runs it in the gateway's event loop instead. The outbox is filled
before the clock starts, so the e2e figure is a backlog drain (the uplink's backlog pacing
is turned off: it exists to protect live data, not to measure). ``--profile FILE`` writes
cProfile stats of the last e2e round's gateway side to FILE and of the ingest process's
whole life to FILE.ingest (in-process: both in FILE). The ingest process's CPU is also shown
by thread (main: asyncio, gRPC messages and the Python they run; db: the ledger's worker
threads; kafka-poll: delivery reports; librdkafka; other: gRPC's own threads).
``--stages`` times the ingest's per-batch steps on their own instead (no broker needed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from cardiogate.app.stack import free_port
from cardiogate.cloud.kafka_bridge import ensure_topics, producer_config
from cardiogate.cloud.settings import AuthzSettings, CloudSettings, EnrollmentSettings, KafkaSettings, PkiSettings
from cardiogate.cloud.tansu import start_tansu
from cardiogate.edge.outbox import ROW_OVERHEAD_BYTES, Lane, Outbox
from cardiogate.edge.settings import UplinkSettings
from cardiogate.edge.uplink import Uplink
from cardiogate.proto.v1 import telemetry_pb2 as pb

GATEWAY = "gw-bench-1"
SAMPLES = 250  # a 1 s block at 250 Hz, int16: ~610 B serialized, as in bench_outbox


def ecg_block(device: int, i: int, t0_ns: int, round_: int) -> pb.Record:
    t = t0_ns + i * 1_000_000_000
    address = f"C0:00:00:{round_:02X}:{device // 256:02X}:{device % 256:02X}"
    return pb.Record(stream_id=f"{address}/ecg", device_id=address, patient=f"pt-{device:04d}",
                     kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=t, receive_time_ns=t, sample_rate_hz=250.0,
                                            scale=1.0, unit="uV", encoding=pb.SAMPLE_ENCODING_INT16_LE,
                                            samples=bytes((i * 7 + k) % 251 for k in range(2 * SAMPLES)),
                                            sample_count=SAMPLES, device_sequence_first=i * 10,
                                            device_sequence_last=i * 10 + 9))


def records(n: int, devices: int, round_: int) -> list[pb.Record]:
    """``n`` ECG blocks round-robin over ``devices`` watches (new stream ids each round), numbered
    within their stream, the newest a few seconds old."""
    t0 = time.time_ns() - (n // devices + 5) * 1_000_000_000
    out = [ecg_block(k % devices, k // devices, t0, round_) for k in range(n)]
    for k, r in enumerate(out):
        r.sequence = k // devices
    return out


# -- the cloud side ---------------------------------------------------------------------------------


def cloud_settings(directory: Path, bootstrap: str, database_url: str | None) -> CloudSettings:
    from cardiogate.cloud.pki import ensure_local_pki

    pki = PkiSettings(ca_cert=directory / "ca.crt", ca_key=directory / "ca.key",
                      server_cert=directory / "server.crt", server_key=directory / "server.key")
    ensure_local_pki(pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key)
    return CloudSettings(listen=f"127.0.0.1:{free_port()}",
                         database_url=database_url or f"sqlite:///{directory / 'cloud.sqlite3'}",
                         tls=True, pki=pki, enrollment=EnrollmentSettings(listen=f"127.0.0.1:{free_port()}"),
                         authz=AuthzSettings(enforce=True), kafka=KafkaSettings(bootstrap=bootstrap))


def enroll(settings: CloudSettings, identity_dir: Path, devices: int) -> None:
    """What `cardiogate gateway enroll` and `cloud admin assign` leave behind, without the token round trip."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from cardiogate.cloud.authz import assign
    from cardiogate.cloud.db import make_engine
    from cardiogate.cloud.identity import record_certificate
    from cardiogate.cloud.pki import issue_gateway_cert, key_pem, load_ca, new_key, serial_hex
    from cardiogate.edge.enrollment import CA_FILE, CERT_FILE, KEY_FILE

    engine = make_engine(settings.db_url)  # creates the tables
    ca = load_ca(settings.pki.ca_cert, settings.pki.ca_key)
    key = new_key()
    cert = issue_gateway_cert(ca, key.public_key(), GATEWAY, 1)
    record_certificate(engine, None, GATEWAY, serial_hex(cert), 0, 2**62)
    for d in range(devices):
        assign(engine, GATEWAY, f"pt-{d:04d}")
    engine.dispose()
    identity_dir.mkdir(parents=True, exist_ok=True)
    (identity_dir / KEY_FILE).write_bytes(key_pem(key))
    (identity_dir / CERT_FILE).write_bytes(cert.public_bytes(Encoding.PEM))
    (identity_dir / CA_FILE).write_bytes(ca.cert_pem)


def name_os_threads() -> None:
    """Give Python threads started from now on their name at the OS level too (Python 3.11 does not),
    so the per-thread CPU figures can tell the delivery-report poller from the database workers."""
    import ctypes
    import threading

    libc = ctypes.CDLL(None)
    start = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def named(self: threading.Thread) -> None:
        libc.prctl(15, self.name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        start(self)

    threading.Thread._bootstrap_inner = named  # type: ignore[attr-defined]


def run_ingest_process(settings_json: str, ready: Any, profile: str | None) -> None:
    """Child process: the cloud's `serve()` until SIGTERM."""
    import signal

    from cardiogate.cloud import server

    serve = server.serve
    settle_heap = getattr(server, "settle_heap", None)  # absent in code before it (for before/after runs)
    settings = CloudSettings.model_validate_json(settings_json)
    name_os_threads()

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(serve(settings, started))
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await started.wait()
        if settle_heap is not None:  # as run_cloud() does
            settle_heap()
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    asyncio.run(main())
    if prof and profile:
        prof.disable()
        prof.dump_stats(profile)


@contextlib.contextmanager
def ingest_process(settings: CloudSettings, profile: str | None) -> Iterator[int]:
    """The ingest in a child process; yields its pid."""
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=run_ingest_process, args=(settings.model_dump_json(), ready, profile), daemon=True)
    proc.start()
    try:
        if not ready.wait(60) or proc.pid is None:
            raise RuntimeError("the ingest did not start within 60 s")
        yield proc.pid
    finally:
        if proc.pid is not None:
            os.kill(proc.pid, 15)
        proc.join(30)


@contextlib.asynccontextmanager
async def ingest_inproc(settings: CloudSettings) -> Any:
    from cardiogate.cloud.server import serve

    started = asyncio.Event()
    task = asyncio.create_task(serve(settings, started))
    await asyncio.wait_for(started.wait(), 60)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- the two contenders -------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None) -> float:
    """CPU time (user + system, all threads) of a process so far; None: this process."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds so far of a process's threads, grouped: the main thread (asyncio, gRPC and the
    Python they run), librdkafka's threads, the delivery-report poller, the worker threads
    (``asyncio.to_thread``: the ledger), and the rest (gRPC's own threads)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            group = ("main" if task.name == str(pid) else "librdkafka" if comm.startswith("rdk:")
                     else "kafka-poll" if comm.startswith("kafka-poll") else "db" if comm.startswith("asyncio_")
                     else "other")
            out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


@contextlib.contextmanager
def cpu_meter(pids: dict[str, int | None], into: dict[str, float]) -> Iterator[None]:
    """CPU seconds each process spent inside the block (the ingest's pid is absent when it runs in-process),
    and the ingest's by thread group as ``ingest/<group>``."""
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    ingest = pids.get("ingest")
    threads = thread_cpu_s(ingest) if ingest else {}
    yield
    into.update({name: cpu_s(pid) - before[name] for name, pid in pids.items()})
    if ingest:
        into.update({f"ingest/{g}": s - threads.get(g, 0.0) for g, s in thread_cpu_s(ingest).items()})


@dataclass
class Result:
    records: int
    nbytes: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds during the run

    def cpu_us(self, name: str) -> float:
        """CPU microseconds per record in that process."""
        return 1e6 * self.cpu.get(name, 0.0) / self.records

    @property
    def per_s(self) -> float:
        return self.records / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / self.seconds / 1e6


TOPIC = {pb.STREAM_KIND_ECG: "ecg.raw", pb.STREAM_KIND_VITALS: "vitals"}


def raw_producer(settings: KafkaSettings, payloads: list[tuple[pb.Record, bytes]]) -> Result:
    """The same bytes, keys and headers, produced in a tight loop; done when flush() returns. The
    producer is connected and knows the partitions before the clock starts, like the ingest's."""
    producer = Producer({**producer_config(settings), "linger.ms": 5})  # librdkafka's default, best in a loop
    for topic in {TOPIC[r.kind] for r, _ in payloads}:
        producer.produce(topic, value=b"warm-up")
    if producer.flush(30):
        raise RuntimeError("the raw producer could not reach the broker")
    start = time.perf_counter()
    for r, value in payloads:
        while True:
            try:
                producer.produce(TOPIC[r.kind], value=value, key=r.patient.encode(),
                                 headers=[("gateway", GATEWAY.encode()), ("stream", r.stream_id.encode()),
                                          ("seq", str(r.sequence).encode())])
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - start
    assert left == 0, f"{left} records not delivered"
    return Result(len(payloads), sum(len(v) for _, v in payloads), seconds)


async def drain_outbox(uplink_settings: UplinkSettings, outbox: Outbox, profile: str | None) -> Result:
    """Uplink the pre-filled outbox until every record is acked (the ingest acks after Kafka confirmed)."""
    n, nbytes = outbox.depth(), sum(outbox.lane_bytes(lane) for lane in Lane)
    uplink = Uplink(GATEWAY, outbox, uplink_settings)
    prof = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if prof:
        prof.enable()
    task = asyncio.create_task(uplink.run())
    try:
        while outbox.depth():
            await asyncio.sleep(0.005)
            if task.done():
                task.result()
        seconds = time.perf_counter() - start
    finally:
        if prof and profile:
            prof.disable()
            prof.dump_stats(profile)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return Result(n, nbytes - n * ROW_OVERHEAD_BYTES, seconds)


async def e2e_once(args: argparse.Namespace, directory: Path, cloud: CloudSettings, batch: list[pb.Record],
                   profile: str | None, pids: dict[str, int | None]) -> Result:
    box = Outbox(directory / f"outbox-{time.time_ns()}.sqlite3")
    try:
        for i in range(0, len(batch), 500):
            box.append_many(batch[i:i + 500])
        box.sync()
        settings = UplinkSettings(target=cloud.listen, tls=True, identity_dir=directory / "identity",
                                  server_name="localhost", batch_max_records=args.batch_records,
                                  batch_max_bytes=args.batch_bytes, compression=args.compression,
                                  max_in_flight=args.in_flight, backlog_max_bytes_per_s=0)
        cpu: dict[str, float] = {}
        with cpu_meter(pids, cpu):
            result = await drain_outbox(settings, box, profile)
        result.cpu = cpu
        return result
    finally:
        box.close()


async def bench(args: argparse.Namespace, directory: Path, bootstrap: str,
                broker_pid: int) -> tuple[list[Result], list[Result]]:
    cloud = cloud_settings(directory, bootstrap, args.database_url)
    await asyncio.to_thread(ensure_topics, cloud.kafka)
    await asyncio.to_thread(enroll, cloud, directory / "identity", args.devices)
    raws: list[Result] = []
    e2es: list[Result] = []
    inproc = args.ingest == "inproc"
    pids: dict[str, int | None] = {"gateway": None, "tansu": broker_pid}
    async with contextlib.AsyncExitStack() as stack:
        if inproc:
            await stack.enter_async_context(ingest_inproc(cloud))
        else:
            pids["ingest"] = stack.enter_context(
                ingest_process(cloud, f"{args.profile}.ingest" if args.profile else None))
        for rep in range(args.repeat):
            # new streams each round, so the ingest's ledger never sees duplicates
            batch = records(args.records, args.devices, 2 * rep)
            raw_batch = records(args.records, args.devices, 2 * rep + 1)
            payloads = [(r, r.SerializeToString()) for r in raw_batch]
            cpu: dict[str, float] = {}
            with cpu_meter(pids, cpu):
                raws.append(await asyncio.to_thread(raw_producer, cloud.kafka, payloads))
            raws[-1].cpu = cpu
            prof = args.profile if rep == args.repeat - 1 else None
            in_prof = cProfile.Profile() if (prof and inproc) else None
            if in_prof:
                in_prof.enable()
            e2es.append(await e2e_once(args, directory, cloud, batch, None if in_prof else prof, pids))
            if in_prof and prof:
                in_prof.disable()
                in_prof.dump_stats(prof)
            print(f"round {rep + 1}: raw {raws[-1].per_s:,.0f} records/s, e2e {e2es[-1].per_s:,.0f} records/s",
                  file=sys.stderr, flush=True)
    return raws, e2es


def stage_costs(records_per_batch: int, directory: Path) -> list[tuple[str, float]]:
    """CPU µs per record of the ingest's per-batch steps, each timed on its own in this thread."""
    from cardiogate.cloud.authz import Grants
    from cardiogate.cloud.db import make_engine
    from cardiogate.cloud.dedup import SequenceLedger
    from cardiogate.cloud.ingest import prepare_records
    from cardiogate.cloud.settings import IngestLimits
    from cardiogate.cloud.validation import validate_batch
    from cardiogate.cloud.wire import decode_request
    from cardiogate.proto.v1 import ingest_pb2

    batch = pb.TelemetryBatch(batch_id=1, records=records(records_per_batch, 10, 0))
    data = ingest_pb2.UploadRequest(batch=batch).SerializeToString()
    received = decode_request(data)
    assert received is not None
    limits = IngestLimits()
    checked = validate_batch(batch, limits)
    grants = Grants({f"pt-{d:04d}": frozenset({"*"}) for d in range(10)})
    ledger = SequenceLedger(make_engine(f"sqlite:///{directory / 'stages.sqlite3'}"), 5.0)
    streams = list({r.stream_id for r in batch.records})

    def ledger_round() -> None:
        owner = ledger.new_owner()
        expected = ledger.claim("gw", streams, owner)
        ledger.commit("gw", owner, expected, {s: n + records_per_batch for s, n in expected.items()})

    steps: list[tuple[str, Callable[[], object]]] = [
        ("decode request (parse + record bytes)", lambda: decode_request(data)),
        ("validate", lambda: validate_batch(batch, limits, size=received.batch_size)),
        ("authorize", lambda: all(grants.allows(p, d) for p, d in checked.senders)),
        ("Kafka records", lambda: prepare_records(batch, GATEWAY, TOPIC, received.record_bytes)),
        ("ledger claim + commit (SQLite)", ledger_round),
    ]
    out = []
    for name, step in steps:
        step()
        rounds = max(3, 20_000 // records_per_batch)
        best = float("inf")
        for _ in range(5):
            t0 = time.thread_time()
            for _ in range(rounds):
                step()
            best = min(best, (time.thread_time() - t0) / rounds)
        out.append((name, 1e6 * best / records_per_batch))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--records", type=int, default=100_000, help="ECG blocks per round (~610 B each)")
    p.add_argument("--devices", type=int, default=10, help="watches (streams, patients) they are spread over")
    p.add_argument("--repeat", type=int, default=3, help="rounds; the table shows the median")
    p.add_argument("--ingest", choices=["process", "inproc"], default="process")
    p.add_argument("--batch-records", type=int, default=UplinkSettings().batch_max_records)
    p.add_argument("--batch-bytes", type=int, default=UplinkSettings().batch_max_bytes)
    p.add_argument("--compression", choices=["gzip", "deflate", "none"], default=UplinkSettings().compression)
    p.add_argument("--in-flight", type=int, default=UplinkSettings().max_in_flight)
    p.add_argument("--dir", type=Path, default=None,
                   help="where the outbox and the ledger go (default: a temporary directory; /dev/shm: no disk)")
    p.add_argument("--database-url", default=None,
                   help="the ingest's ledger database (an empty one; default: SQLite in a temporary directory)")
    p.add_argument("--profile", default=None, help="write cProfile stats of the last e2e round here")
    p.add_argument("--stages", action="store_true",
                   help="instead: the ingest's per-batch steps timed on their own (CPU µs/record), at the "
                        "default batch size and at --batch-records")
    args = p.parse_args(argv)
    if args.stages:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            sizes = sorted({UplinkSettings().batch_max_records, args.batch_records})
            costs = {n: stage_costs(n, Path(tmp)) for n in sizes}
        print("| ingest step | " + " | ".join(f"CPU µs/record, {n}-record batches" for n in sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        for i, (name, _) in enumerate(costs[sizes[0]]):
            print(f"| {name} | " + " | ".join(f"{costs[n][i][1]:.2f}" for n in sizes) + " |")
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        port = free_port()
        broker: subprocess.Popen[bytes] = start_tansu(port)
        try:
            raws, e2es = asyncio.run(bench(args, Path(tmp), f"127.0.0.1:{port}", broker.pid))
        finally:
            broker.kill()
            broker.wait()
    raw = statistics.median(r.per_s for r in raws)
    e2e = statistics.median(r.per_s for r in e2es)
    database = "PostgreSQL" if args.database_url and "postgres" in args.database_url else "SQLite"
    print(f"{args.records:,} ECG blocks (~{raws[0].nbytes / raws[0].records:.0f} B) x {args.repeat} rounds over "
          f"{args.devices} streams; uplink batches of {args.batch_records} records / {args.batch_bytes // 1024} KiB, "
          f"{args.compression}, {args.in_flight} in flight; ingest {args.ingest}, ledger in {database}; "
          f"files in {args.dir or tempfile.gettempdir()}")
    names = ["gateway", "ingest", "tansu"] if args.ingest == "process" else ["gateway", "tansu"]
    print("| path | records/s (median) | MB/s | rounds | " + " | ".join(f"CPU µs/record: {n}" for n in names) + " |")
    print("|---|---:|---:|---|" + "---:|" * len(names))
    for label, rs in (("raw confluent-kafka producer", raws), ("gateway outbox -> uplink -> ingest -> Kafka", e2es)):
        mid = sorted(rs, key=lambda r: r.per_s)[len(rs) // 2]
        cpu = " | ".join(f"{mid.cpu_us(n):.1f}" for n in names)
        print(f"| {label} | {mid.per_s:,.0f} | {mid.mb_per_s:.1f} | {', '.join(f'{r.per_s:,.0f}' for r in rs)} "
              f"| {cpu} |")
    print(f"ratio e2e / raw: {e2e / raw:.2f} (CPU columns: the median round; for the raw producer, 'gateway' "
          "is the producer's process)")
    mid = sorted(e2es, key=lambda r: r.per_s)[len(e2es) // 2]
    groups = sorted(k for k in mid.cpu if k.startswith("ingest/"))
    if groups:
        print("ingest CPU µs/record by thread (median e2e round): "
              + ", ".join(f"{g.removeprefix('ingest/')} {mid.cpu_us(g):.1f}" for g in groups))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
