"""Outbox write throughput for each durability setting, printed as a table (run by hand, not a test).

    .venv/bin/python -m tests.benchmarks.bench_outbox [--seconds 2] [--dir PATH]

Records are a 250-sample int16 ECG block (a Polar-sized 2 s block at 130 Hz is
smaller) and a heart-rate vitals record. Each row appends for ``--seconds`` into a
fresh database in ``--dir`` (default: a temporary directory; put it on the disk you
care about, e.g. the SD card). MB/s counts serialized record bytes.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print("| setting | records/commit | records/s | MB/s | fsyncs |\n|---|---:|---:|---:|---:|")
        for case in CASES:
            rate, mb, synced = run(case, Path(tmp), args.seconds)
            print(f"| {case.name} | {case.per_commit} | {rate:,.0f} | {mb:.2f} | {synced:,} |", flush=True)


if __name__ == "__main__":
    main()
