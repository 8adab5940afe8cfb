"""The uplink's pure core: live-first batch planning, token buckets, rate meters, batch encoding."""

from __future__ import annotations

import math
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from cardiogate.edge.outbox import Lane, Unsent
from cardiogate.edge.uplink import Budget, RateMeter, TokenBucket, encode_records, plan_batch
from cardiogate.proto.v1 import telemetry_pb2 as pb

NOW = 1_000_000 * 10**9
OLD = NOW - 1800 * 10**9   # 30 minutes ago: backlog
FRESH = NOW - 10**8        # 0.1 s ago: live
LIVE_AFTER = NOW - 5 * 10**9


def stream(name: str, lane: Lane, n: int, created: int, ids: count[int], nbytes: int = 500,
           first_seq: int = 0) -> list[Unsent]:
    return [Unsent(next(ids), name, first_seq + i, lane, nbytes, created + i) for i in range(n)]


def budget(**kw: object) -> Budget:
    base: dict[str, object] = {"max_records": 1000, "max_bytes": 10**9, "backlog_before_ns": LIVE_AFTER}
    base.update(kw)
    return Budget(**base)  # type: ignore[arg-type]


def names(rows: tuple[Unsent, ...]) -> list[tuple[str, int]]:
    return [(r.stream_id, r.seq) for r in rows]


def test_lanes_go_in_priority_order_and_each_stream_in_sequence_order() -> None:
    ids = count(1)
    ecg = stream("d1/ecg", Lane.RAW, 3, FRESH, ids)          # appended first
    vit = stream("d1/vitals", Lane.VITALS, 2, FRESH, ids)
    feat = stream("d1/features", Lane.FEATURES, 1, FRESH, ids)
    alarm = stream("d1/alarms", Lane.ALARMS, 2, FRESH, ids)  # appended last
    plan = plan_batch({"d1/ecg": ecg, "d1/vitals": vit, "d1/features": feat, "d1/alarms": alarm}, budget())
    assert names(plan.rows) == [("d1/alarms", 0), ("d1/alarms", 1), ("d1/vitals", 0), ("d1/vitals", 1),
                                ("d1/features", 0), ("d1/ecg", 0), ("d1/ecg", 1), ("d1/ecg", 2)]
    assert plan.has_alarm and not plan.full and not plan.throttled and not plan.more
    assert plan.nbytes == 8 * 500 and plan.backlog_bytes == 0


def test_live_streams_go_before_backlogged_ones_and_the_backlog_is_paced() -> None:
    ids = count(1)
    backlog = stream("d1/ecg", Lane.RAW, 100, OLD, ids)   # a 30-minute backlog, appended long ago
    live = stream("d2/ecg", Lane.RAW, 4, FRESH, ids)
    plan = plan_batch({"d1/ecg": backlog, "d2/ecg": live}, budget(backlog_bytes=1200.0))
    got = names(plan.rows)
    assert got[:4] == [("d2/ecg", i) for i in range(4)]
    # 1200 bytes of backlog tokens: 500 + 500 + one more that overdraws, then the stream waits.
    assert got[4:] == [("d1/ecg", 0), ("d1/ecg", 1), ("d1/ecg", 2)]
    assert plan.throttled and plan.backlog_records == 3 and plan.backlog_bytes == 1500


def test_backlog_record_rate_limits_too() -> None:
    ids = count(1)
    plan = plan_batch({"d1/ecg": stream("d1/ecg", Lane.RAW, 10, OLD, ids)}, budget(backlog_records=2.0))
    assert [r.seq for r in plan.rows] == [0, 1] and plan.throttled


def test_old_vitals_and_alarms_are_not_paced() -> None:
    ids = count(1)
    heads = {"d1/vitals": stream("d1/vitals", Lane.VITALS, 5, OLD, ids),
             "d1/alarms": stream("d1/alarms", Lane.ALARMS, 1, OLD, ids)}
    plan = plan_batch(heads, budget(backlog_bytes=0.0, backlog_records=0.0))
    assert len(plan.rows) == 6 and not plan.throttled and plan.backlog_bytes == 0


def test_bandwidth_cap_holds_everything_but_alarms() -> None:
    ids = count(1)
    heads = {"d1/vitals": stream("d1/vitals", Lane.VITALS, 3, FRESH, ids),
             "d1/alarms": stream("d1/alarms", Lane.ALARMS, 2, FRESH, ids)}
    plan = plan_batch(heads, budget(cap_bytes=-5000.0))  # in debt
    assert names(plan.rows) == [("d1/alarms", 0), ("d1/alarms", 1)] and plan.throttled
    plan = plan_batch(heads, budget(cap_bytes=1600.0))  # alarms spend 1000 first, the second vitals overdraws
    assert names(plan.rows)[2:] == [("d1/vitals", 0), ("d1/vitals", 1)]


def test_size_limits_close_the_batch_but_one_large_record_still_goes() -> None:
    ids = count(1)
    heads = {"d1/ecg": stream("d1/ecg", Lane.RAW, 10, FRESH, ids)}
    plan = plan_batch(heads, budget(max_records=4))
    assert [r.seq for r in plan.rows] == [0, 1, 2, 3] and plan.full
    plan = plan_batch(heads, budget(max_bytes=1200))
    assert [r.seq for r in plan.rows] == [0, 1] and plan.full
    plan = plan_batch(heads, budget(max_bytes=100))
    assert [r.seq for r in plan.rows] == [0] and plan.full


def test_lane_filter_and_the_more_flag() -> None:
    ids = count(1)
    heads = {"d1/ecg": stream("d1/ecg", Lane.RAW, 3, FRESH, ids),
             "d1/alarms": stream("d1/alarms", Lane.ALARMS, 1, FRESH, ids)}
    plan = plan_batch(heads, budget(lanes=frozenset({Lane.ALARMS})))
    assert names(plan.rows) == [("d1/alarms", 0)]
    assert plan_batch(heads, budget(), truncated={"d1/ecg"}).more
    assert not plan_batch(heads, budget(max_records=2), truncated={"d1/ecg"}).more
    empty = plan_batch({"d1/ecg": []}, budget())
    assert empty.rows == () and not empty.throttled


lanes = st.sampled_from(list(Lane))


@settings(max_examples=200, deadline=None)
@given(spec=st.lists(st.tuples(lanes, st.integers(0, 30), st.booleans(), st.integers(1, 3000)), min_size=1,
                     max_size=6),
       max_records=st.integers(1, 60), max_bytes=st.integers(1, 40_000),
       cap=st.one_of(st.just(math.inf), st.floats(-5000, 50_000)),
       backlog_bytes=st.one_of(st.just(math.inf), st.floats(-5000, 50_000)),
       backlog_records=st.one_of(st.just(math.inf), st.floats(-5, 50)))
def test_a_plan_takes_a_prefix_of_every_stream_and_respects_its_limits(
        spec: list[tuple[Lane, int, bool, int]], max_records: int, max_bytes: int, cap: float,
        backlog_bytes: float, backlog_records: float) -> None:
    ids = count(1)
    heads = {f"d{i}/s": stream(f"d{i}/s", lane, n, OLD if old else FRESH, ids, nbytes, first_seq=5 * i)
             for i, (lane, n, old, nbytes) in enumerate(spec)}
    plan = plan_batch(heads, budget(max_records=max_records, max_bytes=max_bytes, cap_bytes=cap,
                                    backlog_bytes=backlog_bytes, backlog_records=backlog_records))
    for name, rows in heads.items():
        mine = [r for r in plan.rows if r.stream_id == name]
        assert mine == rows[:len(mine)]  # in order, from the head, nothing skipped
    assert len(plan.rows) <= max_records
    assert plan.nbytes <= max_bytes or len(plan.rows) == 1
    assert [r.lane for r in plan.rows] == sorted(r.lane for r in plan.rows)
    non_alarm = [r for r in plan.rows if r.lane != Lane.ALARMS]
    if non_alarm and cap != math.inf:  # the cap is overdrawn by one record at most, and only by alarms beyond
        assert plan.nbytes - non_alarm[-1].nbytes < cap
    if backlog_bytes != math.inf and plan.backlog_records:
        assert plan.backlog_bytes - max(r.nbytes for r in plan.rows) < backlog_bytes


def test_token_bucket() -> None:
    b = TokenBucket(rate=100.0, burst=50.0, now=0.0)
    assert b.level(0.0) == 50.0
    b.spend(80.0, 0.0)
    assert b.level(0.0) == -30.0  # one large spend overdraws
    assert b.wait_s(20.0, 0.0) == 0.5
    assert b.level(0.3) == 0.0
    assert b.level(10.0) == 50.0  # capped at the burst
    assert b.wait_s(500.0, 10.0) == 0.0  # never asks for more than the burst
    free = TokenBucket(rate=0, burst=0, now=0.0)
    assert free.unlimited and free.level(1.0) == math.inf and free.wait_s(1e9, 1.0) == 0.0
    free.spend(1e9, 1.0)
    assert free.level(2.0) == math.inf


def test_rate_meter_uses_a_sliding_window() -> None:
    m = RateMeter(window_s=10.0)
    assert m.rate(0.0) == 0.0
    m.add(50, 1.0)
    m.add(50, 5.0)
    assert m.rate(6.0) == 10.0
    assert m.rate(11.5) == 5.0
    assert m.rate(20.0) == 0.0


def test_encoded_records_parse_as_a_batch() -> None:
    records = [pb.Record(stream_id="d/vitals", sequence=i, device_id="d", patient="pt-0001",
                         kind=pb.STREAM_KIND_VITALS, vitals=pb.VitalsRecord(heart_rate_bpm=60.0 + i))
               for i in range(3)]
    big = pb.Record(stream_id="d/ecg", sequence=9, kind=pb.STREAM_KIND_ECG,
                    samples=pb.SampleBlock(samples=b"\x00" * 70_000, sample_count=35_000))
    records.append(big)  # a multi-byte length prefix
    batch = pb.TelemetryBatch(batch_id=7)
    batch.MergeFromString(encode_records([r.SerializeToString() for r in records]))
    assert batch.batch_id == 7 and list(batch.records) == records
