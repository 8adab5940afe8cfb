"""The writer that tests/integration/test_outbox_crash.py kills with SIGKILL at random moments.

It appends records of every lane (single and batched), acks prefixes of streams and pins
records as sent, forever. After each append returns it logs ``C <stream> <seq>`` (the
outbox reported it committed); before each ack it logs ``A <stream> <first> <last>``.
Lines go straight to the kernel with os.write, so a killed process loses none it wrote.

With a fifth argument ``thread`` it writes as the gateway does: appends are queued on the
outbox's writer thread without waiting (``C`` is logged when each one's future reports it
committed), acks and pins are awaited from an asyncio loop.

Usage: python -m tests.integration.outbox_crash_writer DB LOG SEED MAX_BYTES [thread]
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from cardiogate.edge.outbox import Lane, Outbox
from cardiogate.proto.v1 import telemetry_pb2 as pb

DEVICES = ("C0:00:00:00:00:01", "C0:00:00:00:00:02")
T0 = 1_700_000_000_000_000_000
N = 125


def ecg(device: str, block: int) -> pb.Record:
    start = T0 + block * 500_000_000
    return pb.Record(stream_id=f"{device}/ecg", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=start, receive_time_ns=start,
                                            sample_rate_hz=250.0, scale=1.0, unit="uV",
                                            encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=os.urandom(2 * N),
                                            sample_count=N, device_sequence_first=5 * block,
                                            device_sequence_last=5 * block + 4))


def other(device: str, rng: random.Random) -> pb.Record:
    x = rng.random()
    if x < 0.15:
        return pb.Record(stream_id=f"{device}/alarms", device_id=device, patient="pt-0001",
                         kind=pb.STREAM_KIND_ALARMS, alarm=pb.Alarm(alarm_id=str(rng.random()), condition="vt"))
    if x < 0.85:
        return pb.Record(stream_id=f"{device}/vitals", device_id=device, patient="pt-0001",
                         kind=pb.STREAM_KIND_VITALS, vitals=pb.VitalsRecord(heart_rate_bpm=rng.uniform(40, 180)))
    return pb.Record(stream_id=f"{device}/events", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_EVENTS,
                     event=pb.DeviceEvent(link=pb.LinkChange(connected=rng.random() < 0.5)))


def next_records(rng: random.Random, block: dict[str, int]) -> tuple[str, list[pb.Record]]:
    device = rng.choice(DEVICES)
    x = rng.random()
    if x < 0.6:
        records = [ecg(device, block[device])]
        block[device] += 1
    elif x < 0.7:
        records = [ecg(device, block[device] + i) for i in range(rng.randint(2, 6))]
        block[device] += len(records)
        records += [other(device, rng)] if rng.random() < 0.3 else []
    else:
        records = [other(device, rng)]
    return device, records


def logged(fd: int, records: list[pb.Record]) -> Callable[[Future[list[int]]], None]:
    """A done-callback that logs the records as committed once their append's future says so."""
    def done(future: Future[list[int]]) -> None:
        if future.exception() is None:
            os.write(fd, "".join(f"C {r.stream_id} {q}\n" for r, q in zip(records, future.result(),
                                                                           strict=True)).encode())
    return done


async def threaded(box: Outbox, rng: random.Random, fd: int, block: dict[str, int]) -> None:
    box.writer.start()
    while True:
        device, records = next_records(rng, block)
        box.writer.submit(records).add_done_callback(logged(fd, records))
        if rng.random() < 0.15:
            streams = box.streams_behind({})
            if streams:
                stream = rng.choice(streams)
                rows = box.unsent(stream, -1, rng.randint(1, 10))
                if rows:
                    os.write(fd, f"A {stream} {rows[0].seq} {rows[-1].seq}\n".encode())
                    await box.writer.ack([(stream, rows[0].seq, rows[-1].seq)])
        if rng.random() < 0.05:
            stream = f"{device}/ecg"
            rows = box.unsent(stream, -1, 3)
            if rows and rows[0].lane == Lane.RAW:
                await box.writer.mark_sent({stream: rows[-1].seq})
        if rng.random() < 0.2:
            await asyncio.sleep(0.001)  # let the writer catch up now and then, as BLE pauses would


def main() -> None:
    db, log_path, seed, max_bytes = sys.argv[1:5]
    rng = random.Random(int(seed))
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    box = Outbox(Path(db), max_bytes=int(max_bytes), evict_headroom=0.1, group_commit_s=0.05)
    block = {d: box.next_seq(f"{d}/ecg") for d in DEVICES}  # device packet counters continue across runs
    os.write(fd, b"R\n")
    if sys.argv[5:] == ["thread"]:
        asyncio.run(threaded(box, rng, fd, block))
    while True:
        device, records = next_records(rng, block)
        seqs = box.append(records[0]) if len(records) == 1 else box.append_many(records)
        seqs = [seqs] if isinstance(seqs, int) else seqs
        os.write(fd, "".join(f"C {r.stream_id} {q}\n" for r, q in zip(records, seqs, strict=True)).encode())
        if rng.random() < 0.15:
            streams = box.streams_behind({})
            if streams:
                stream = rng.choice(streams)
                rows = box.unsent(stream, -1, rng.randint(1, 10))
                if rows:
                    os.write(fd, f"A {stream} {rows[0].seq} {rows[-1].seq}\n".encode())
                    box.ack(stream, rows[0].seq, rows[-1].seq)
        if rng.random() < 0.05:
            stream = f"{device}/ecg"
            rows = box.unsent(stream, -1, 3)
            if rows and rows[0].lane == Lane.RAW:
                box.mark_sent({stream: rows[-1].seq})


if __name__ == "__main__":
    main()
