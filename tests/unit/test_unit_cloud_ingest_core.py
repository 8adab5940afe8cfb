"""The ingest's pure pieces: duplicate split, delivered ranges, acks, token buckets, the in-flight
bound, rejection reason codes, metrics, the SQLite ledger's compare-and-set, and settings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cardiogate.cloud.db import make_engine
from cardiogate.cloud.dedup import SequenceLedger
from cardiogate.cloud.ingest import InFlight, ack_for, delivered_ranges, lenient_request, split_duplicates
from cardiogate.cloud.metrics import Metrics
from cardiogate.cloud.settings import CloudSettings, IngestLimits, load_cloud_settings
from cardiogate.cloud.validation import InvalidBatch, validate_batch
from cardiogate.core.ratelimit import GatewayLimiter, TokenBucket
from cardiogate.core.settings import ConfigError
from cardiogate.proto.v1 import ingest_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb


def r(stream: str, seq: int) -> pb.Record:
    return pb.Record(stream_id=stream, sequence=seq)


def test_split_and_delivered_ranges() -> None:
    records = [r("a", 3), r("a", 4), r("b", 0), r("a", 5), r("b", 1), r("b", 2)]
    fresh, dups = split_duplicates(records, {"a": 5, "b": 0})
    assert [(x.stream_id, x.sequence) for x in fresh] == [("b", 0), ("a", 5), ("b", 1), ("b", 2)]
    assert dups == {"a": (3, 4)}
    boom = RuntimeError("broker")
    written, failed = delivered_ranges(fresh, [None, None, boom, None])
    assert written == {"a": (5, 5), "b": (0, 0)} and failed == 1  # b stops at its first failure: 2 is not acked
    reply = ack_for(9, dups, written)
    assert reply.ack.batch_id == 9 and reply.ack.duplicates == 2
    assert [(x.stream_id, x.first, x.last) for x in reply.ack.ranges] == [("a", 3, 4), ("b", 0, 0), ("a", 5, 5)]


def test_undecodable_bytes_become_none() -> None:
    assert lenient_request(b"\xff\xff\xff") is None
    hello = ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw"))
    assert lenient_request(hello.SerializeToString()) == hello


def test_token_bucket_holds_back_then_refuses() -> None:
    limiter = GatewayLimiter(TokenBucket.full(100, 1.0, now=0.0), TokenBucket.full(1e9, 1.0, now=0.0))
    assert limiter.admit(100, 10, now=0.0, max_wait_s=1.0) == 0.0
    assert limiter.admit(50, 10, now=0.0, max_wait_s=1.0) == pytest.approx(0.5)
    assert limiter.admit(100, 10, now=0.5, max_wait_s=1.0) == pytest.approx(1.0)  # bucket was at 0 after the wait
    assert limiter.admit(1, 10, now=0.5, max_wait_s=1.0) is None  # 100 in debt: refused, nothing taken
    assert limiter.admit(1, 10, now=1.5, max_wait_s=1.0) == pytest.approx(0.01)
    big = TokenBucket.full(10, 1.0, now=0.0)
    assert big.wait_for(1000, now=0.0) == 0.0  # bigger than the bucket: passes when the bucket is full


def test_bytes_bucket_limits_too() -> None:
    limiter = GatewayLimiter(TokenBucket.full(1e9, 1.0, 0.0), TokenBucket.full(1000, 1.0, 0.0))
    assert limiter.admit(1, 1000, 0.0, 2.0) == 0.0
    assert limiter.admit(1, 1000, 0.0, 2.0) == pytest.approx(1.0)


async def test_in_flight_bound_blocks_until_released() -> None:
    bound = InFlight(100)
    assert await bound.acquire(80) == 80
    waiter = asyncio.create_task(bound.acquire(50))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await bound.release(80)
    assert await asyncio.wait_for(waiter, 1) == 50
    await bound.release(50)
    assert await asyncio.wait_for(bound.acquire(500), 1) == 100  # a batch over the limit takes all of it


def test_rejections_carry_a_reason_code() -> None:
    now = time.time_ns()
    rec = pb.Record(stream_id="D/vitals", sequence=0, device_id="D", patient="pt-0001", kind=pb.STREAM_KIND_VITALS,
                    vitals=pb.VitalsRecord(device_time_ns=now, receive_time_ns=now))
    named = pb.Record()
    named.CopyFrom(rec)
    named.patient = "Jane"
    cases = [(pb.TelemetryBatch(), IngestLimits(), "empty"),
             (pb.TelemetryBatch(records=[rec] * 40), IngestLimits(max_batch_bytes=1024), "oversized"),
             (pb.TelemetryBatch(records=[named]), IngestLimits(), "pseudonym")]
    for batch, limits, code in cases:
        with pytest.raises(InvalidBatch) as info:
            validate_batch(batch, limits)
        assert info.value.code == code


def test_metrics_count_by_label() -> None:
    m = Metrics()
    m.inc("rejected", reason="a")
    m.inc("rejected", 2, reason="b")
    m.inc("plain")
    assert (m.get("rejected", reason="b"), m.get("rejected"), m.get("missing")) == (2, 3, 0)
    assert m.snapshot() == {"plain": 1, 'rejected{reason="a"}': 1, 'rejected{reason="b"}': 2}


def test_sqlite_ledger_claims_are_exclusive_and_commits_compare_and_set(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    a, b = SequenceLedger(engine, 0.2, "a"), SequenceLedger(engine, 0.2, "b")
    assert a.claim("gw", ["s1"], "a:1") == {"s1": 0}
    assert b.claim("gw", ["s1", "s2"], "b:1") == {}
    assert a.commit("gw", "a:1", {"s1": 0}, {"s1": 7}) == []
    assert b.claim("gw", ["s1", "s2"], "b:2") == {"s1": 7, "s2": 0}
    assert a.renew("gw", ["s1"], "a:1") == 0
    assert b.renew("gw", ["s1", "s2"], "b:2") == 2
    assert a.commit("gw", "a:9", {"s1": 7}, {"s1": 9}) == ["s1"]  # not ours: nothing changes
    assert b.commit("gw", "b:2", {"s1": 7, "s2": 0}, {"s1": 5}) == []  # never moves backwards
    assert (a.next_expected("gw", "s1"), a.next_expected("gw", "s2"), a.next_expected("gw", "x")) == (7, 0, 0)


def test_settings_are_secure_by_default(tmp_path: Path) -> None:
    s = CloudSettings()
    assert s.tls is True and s.authz.enforce is True
    assert s.db_url == "sqlite:///cloud.sqlite3"
    assert CloudSettings(database_url="postgresql+psycopg://h/db").db_url == "postgresql+psycopg://h/db"
    bad = tmp_path / "c.toml"
    bad.write_text("[consumers]\ninstances = 2\ninstance = 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="instance"):
        load_cloud_settings(bad)
