"""Two ingest replicas, one PostgreSQL ledger, one tansu: overlapping replays of the same streams,
sent to both replicas at once, reach Kafka exactly once, and every batch is fully acked."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from cardiogate.cloud.authz import assign
from cardiogate.cloud.dedup import SequenceLedger
from cardiogate.cloud.settings import CloudSettings
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.cloud_testkit import (
    cloud_settings,
    issued_gateway,
    local_pki,
    postgres_schema,
    read_topic,
    running_cloud,
    tansu,
    vitals,
)

pytestmark = pytest.mark.timeout(180)
DEVICES = ("C0:00:00:00:03:01", "C0:00:00:00:03:02")
N = 400  # records per stream


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with tansu() as bootstrap:
        yield bootstrap


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


def stream_records() -> list[pb.Record]:
    """Both devices' vitals interleaved, in the order a gateway's outbox would send them."""
    t = time.time_ns()
    return [vitals(seq, "pt-0301", dev, hr=60.0 + seq % 50, t=t + seq) for seq in range(N) for dev in DEVICES]


def batches(records: list[pb.Record], size: int, first_id: int) -> list[pb.TelemetryBatch]:
    return [pb.TelemetryBatch(batch_id=first_id + i, records=records[o:o + size])
            for i, o in enumerate(range(0, len(records), size))]


def acked(replies: list[Any]) -> Counter[tuple[str, int]]:
    out: Counter[tuple[str, int]] = Counter()
    for reply in replies:
        assert reply.WhichOneof("message") == "ack", reply
        for r in reply.ack.ranges:
            out.update((r.stream_id, s) for s in range(r.first, r.last + 1))
    return out


def test_claims_are_compare_and_set_on_postgres(pg_url: str) -> None:
    from cardiogate.cloud.db import make_engine

    engine = make_engine(pg_url)
    a = SequenceLedger(engine, claim_ttl_s=0.3, replica="a")
    b = SequenceLedger(engine, claim_ttl_s=0.3, replica="b")
    assert a.claim("gw", ["s1", "s2"], "a:1") == {"s1": 0, "s2": 0}
    assert b.claim("gw", ["s2", "s3"], "b:1") == {}  # all or nothing: s3 is not left claimed
    assert b.claim("gw", ["s3"], "b:2") == {"s3": 0}
    assert a.commit("gw", "a:1", {"s1": 0, "s2": 0}, {"s1": 10, "s2": 5}) == []
    assert b.claim("gw", ["s1", "s2"], "b:3") == {"s1": 10, "s2": 5}
    time.sleep(0.35)  # b:3 died holding its claim; after the TTL a takes over, and b's late commit is refused
    assert a.claim("gw", ["s1"], "a:2") == {"s1": 10}
    assert b.commit("gw", "b:3", {"s1": 10, "s2": 5}, {"s1": 20, "s2": 6}) == ["s1"]
    assert a.commit("gw", "a:2", {"s1": 10}, {"s1": 12}) == []
    assert (a.next_expected("gw", "s1"), a.next_expected("gw", "s2")) == (12, 6)
    engine.dispose()


async def test_two_replicas_write_each_record_exactly_once(kafka: str, pg_url: str, tmp_path: Path) -> None:
    pki = local_pki(tmp_path / "pki")
    settings: list[CloudSettings] = [cloud_settings(kafka, pg_url, pki, replica=name) for name in ("r1", "r2")]
    records = stream_records()
    async with running_cloud(settings[0]) as one, running_cloud(settings[1]) as two:
        gw = issued_gateway(settings[0], one.engine, "gw-rep-1")
        assign(one.engine, "gw-rep-1", "pt-0301")
        # A gateway whose old connection (to r1) is still sending while its new one (to r2) replays
        # from the oldest unacked record; different batch boundaries, both starting at the beginning.
        first, second = await asyncio.gather(
            gw.upload(settings[0].listen, batches(records, 50, 1)),
            gw.upload(settings[1].listen, batches(records, 37, 1001)))
        # later, a replay of the second half through r2 and of everything through r1
        third = await gw.upload(settings[1].listen, batches(records[N:], 64, 2001))
        fourth = await gw.upload(settings[0].listen, batches(records, 100, 3001))
        waits = one.metrics.get("ingest_claim_waits") + two.metrics.get("ingest_claim_waits")
        dups = sum(r.metrics.get("ingest_records_duplicate") for r in (one, two))
        lost = sum(r.metrics.get("ingest_ledger_claims_lost") for r in (one, two))
    every = Counter((f"{dev}/vitals", s) for s in range(N) for dev in DEVICES)
    for replies in (first, second, fourth):
        assert acked(replies) == every  # each replay is acked completely, whether written or duplicate
    assert acked(third) == Counter((r.stream_id, r.sequence) for r in records[N:])
    in_kafka = Counter((kr.headers["stream"].decode(), kr.record.sequence)
                       for kr in await asyncio.to_thread(read_topic, kafka, "vitals", 5.0)
                       if kr.record.device_id in DEVICES)
    assert in_kafka == every, "each record exactly once in Kafka"
    assert dups == 3 * len(records) + len(records[N:]) - len(records)  # everything sent, less what was written
    assert lost == 0
    print(f"claim waits while racing: {waits}")
    engine = create_engine(pg_url)
    ledger = SequenceLedger(engine, claim_ttl_s=1.0)
    assert [ledger.next_expected("gw-rep-1", f"{d}/vitals") for d in DEVICES] == [N, N]
    engine.dispose()
