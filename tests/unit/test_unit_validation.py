"""Cloud batch validation: a good batch passes, every kind of bad batch is refused whole."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from cardiogate.cloud.settings import IngestLimits
from cardiogate.cloud.validation import InvalidBatch, validate_batch
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
NOW = 1_700_000_000 * S
DEV = "C0:00:00:00:00:01"
LIMITS = IngestLimits()


def ecg_record(seq: int, device: str = DEV, t: int = NOW) -> pb.Record:
    return pb.Record(
        stream_id=f"{device}/ecg", sequence=seq, device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_ECG,
        samples=pb.SampleBlock(first_sample_device_time_ns=t, receive_time_ns=t + 50, sample_rate_hz=250.0,
                               scale=1.0, unit="uV", encoding=pb.SAMPLE_ENCODING_INT16_LE,
                               samples=b"\x01\x00\x02\x00\x03\x00\xff\xff", sample_count=4,
                               device_sequence_first=seq, device_sequence_last=seq))


def vitals_record(seq: int, device: str = DEV, t: int = NOW, hr: float = 72.0) -> pb.Record:
    return pb.Record(stream_id=f"{device}/vitals", sequence=seq, device_id=device, patient="pt-0001",
                     kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=t, receive_time_ns=t, heart_rate_bpm=hr,
                                            rr_intervals_ms=[833.0]))


def alarm_record(seq: int, device: str = DEV) -> pb.Record:
    return pb.Record(stream_id=f"{device}/alarms", sequence=seq, device_id=device, patient="pt-0001",
                     kind=pb.STREAM_KIND_ALARMS,
                     alarm=pb.Alarm(alarm_id="pt-0001:tachycardia:1:1", condition="tachycardia",
                                    priority=pb.ALARM_PRIORITY_MEDIUM, state=pb.ALARM_STATE_RAISED, value=130.0,
                                    limit=120.0))


def good_batch() -> pb.TelemetryBatch:
    return pb.TelemetryBatch(batch_id=7, records=[
        ecg_record(0), vitals_record(0), ecg_record(1), alarm_record(0), vitals_record(5),
        ecg_record(0, device="C0:00:00:00:00:02"), vitals_record(0, device="C0:00:00:00:00:02"),
    ])


def test_good_batch_passes() -> None:
    validate_batch(good_batch(), LIMITS, now_ns=NOW)


def test_single_record_of_each_kind_passes() -> None:
    for rec in (ecg_record(0), vitals_record(0), alarm_record(0)):
        validate_batch(pb.TelemetryBatch(records=[rec]), LIMITS, now_ns=NOW)


def test_uses_wall_clock_when_now_not_given() -> None:
    now = time.time_ns()
    validate_batch(pb.TelemetryBatch(records=[vitals_record(0, t=now)]), LIMITS)
    with pytest.raises(InvalidBatch):
        validate_batch(pb.TelemetryBatch(records=[vitals_record(0, t=now - 2 * 86400 * S)]), LIMITS)


def test_empty_batch_rejected() -> None:
    with pytest.raises(InvalidBatch, match="no records"):
        validate_batch(pb.TelemetryBatch(batch_id=1), LIMITS, now_ns=NOW)


def test_too_many_records_rejected() -> None:
    limit = LIMITS.max_records_per_batch
    assert limit == 5000
    at_limit = pb.TelemetryBatch(records=[vitals_record(i) for i in range(limit)])
    validate_batch(at_limit, LIMITS, now_ns=NOW)
    at_limit.records.append(vitals_record(limit))
    with pytest.raises(InvalidBatch, match="5001"):
        validate_batch(at_limit, LIMITS, now_ns=NOW)


def test_limits_are_honoured() -> None:
    small = IngestLimits(max_records_per_batch=2, max_samples_per_block=3, max_clock_skew_s=10.0)
    with pytest.raises(InvalidBatch):
        validate_batch(pb.TelemetryBatch(records=[vitals_record(0), vitals_record(1), vitals_record(2)]), small,
                       now_ns=NOW)
    with pytest.raises(InvalidBatch):  # 4 samples > 3
        validate_batch(pb.TelemetryBatch(records=[ecg_record(0)]), small, now_ns=NOW)
    validate_batch(pb.TelemetryBatch(records=[vitals_record(0, t=NOW + 10 * S)]), small, now_ns=NOW)
    with pytest.raises(InvalidBatch):
        validate_batch(pb.TelemetryBatch(records=[vitals_record(0, t=NOW + 10 * S + 1)]), small, now_ns=NOW)


Mutation = Callable[[pb.TelemetryBatch], None]


def _set_samples(i: int, **fields: object) -> Mutation:
    def mutate(batch: pb.TelemetryBatch) -> None:
        for k, v in fields.items():
            setattr(batch.records[i].samples, k, v)
    return mutate


def _wrong_body(batch: pb.TelemetryBatch) -> None:
    batch.records[2].vitals.heart_rate_bpm = 60.0  # ECG kind, vitals body (switches the oneof)


def _no_body(batch: pb.TelemetryBatch) -> None:
    batch.records[2].ClearField("samples")


def _kind_unspecified(batch: pb.TelemetryBatch) -> None:
    batch.records[2].kind = pb.STREAM_KIND_UNSPECIFIED
    batch.records[2].stream_id = f"{DEV}/unspecified"


def _kind_vitals_on_ecg_stream(batch: pb.TelemetryBatch) -> None:
    batch.records[2].kind = pb.STREAM_KIND_VITALS


def _field(i: int, name: str, value: object) -> Mutation:
    def mutate(batch: pb.TelemetryBatch) -> None:
        setattr(batch.records[i], name, value)
    return mutate


def _vitals(i: int, name: str, value: object) -> Mutation:
    def mutate(batch: pb.TelemetryBatch) -> None:
        setattr(batch.records[i].vitals, name, value)
    return mutate


# Every mutation touches record 2 (an ECG record, sequence 1) or record 4 (vitals, sequence 5).
BAD: dict[str, tuple[Mutation, int, str]] = {
    "stream-id-wrong-kind": (_field(2, "stream_id", f"{DEV}/vitals"), 2, "stream_id must be"),
    "stream-id-other-device": (_field(2, "stream_id", "C0:00:00:00:00:09/ecg"), 2, "stream_id must be"),
    "stream-id-case": (_field(2, "stream_id", f"{DEV}/ECG"), 2, "stream_id must be"),
    "stream-id-empty": (_field(2, "stream_id", ""), 2, "stream_id must be"),
    "kind-unspecified": (_kind_unspecified, 2, "unknown stream kind"),
    "kind-does-not-match-stream": (_kind_vitals_on_ecg_stream, 2, "stream_id must be"),
    "patient-name": (_field(2, "patient", "John Smith"), 2, "pseudonym"),
    "patient-upper-case": (_field(2, "patient", "PT-0001"), 2, "pseudonym"),
    "patient-empty": (_field(2, "patient", ""), 2, "pseudonym"),
    "patient-too-short": (_field(2, "patient", "pt"), 2, "pseudonym"),
    "patient-leading-dash": (_field(2, "patient", "-pt-0001"), 2, "pseudonym"),
    "patient-too-long": (_field(2, "patient", "p" * 65), 2, "pseudonym"),
    "body-vitals-on-ecg": (_wrong_body, 2, "does not match kind"),
    "no-body": (_no_body, 2, "does not match kind"),
    "sequence-repeated": (_field(2, "sequence", 0), 2, "must increase"),
    "vitals-sequence-repeated": (_field(4, "sequence", 0), 4, "must increase"),
    "vitals-sequence-decreasing": (_field(1, "sequence", 6), 4, "must increase"),
    "samples-short-by-one-byte": (_set_samples(2, samples=b"\x01\x00\x02\x00\x03\x00\xff"), 2, "do not hold"),
    "samples-one-too-many": (_set_samples(2, samples=b"\x00" * 10), 2, "do not hold"),
    "sample-count-zero": (_set_samples(2, sample_count=0, samples=b""), 2, "sample_count 0"),
    "sample-count-mismatch": (_set_samples(2, sample_count=5), 2, "do not hold"),
    "int32-width": (_set_samples(2, encoding=pb.SAMPLE_ENCODING_INT32_LE), 2, "do not hold"),
    "encoding-unspecified": (_set_samples(2, encoding=pb.SAMPLE_ENCODING_UNSPECIFIED), 2, "unknown sample encoding"),
    "sample-rate-zero": (_set_samples(2, sample_rate_hz=0.0), 2, "sample rate"),
    "sample-rate-negative": (_set_samples(2, sample_rate_hz=-250.0), 2, "sample rate"),
    "sample-rate-nan": (_set_samples(2, sample_rate_hz=float("nan")), 2, "sample rate"),
    "sample-rate-too-high": (_set_samples(2, sample_rate_hz=10_000.5), 2, "sample rate"),
    "scale-zero": (_set_samples(2, scale=0.0), 2, "positive scale"),
    "scale-nan": (_set_samples(2, scale=float("nan")), 2, "positive scale"),
    "unit-missing": (_set_samples(2, unit=""), 2, "positive scale"),
    "ecg-time-future": (_set_samples(2, first_sample_device_time_ns=NOW + 86400 * S + 1), 2, "skew"),
    "ecg-time-past": (_set_samples(2, first_sample_device_time_ns=NOW - 86400 * S - 1), 2, "skew"),
    "ecg-time-unset": (_set_samples(2, first_sample_device_time_ns=0), 2, "skew"),
    "vitals-time-far": (_vitals(4, "device_time_ns", NOW + 3 * 86400 * S), 4, "skew"),
    "vitals-time-unset": (_vitals(4, "device_time_ns", 0), 4, "skew"),
    "heart-rate-negative": (_vitals(4, "heart_rate_bpm", -1.0), 4, "heart rate"),
    "heart-rate-too-high": (_vitals(4, "heart_rate_bpm", 400.5), 4, "heart rate"),
    "heart-rate-nan": (_vitals(4, "heart_rate_bpm", float("nan")), 4, "heart rate"),
}


@pytest.mark.parametrize(("mutate", "index", "problem"), list(BAD.values()), ids=list(BAD))
def test_bad_batch_rejected_naming_the_record(mutate: Mutation, index: int, problem: str) -> None:
    batch = good_batch()
    mutate(batch)
    with pytest.raises(InvalidBatch) as info:
        validate_batch(batch, LIMITS, now_ns=NOW)
    assert str(info.value).startswith(f"record {index} ")
    assert problem in str(info.value)


@pytest.mark.parametrize("patient", ["pt-0001", "abc", "0a-b", "p" * 64, "ward-7-bed-12"])
def test_pseudonyms_accepted(patient: str) -> None:
    batch = good_batch()
    batch.records[2].patient = patient
    validate_batch(batch, LIMITS, now_ns=NOW)


def test_clock_skew_boundary_is_inclusive() -> None:
    skew = int(LIMITS.max_clock_skew_s * S)
    for t in (NOW + skew, NOW - skew):
        validate_batch(pb.TelemetryBatch(records=[ecg_record(0, t=t), vitals_record(0, t=t)]), LIMITS, now_ns=NOW)


def test_heart_rate_range_inclusive_and_optional() -> None:
    for bpm in (0.0, 400.0):
        validate_batch(pb.TelemetryBatch(records=[vitals_record(0, hr=bpm)]), LIMITS, now_ns=NOW)
    rec = vitals_record(0)
    rec.vitals.ClearField("heart_rate_bpm")
    validate_batch(pb.TelemetryBatch(records=[rec]), LIMITS, now_ns=NOW)


def test_int32_encoding_accepted_with_four_byte_samples() -> None:
    rec = ecg_record(0)
    rec.samples.encoding = pb.SAMPLE_ENCODING_INT32_LE
    rec.samples.samples = b"\x00" * 16
    validate_batch(pb.TelemetryBatch(records=[rec]), LIMITS, now_ns=NOW)


def test_sequence_checked_per_stream_not_across_streams() -> None:
    batch = pb.TelemetryBatch(records=[ecg_record(9), vitals_record(0), ecg_record(10), vitals_record(1)])
    validate_batch(batch, LIMITS, now_ns=NOW)
    batch.records.append(ecg_record(10))
    with pytest.raises(InvalidBatch, match=r"^record 4 "):
        validate_batch(batch, LIMITS, now_ns=NOW)


def test_patient_with_trailing_newline_rejected() -> None:
    batch = good_batch()
    batch.records[2].patient = "pt-0001\n"
    with pytest.raises(InvalidBatch):
        validate_batch(batch, LIMITS, now_ns=NOW)
