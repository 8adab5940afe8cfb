"""Late records after a window closed: the route per window width, the revision of a closed window,
and the horizon that bounds what the processor keeps for revisions."""

from __future__ import annotations

import json

from cardiogate.cloud.features import (
    LATE_TOPIC,
    ON_TIME,
    REVISED,
    finalize,
    fold,
    fold_late,
    late_route,
    new_accumulator,
    retained_starts,
)
from cardiogate.proto.v1 import telemetry_pb2 as pb

MIN = 60_000
T0 = 1_800_000_000_000  # ms, aligned to 300 s


def vitals(t_ms: int, hr: float) -> pb.Record:
    return pb.Record(stream_id="d/vitals", patient="p", kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=t_ms * 1_000_000, heart_rate_bpm=hr))


def test_route_follows_the_closing_rule_then_the_horizon() -> None:
    grace, horizon = 30_000, 10 * MIN
    mark = T0 + 20 * MIN + 40_000  # aligned mark - grace: T0 + 20 min, so windows ending by then are closed
    assert late_route(T0, MIN, None, grace, horizon) == ON_TIME  # no partition time yet
    assert late_route(T0 + 20 * MIN, MIN, mark, grace, horizon) == ON_TIME  # its window ends after 20 min
    assert late_route(T0 + 20 * MIN - 1, MIN, mark, grace, horizon) == REVISED  # ends exactly at 20 min
    assert late_route(T0 + 10 * MIN + 40_001, MIN, mark, grace, horizon) == REVISED  # ends at 11 min
    # a window ending at or before mark - horizon (T0 + 10 min 40 s) is beyond it
    assert late_route(T0 + 9 * MIN, MIN, mark, grace, horizon) == LATE_TOPIC
    assert late_route(T0 + 9 * MIN, 5 * MIN, mark, grace, horizon) == LATE_TOPIC  # 5-minute window ends at 10
    assert late_route(T0 + 10 * MIN, 5 * MIN, mark, grace, horizon) == REVISED  # ends at 15
    assert late_route(T0 + 15 * MIN, 5 * MIN, mark, grace, horizon) == REVISED  # ends at 20: closed
    assert late_route(T0 + 9 * MIN, MIN, mark, grace, 0) == LATE_TOPIC  # horizon 0: no revisions at all


def test_fold_late_numbers_revisions_and_matches_folding_everything() -> None:
    on_time = [vitals(T0 + i * 1000, 60.0 + i) for i in range(10)]
    late = [vitals(T0 + 30_000 + i * 1000, 90.0 + i) for i in range(3)]
    acc = new_accumulator()
    for r in on_time:
        fold(acc, r)
    closed: dict[str, object] = {"acc": json.loads(json.dumps(acc)), "revision": 0}  # as the state stores it
    saved = json.dumps(closed)
    for n, r in enumerate(late, start=1):
        closed = fold_late(closed, r)
        assert closed["revision"] == n
    assert json.dumps(json.loads(saved)) == saved  # the input is never changed in place
    everything = new_accumulator()
    for r in on_time + late:
        fold(everything, r)
    got, want = finalize(closed["acc"], "p", 60, 0), finalize(everything, "p", 60, 0)  # type: ignore[arg-type]
    assert got.late_record_count == 3 and want.late_record_count == 0
    got.late_record_count = 0
    assert got == want


def test_a_window_never_published_starts_at_revision_zero() -> None:
    first = fold_late(None, vitals(T0, 70.0))
    assert first["revision"] == 0 and first["acc"]["records"] == 1 and first["acc"]["late"] == 1
    assert fold_late(first, vitals(T0 + 1000, 80.0))["revision"] == 1


def test_retained_starts_drops_what_can_no_longer_be_revised() -> None:
    starts = [T0 + m * MIN for m in (3, 0, 1, 2, 2)]
    kept, dropped = retained_starts(starts, MIN, T0 + 2 * MIN)  # windows ending by 2 min go
    assert kept == [T0 + 2 * MIN, T0 + 3 * MIN] and dropped == [T0, T0 + MIN]
    assert retained_starts([], MIN, T0) == ([], [])
