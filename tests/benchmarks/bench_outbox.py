"""Outbox write throughput for each durability setting, printed as a table (run by hand, not a test).

    .venv/bin/python -m tests.benchmarks.bench_outbox [--seconds 2] [--dir PATH]

Records are a 250-sample int16 ECG block (a Polar-sized 2 s block at 130 Hz is
smaller) and a heart-rate vitals record. Each row appends for ``--seconds`` into a
fresh database in ``--dir`` (default: a temporary directory; put it on the disk you
care about, e.g. the SD card). MB/s counts serialized record bytes.

A second table gives costs per record over a queue of ``--records`` ECG blocks and
vitals from ``--devices`` devices: the uplink reading what to send (``unsent`` and
payloads, 200 records per batch across the streams), deleting acked rows (one ack
message per batch: one DELETE per stream range, one transaction), and what an append
costs its caller, inline or handed to the outbox writer thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cardiogate.edge.outbox import Lane, Outbox, Synchronous
from cardiogate.proto.v1 import telemetry_pb2 as pb

DEVICE = "C0:00:00:00:00:01"


def ecg_block(i: int) -> pb.Record:
    t = 1_700_000_000_000_000_000 + i * 1_000_000_000
    return pb.Record(stream_id=f"{DEVICE}/ecg", device_id=DEVICE, patient="pt-0001", kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=t, receive_time_ns=t, sample_rate_hz=250.0,
                                            scale=1.0, unit="uV", encoding=pb.SAMPLE_ENCODING_INT16_LE,
                                            samples=bytes(range(250)) * 2, sample_count=250,
                                            device_sequence_first=i * 10, device_sequence_last=i * 10 + 9))


def vitals(i: int) -> pb.Record:
    t = 1_700_000_000_000_000_000 + i * 1_000_000_000
    return pb.Record(stream_id=f"{DEVICE}/vitals", device_id=DEVICE, patient="pt-0001", kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=t, receive_time_ns=t, heart_rate_bpm=72.0,
                                            rr_intervals_ms=[830.0, 845.0], source="hrm"))


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[int], pb.Record]
    per_commit: int
    sync: Mapping[Lane, Synchronous]
    group_commit_s: float | None


CASES = [
    Case("vitals, FULL per commit (alarms/vitals lane)", vitals, 1, {}, 1.0),
    Case("ECG block, FULL per commit", ecg_block, 1, {Lane.RAW: "FULL"}, None),
    Case("ECG block, NORMAL + 1 s group commit (raw lane)", ecg_block, 1, {}, 1.0),
    Case("ECG block, NORMAL, no fsync until checkpoint", ecg_block, 1, {}, None),
    Case("ECG block, FULL, 50 per commit", ecg_block, 50, {Lane.RAW: "FULL"}, None),
    Case("ECG block, NORMAL + group commit, 50 per commit", ecg_block, 50, {}, 1.0),
    Case("ECG block, OFF (reference: unsafe on power cut)", ecg_block, 1, {Lane.RAW: "OFF"}, None),
]


def run(case: Case, directory: Path, seconds: float) -> tuple[float, float, int]:
    path = directory / f"bench-{abs(hash(case.name))}.sqlite3"
    box = Outbox(path, sync=case.sync, group_commit_s=case.group_commit_s)
    n = nbytes = 0
    start = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - start) < seconds:
            records = [case.make(n + k) for k in range(case.per_commit)]
            box.append_many(records)
            n += len(records)
            nbytes += sum(r.ByteSize() for r in records)
        synced = box.synced_commits
    finally:
        box.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return n / elapsed, nbytes / elapsed / 1e6, synced


def _fill(box: Outbox, records: int, devices: int) -> None:
    """A queue as live traffic leaves it: devices interleaved, one ECG block in five is a vitals record."""
    ids = [f"C0:00:00:00:01:{d:02X}" for d in range(devices)]
    for i in range(0, records, 100):
        box.append_many([_for(ids[(i + k) % devices], ecg_block(i + k) if k % 5 else vitals(i + k))
                         for k in range(100)])


def _ack_message(box: Outbox, ranges: list[tuple[str, int, int]]) -> int:
    """One ack message from the ingest, as the uplink applies it: one transaction for all its ranges."""
    ack_many = getattr(box, "ack_many", None)
    if ack_many is not None:
        return int(ack_many(ranges))
    return sum(box.ack(*r) for r in ranges)  # an outbox without ack_many: one transaction per range


def per_record_costs(directory: Path, records: int, devices: int,
                     outbox: Callable[..., Outbox] = Outbox) -> dict[str, float]:
    """Microseconds per record: the uplink's reads and acks over a full queue, and what an append
    costs the caller (inline, or handed to the writer thread)."""
    path = directory / "bench-costs.sqlite3"
    box = outbox(path, group_commit_s=1.0)
    out: dict[str, float] = {}
    try:
        _fill(box, records, devices)
        streams = box.streams_behind({})
        per_stream = 200 // len(streams)  # an uplink batch of 200 records takes a slice of every stream
        start = time.perf_counter()
        read = 0
        cursors = dict.fromkeys(streams, -1)
        while any(cursors[s] < box.next_seq(s) - 1 for s in streams):
            for s in streams:
                rows = box.unsent(s, cursors[s], per_stream)
                if rows:
                    read += len(box.payloads([r.row_id for r in rows]))
                    cursors[s] = rows[-1].seq
        out["read: unsent + payloads, batches of 200"] = (time.perf_counter() - start) / read * 1e6
        start = time.perf_counter()
        acked = 0
        for first in range(0, max(box.next_seq(s) for s in streams), per_stream):
            acked += _ack_message(box, [(s, first, first + per_stream - 1) for s in streams])
        out["delete acked: one ack message per 200 records"] = (time.perf_counter() - start) / acked * 1e6
        assert box.depth() == 0 and read == acked == records
        n = min(records, 2000)
        start = time.perf_counter()
        for i in range(n):
            box.append_many([ecg_block(i) if i % 5 else vitals(i)])
        out["append on the caller, one record per call (inline commit)"] = (time.perf_counter() - start) / n * 1e6
        writer = getattr(box, "writer", None)
        if writer is not None:
            writer.start()
            start = time.perf_counter()
            futures = [writer.submit([ecg_block(i) if i % 5 else vitals(i)]) for i in range(n)]
            out["append handed to the writer: the caller's time"] = (time.perf_counter() - start) / n * 1e6
            for f in futures:
                f.result()
            out["append handed to the writer: until all committed"] = (time.perf_counter() - start) / n * 1e6
    finally:
        box.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return out


def _for(device: str, record: pb.Record) -> pb.Record:
    kind = "ecg" if record.kind == pb.STREAM_KIND_ECG else "vitals"
    record.stream_id, record.device_id = f"{device}/{kind}", device
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="cost runs; the table shows the fastest of each")
    parser.add_argument("--costs-only", action="store_true", help="skip the write table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        if not args.costs_only:
            print("| setting | records/commit | records/s | MB/s | fsyncs |\n|---|---:|---:|---:|---:|")
            for case in CASES:
                rate, mb, synced = run(case, Path(tmp), args.seconds)
                print(f"| {case.name} | {case.per_commit} | {rate:,.0f} | {mb:.2f} | {synced:,} |", flush=True)
        print(f"\n| cost ({args.records:,} records, {args.devices} devices, fastest of {args.repeat}) | µs/record |\n"
              "|---|---:|")
        runs = [per_record_costs(Path(tmp), args.records, args.devices) for _ in range(max(1, args.repeat))]
        for name in runs[0]:
            print(f"| {name} | {min(r[name] for r in runs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
