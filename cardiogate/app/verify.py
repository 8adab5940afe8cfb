"""``cardiogate verify``: every sample the simulated watches produced is in Kafka once, or in an exact gap.

Reads the simulator's ground-truth JSONL log(s) and every record of the cardiogate topics
(from offset 0 until nothing new has arrived for ``--idle`` seconds, or ``--timeout``),
reconciles them with :mod:`cardiogate.app.reconcile` and prints a table per stream and the
totals. Exit status: 0 when every sample and record is accounted for, 1 when not, 2 when
an input could not be read. The command line is built from this module, so importing it
stays cheap: numpy, protobuf, Kafka and SQLAlchemy load only when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cardiogate.app.reconcile import Reconciliation
    from cardiogate.proto.v1 import telemetry_pb2 as pb

DEFAULT_TOPICS = ["ecg.raw", "vitals", "alarms", "device.events"]
_MISMATCHES_SHOWN = 10


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--truth", type=Path, action="append", required=True, metavar="FILE",
                   help="simulator ground-truth JSONL log; repeat for a fleet split over processes")
    p.add_argument("--kafka", required=True, metavar="HOST:PORT", help="Kafka bootstrap server")
    p.add_argument("--topics", nargs="+", default=DEFAULT_TOPICS, metavar="TOPIC",
                   help=f"topics to read (default: {' '.join(DEFAULT_TOPICS)})")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="read for at most this long (default 120)")
    p.add_argument("--idle", type=float, default=3.0, metavar="S",
                   help="stop reading once nothing new arrived for this long (default 3)")
    p.add_argument("--ledger", default=None, metavar="DB",
                   help="the cloud database (SQLAlchemy URL or SQLite file): every sequence its ledger acked "
                        "must be in Kafka")
    p.add_argument("--gateway", default=None, help="with --ledger: only this gateway's streams")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the full report as JSON")
    return p


def build_parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(
        prog="cardiogate verify",
        description="Reconcile the simulator's ground truth with Kafka: per stream, samples missing, duplicated, "
                    "reordered, and accounted for by gap records. Exit 0 when everything is accounted for."))


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def read_truth(paths: list[Path]) -> list[dict[str, Any]]:
    """All ground-truth lines; a torn last line (the simulator was killed mid-write) is skipped."""
    out: list[dict[str, Any]] = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if i != len(lines) - 1:
                    raise ValueError(f"{path}:{i + 1}: not JSON") from None
    return out


def read_records(bootstrap: str, topics: list[str], timeout_s: float, idle_s: float) -> list[pb.Record]:
    """Every record of ``topics``, ordered by (topic, partition, offset): each stream in Kafka order."""
    from cardiogate.app.kafka_reader import RecordReader

    reader = RecordReader(bootstrap, topics)
    got = []
    try:
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_new < idle_s:
            batch = list(reader.poll(min(1.0, idle_s)))
            if batch:
                got.extend(batch)
                last_new = time.monotonic()
    finally:
        reader.close()
    got.sort(key=lambda kr: (kr.topic, kr.partition, kr.offset))
    return [kr.record for kr in got]


def read_ledger(db: str, gateway: str | None = None) -> dict[str, int]:
    """The cloud's ledger: per stream, the next sequence it expects (everything below was acked)."""
    from sqlalchemy import create_engine, text

    url = db if "://" in db else f"sqlite:///{Path(db).resolve()}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = "SELECT stream_id, next_seq FROM ingest_ledger" + (" WHERE gateway = :g" if gateway else "")
            rows = conn.execute(text(sql), {"g": gateway} if gateway else {}).all()
    finally:
        engine.dispose()
    out: dict[str, int] = {}
    for stream_id, next_seq in rows:
        out[str(stream_id)] = max(out.get(str(stream_id), 0), int(next_seq))
    return out


def render(rec: Reconciliation) -> str:
    """The per-stream tables, the totals and the first mismatches, as plain text."""
    lines = [f"{'ECG stream':<28}{'produced':>10}{'delivered':>11}{'in gaps':>9}{'evicted':>9}{'missing':>9}"
             f"{'dup':>7}{'wrong':>7}{'reord':>7}{'unknown':>9}{'gaps':>6}  ok"]
    for device, r in sorted(rec.ecg.items()):
        lines.append(f"{device + '/ecg':<28}{r.produced_samples:>10}{r.delivered_samples:>11}"
                     f"{r.gap_samples_accounted:>9}{r.evicted_samples:>9}{r.missing_samples:>9}"
                     f"{r.duplicate_samples:>7}{r.wrong_samples:>7}{r.reordered_records:>7}"
                     f"{r.before_first_delivery + r.after_last_delivery:>9}{r.gap_records:>6}  {_mark(r.ok)}")
    lines += ["", f"{'stream (records)':<28}{'records':>10}{'dup':>7}{'reord':>7}{'missing':>9}{'excused':>9}"
                  f"{'acked-missing':>15}  ok"]
    for stream_id, s in sorted(rec.streams.items()):
        lines.append(f"{stream_id:<28}{s.records:>10}{s.duplicate_records:>7}{s.reordered_records:>7}"
                     f"{s.missing_records:>9}{s.excused_records:>9}{s.acked_missing:>15}  {_mark(s.ok)}")
    t = rec.totals()
    lines += ["", "samples: " + ", ".join(f"{k.removesuffix('_samples')} {t[k]}" for k in (
        "produced_samples", "delivered_samples", "gap_samples", "evicted_samples", "missing_samples",
        "duplicate_samples", "wrong_samples", "unknown_to_gateway_samples")),
        "records: " + ", ".join(f"{k.removesuffix('_records')} {t[k]}" for k in (
            "records", "duplicate_records", "reordered_records", "missing_records", "excused_records",
            "acked_missing_records")) + f"; gap records {t['gap_records']}"]
    problems = [f"{d}: {m}" for d, r in sorted(rec.ecg.items()) for m in r.gap_mismatches]
    problems += [f"{s}: records {a}..{b} missing" for s, x in sorted(rec.streams.items()) for a, b in x.holes]
    if problems:
        lines += ["", f"first of {len(problems)} problems:", *problems[:_MISMATCHES_SHOWN]]
    lines.append("verify: OK, every sample and record accounted for" if rec.ok else
                 "verify: FAILED, something is missing, doubled or out of order")
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "yes" if ok else "NO"


def as_json(rec: Reconciliation) -> dict[str, Any]:
    return {"ok": rec.ok, "totals": rec.totals(),
            "ecg": {d: {**asdict(r), "missing_samples": r.missing_samples, "ok": r.ok} for d, r in rec.ecg.items()},
            "streams": {s: {**asdict(x), "missing_records": x.missing_records, "ok": x.ok}
                        for s, x in rec.streams.items()}}


def run(ns: argparse.Namespace) -> int:
    from cardiogate.app.reconcile import reconcile_streams

    try:
        truth = read_truth(ns.truth)
    except (OSError, ValueError) as exc:
        print(f"cardiogate verify: cannot read the ground truth: {exc}", file=sys.stderr)
        return 2
    try:
        records = read_records(ns.kafka, list(ns.topics), ns.timeout, ns.idle)
    except Exception as exc:  # confluent-kafka raises KafkaException for an unreachable broker
        print(f"cardiogate verify: cannot read Kafka at {ns.kafka}: {exc}", file=sys.stderr)
        return 2
    acked = None
    if ns.ledger is not None:
        try:
            acked = read_ledger(ns.ledger, ns.gateway)
        except Exception as exc:  # SQLAlchemy errors: no such file, table or server
            print(f"cardiogate verify: cannot read the ledger {ns.ledger}: {exc}", file=sys.stderr)
            return 2
    rec = reconcile_streams(truth, records, acked=acked)
    print(render(rec), flush=True)
    if ns.json is not None:
        ns.json.write_text(json.dumps(as_json(rec), indent=2), encoding="utf-8")
    return 0 if rec.ok else 1
