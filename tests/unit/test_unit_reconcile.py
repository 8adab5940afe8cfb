"""The reconciler's rules on hand-made truth and Kafka contents: what counts as lost, doubled or accounted."""

from __future__ import annotations

from typing import Any

import numpy as np

from cardiogate.app.reconcile import reconcile_ecg, reconcile_streams
from cardiogate.proto.v1 import telemetry_pb2 as pb

DEV = "C0:00:00:00:00:01"
N = 10            # samples per packet
FS = 250.0
T0_US = 1_700_000_000_000_000
PACKETS = 40


def _t0_us(seq: int) -> int:
    return T0_US + seq * N * 4000  # 10 samples at 250 Hz = 40 ms


def _samples(seq: int) -> list[int]:
    return [(seq * 37 + i * 11) % 2000 - 1000 for i in range(N)]


def truth(sent: range | list[int] = range(PACKETS), unsent: list[int] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"watch": DEV, "kind": "ecg", "seq": s, "t0_us": _t0_us(s), "fs": FS,
                                  "samples": _samples(s)} for s in sent]
    out += [{"watch": DEV, "kind": "ecg_unsent", "seq": s, "t0_us": _t0_us(s), "fs": FS, "n": N}
            for s in unsent or []]
    return out


def block(seq: int, first: int, last: int, device: str = DEV) -> pb.Record:
    values = np.concatenate([np.asarray(_samples(s), dtype="<i2") for s in range(first, last + 1)])
    b = pb.SampleBlock(first_sample_device_time_ns=_t0_us(first) * 1000, sample_rate_hz=FS, unit="uV",
                       encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=values.tobytes(), sample_count=len(values),
                       device_sequence_first=first, device_sequence_last=last)
    return pb.Record(stream_id=f"{device}/ecg", sequence=seq, device_id=device, kind=pb.STREAM_KIND_ECG, samples=b)


def gap(seq: int, first: int, last: int, cause: pb.GapCause.ValueType = pb.GAP_CAUSE_LINK_LOSS,
        missing: int | None = None, end_shift_ns: int = 0) -> pb.Record:
    g = pb.Gap(stream=pb.STREAM_KIND_ECG, device_sequence_first=first, device_sequence_last=last,
               start_device_time_ns=_t0_us(first) * 1000, end_device_time_ns=_t0_us(last + 1) * 1000 + end_shift_ns,
               missing_samples=(last - first + 1) * N if missing is None else missing, cause=cause,
               sample_rate_hz=FS)
    return pb.Record(stream_id=f"{DEV}/events", sequence=seq, device_id=DEV, kind=pb.STREAM_KIND_EVENTS,
                     event=pb.DeviceEvent(gap=g))


def blocks(ranges: list[tuple[int, int]], start_seq: int = 0) -> list[pb.Record]:
    return [block(start_seq + i, a, b) for i, (a, b) in enumerate(ranges)]


def vitals(seq: int, stream: str = f"{DEV}/vitals") -> pb.Record:
    return pb.Record(stream_id=stream, sequence=seq, device_id=DEV, kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(source="hrm", heart_rate_bpm=60.0 + seq))


def test_everything_delivered_once_is_ok_and_counted() -> None:
    rep = reconcile_ecg(truth(), blocks([(0, 9), (10, 19), (20, 29), (30, 39)]))[DEV]
    assert rep.ok
    assert rep.produced_samples == rep.delivered_samples == PACKETS * N
    assert rep.missing_samples == rep.duplicate_samples == rep.gap_samples_accounted == 0


def test_chained_gaps_account_for_one_hole_together() -> None:
    # packets 10..14 lost to a link loss, 15..19 to a gateway restart right after: two gaps back to back
    records = [*blocks([(0, 9), (20, 39)]), gap(0, 10, 14), gap(1, 15, 19)]
    rep = reconcile_ecg(truth(), records)[DEV]
    assert rep.ok, rep
    assert rep.gap_samples_accounted == 10 * N and rep.gap_records == 2
    assert rep.delivered_samples + rep.gap_samples_accounted == rep.produced_samples


def test_a_chain_that_stops_short_leaves_the_rest_missing() -> None:
    rep = reconcile_ecg(truth(), [*blocks([(0, 9), (20, 39)]), gap(0, 10, 14)])[DEV]
    assert not rep.ok
    assert rep.gap_samples_accounted == 5 * N and rep.missing_samples == 5 * N
    assert any("15..19" in m for m in rep.gap_mismatches)


def test_an_inexact_gap_accounts_for_nothing() -> None:
    wrong_count = reconcile_ecg(truth(), [*blocks([(0, 9), (20, 39)]), gap(0, 10, 19, missing=99)])[DEV]
    assert not wrong_count.ok and wrong_count.missing_samples == 10 * N
    off_by_a_sample = reconcile_ecg(truth(), [*blocks([(0, 9), (20, 39)]), gap(0, 10, 19, end_shift_ns=4_000_000)])
    assert not off_by_a_sample[DEV].ok and "device time" in off_by_a_sample[DEV].gap_mismatches[0]
    # within the truth log's microsecond resolution is exact
    assert reconcile_ecg(truth(), [*blocks([(0, 9), (20, 39)]), gap(0, 10, 19, end_shift_ns=999)])[DEV].ok


def test_a_gap_over_delivered_packets_is_a_mismatch() -> None:
    rep = reconcile_ecg(truth(), [*blocks([(0, 9), (10, 19), (20, 39)]), gap(0, 15, 24)])[DEV]
    assert not rep.ok and "delivered" in rep.gap_mismatches[0]


def test_the_same_gap_reported_twice_under_two_numbers_is_a_mismatch() -> None:
    rep = reconcile_ecg(truth(), [*blocks([(0, 9), (20, 39)]), gap(0, 10, 19), gap(1, 10, 19)])[DEV]
    assert not rep.ok and "another gap" in rep.gap_mismatches[0]
    # the same gap record replayed (same sequence) is one gap
    assert reconcile_ecg(truth(), [*blocks([(0, 9), (20, 39)]), gap(0, 10, 19), gap(0, 10, 19)])[DEV].ok


def test_a_replayed_record_is_a_duplicate_not_a_reordering() -> None:
    b = blocks([(0, 9), (10, 19), (20, 39)])
    rep = reconcile_ecg(truth(), [b[0], b[1], b[1], b[2]])[DEV]
    assert not rep.ok
    assert rep.duplicate_records == 1 and rep.duplicate_samples == 10 * N and rep.reordered_records == 0
    assert rep.delivered_samples == rep.produced_samples


def test_out_of_order_records_are_counted_as_reordered_not_duplicated() -> None:
    b = blocks([(0, 9), (10, 19), (20, 29), (30, 39)])
    rep = reconcile_ecg(truth(), [b[0], b[2], b[1], b[3]])[DEV]
    assert not rep.ok
    assert rep.reordered_records == 1 and rep.duplicate_records == 0 and rep.duplicate_samples == 0
    assert rep.delivered_samples == rep.produced_samples and rep.wrong_samples == 0


def test_a_packet_in_two_records_is_a_duplicated_sample() -> None:
    # e.g. a gateway that resumed from an older packet after a restart and sent it again
    rep = reconcile_ecg(truth(), blocks([(0, 9), (5, 19), (20, 39)]))[DEV]
    assert not rep.ok and rep.duplicate_samples == 5 * N and rep.duplicate_records == 0


def test_changed_values_are_wrong() -> None:
    b = block(0, 0, 39)
    b.samples.samples = b"\x00\x00" + b.samples.samples[2:]
    rep = reconcile_ecg(truth(), [b])[DEV]
    assert not rep.ok and rep.wrong_samples == N


def test_evicted_records_leave_documented_holes() -> None:
    # records 1 and 2 (packets 10..29) evicted under the disk budget; one EVICTED gap per eviction transaction
    records = [block(0, 0, 9), block(3, 30, 39), gap(0, 10, 19, pb.GAP_CAUSE_EVICTED),
               gap(1, 20, 29, pb.GAP_CAUSE_EVICTED)]
    rep = reconcile_ecg(truth(), records)[DEV]
    assert rep.ok, rep
    assert rep.evicted_samples == rep.gap_samples_accounted == 20 * N
    assert rep.evicted_records == 2 and rep.sequence_holes == 0


def test_an_eviction_chained_to_a_link_loss() -> None:
    records = [block(0, 0, 9), block(2, 30, 39), gap(0, 10, 19, pb.GAP_CAUSE_EVICTED), gap(1, 20, 29)]
    assert reconcile_ecg(truth(), records)[DEV].ok


def test_a_record_lost_in_transit_is_a_hole_even_when_a_link_loss_gap_follows() -> None:
    records = [block(0, 0, 9), block(2, 30, 39), gap(0, 20, 29)]  # record 1 (packets 10..19) vanished
    rep = reconcile_ecg(truth(), records)[DEV]
    assert not rep.ok and rep.sequence_holes == 1 and rep.missing_samples == 10 * N
    # even when a link-loss gap claims exactly the lost record's packets: only evictions excuse a hole
    claimed = reconcile_ecg(truth(), [block(0, 0, 9), block(2, 20, 39), gap(0, 10, 19)])[DEV]
    assert not claimed.ok and claimed.sequence_holes == 1 and claimed.missing_samples == 0


def test_an_eviction_gap_does_not_excuse_more_records_than_it_explains() -> None:
    # the EVICTED gap covers packets 10..19, but records 1 AND 2 are missing: 20..29 are lost
    records = [block(0, 0, 9), block(3, 30, 39), gap(0, 10, 19, pb.GAP_CAUSE_EVICTED)]
    rep = reconcile_ecg(truth(), records)[DEV]
    assert not rep.ok and rep.sequence_holes == 2 and rep.missing_samples == 10 * N


def test_what_the_gateway_never_heard_is_unknown_not_missing() -> None:
    t = truth(range(5, 35), unsent=[0, 1, 2, 3, 4, 35, 36])
    rep = reconcile_ecg(t, blocks([(5, 19), (20, 34)]))[DEV]
    assert rep.ok
    assert rep.before_first_delivery == 5 * N and rep.after_last_delivery == 2 * N


def test_unsent_packets_inside_the_stream_need_a_gap() -> None:
    t = truth([*range(0, 10), *range(15, 40)], unsent=[10, 11, 12, 13, 14])
    assert not reconcile_ecg(t, blocks([(0, 9), (15, 39)]))[DEV].ok
    assert reconcile_ecg(t, [*blocks([(0, 9), (15, 39)]), gap(0, 10, 14)])[DEV].ok


def test_streams_by_sequence_holes_excuses_and_acks() -> None:
    ecg = blocks([(0, 39)])
    rec = reconcile_streams(truth(), [*ecg, vitals(0), vitals(1), vitals(3)])
    v = rec.streams[f"{DEV}/vitals"]
    assert not rec.ok and v.holes == [(2, 2)] and v.records == 3
    excused = reconcile_streams(truth(), [*ecg, vitals(0), vitals(1), vitals(3)], excused={f"{DEV}/vitals": [(2, 2)]})
    assert excused.ok and excused.streams[f"{DEV}/vitals"].excused_records == 1
    # the cloud acked 0..5: 4 and 5 are not in Kafka, so the holes reach past the last record seen
    acked = reconcile_streams(truth(), [*ecg, vitals(0), vitals(1), vitals(2), vitals(3)],
                              acked={f"{DEV}/vitals": 6, f"{DEV}/alarms": 1})
    assert not acked.ok
    assert acked.streams[f"{DEV}/vitals"].holes == [(4, 5)] and acked.streams[f"{DEV}/vitals"].acked_missing == 2
    assert acked.streams[f"{DEV}/alarms"].holes == [(0, 0)]  # acked, never seen at all


def test_streams_duplicates_and_reordering() -> None:
    ecg = blocks([(0, 39)])
    dup = reconcile_streams(truth(), [*ecg, vitals(0), vitals(1), vitals(1), vitals(2)])
    assert dup.streams[f"{DEV}/vitals"].duplicate_records == 1 and not dup.ok
    conflicting = vitals(1)
    conflicting.vitals.heart_rate_bpm = 200.0
    dup2 = reconcile_streams(truth(), [*ecg, vitals(0), vitals(1), conflicting])
    assert dup2.streams[f"{DEV}/vitals"].conflicting_duplicates == 1
    reord = reconcile_streams(truth(), [*ecg, vitals(1), vitals(0), vitals(2)])
    s = reord.streams[f"{DEV}/vitals"]
    assert s.reordered_records == 1 and s.duplicate_records == 0 and not s.holes and not reord.ok


def test_ecg_of_a_device_missing_from_the_truth_is_wrong() -> None:
    stranger = block(0, 0, 9, device="C0:00:00:00:00:99")
    rec = reconcile_streams(truth(), [*blocks([(0, 39)]), stranger])
    assert not rec.ok and rec.ecg["C0:00:00:00:00:99"].wrong_samples == N * N


def test_totals_add_up() -> None:
    records = [block(0, 0, 9), block(3, 30, 39), gap(0, 10, 19, pb.GAP_CAUSE_EVICTED),
               gap(1, 20, 29, pb.GAP_CAUSE_EVICTED), vitals(0)]
    rec = reconcile_streams(truth(), records, acked={f"{DEV}/ecg": 4, f"{DEV}/events": 2, f"{DEV}/vitals": 1})
    assert rec.ok, rec
    t = rec.totals()
    assert t["produced_samples"] == t["delivered_samples"] + t["gap_samples"] == PACKETS * N
    assert t["evicted_samples"] == 20 * N and t["excused_records"] == 2 and t["missing_records"] == 0
    assert t["records"] == 2 + 2 + 1
