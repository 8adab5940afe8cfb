"""Phone-direct smartwatch readings (``ingestSmartwatchData``): into Kafka exactly as a gateway's.

A phone app paired with a watch has no gateway and no client certificate, so it sends each reading
through the API. Every consumer (stream processor, stores) must see it as it sees a gateway's: one
telemetry ``Record`` of kind VITALS with stream ``<device>/vitals``, keyed by the patient pseudonym,
with ``gateway``/``stream``/``seq`` headers, on the vitals topic. The records are built by the
ingest's own :func:`prepare_records` and checked by its own :func:`validate_batch` (plus what a
gateway's wearable cannot send wrong: finite numbers, blood pressure and RR-interval ranges).

The gateway header is a pseudo-gateway ``direct:<site>``, and duplicates are dropped by the ingest's
sequence ledger under that name: a phone that resends (device, sequence) after a lost answer gets
``true`` again and Kafka gets nothing new. As from a gateway, each device's sequences must increase:
one below the ledger's next-expected sequence counts as already written. The ledger moves forward
only after Kafka confirmed the record, so a failed write is retried by the phone, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine, select

from cardiogate.cloud.api.access import Access, Caller, site_filter
from cardiogate.cloud.api.objects import SmartwatchInput, time_ns
from cardiogate.cloud.db import assignments
from cardiogate.cloud.dedup import SequenceLedger
from cardiogate.cloud.ingest import prepare_records
from cardiogate.cloud.kafka_bridge import KafkaBridge, OutgoingRecord
from cardiogate.cloud.settings import CloudSettings, IngestLimits, KafkaSettings
from cardiogate.cloud.validation import InvalidBatch, validate_batch
from cardiogate.core import metrics as registry
from cardiogate.core.logs import get_logger
from cardiogate.proto.v1 import telemetry_pb2 as pb

log = get_logger(__name__)

READINGS = registry.counter("api_direct_readings", "Phone-direct readings, by outcome (written, duplicate).",
                            ("outcome",))
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$")
MAX_RR_INTERVALS = 300
SOURCE = "phone"
_CLAIM_WAIT_S = 10.0


class Refused(Exception):
    """A reading not written; ``code`` is the GraphQL error code (BAD_USER_INPUT, FORBIDDEN, UNAVAILABLE)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Producer(Protocol):
    async def send(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]: ...


@dataclass(frozen=True)
class Reading:
    """One watch reading as the phone sends it; absent values were not measured."""

    device_id: str
    patient: str
    sequence: int
    device_time_ns: int
    heart_rate: float | None = None
    spo2: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    rr_intervals_ms: tuple[float, ...] = field(default=())


def _bad(message: str) -> Refused:
    return Refused("BAD_USER_INPUT", message)


def vitals_record(reading: Reading, limits: IngestLimits, now_ns: int | None = None) -> pb.Record:
    """The telemetry record of a reading, checked as the gRPC ingest checks a gateway's; raises :class:`Refused`."""
    now = time.time_ns() if now_ns is None else now_ns
    if not _DEVICE.fullmatch(reading.device_id):
        raise _bad("deviceId must be 1-64 letters, digits or ':._-'")
    if reading.sequence < 0:
        raise _bad("sequence must not be negative")
    values = {"heartRate": reading.heart_rate, "spo2": reading.spo2, "systolic": reading.systolic,
              "diastolic": reading.diastolic}
    if all(v is None for v in values.values()) and not reading.rr_intervals_ms:
        raise _bad("a reading needs at least one of heartRate, spo2, systolic, diastolic, rrIntervalsMs")
    for name, value in [*values.items(), *(("rrIntervalsMs", v) for v in reading.rr_intervals_ms)]:
        if value is not None and not math.isfinite(value):
            raise _bad(f"{name} must be a finite number")
    if reading.systolic is not None and not 20 <= reading.systolic <= 300:
        raise _bad(f"systolic {reading.systolic} mmHg out of range 20..300")
    if reading.diastolic is not None and not 10 <= reading.diastolic <= 250:
        raise _bad(f"diastolic {reading.diastolic} mmHg out of range 10..250")
    if reading.systolic is not None and reading.diastolic is not None and reading.diastolic >= reading.systolic:
        raise _bad("diastolic must be below systolic")
    if len(reading.rr_intervals_ms) > MAX_RR_INTERVALS or not all(200 <= v <= 3000 for v in reading.rr_intervals_ms):
        raise _bad(f"rrIntervalsMs: at most {MAX_RR_INTERVALS} intervals of 200..3000 ms")
    v = pb.VitalsRecord(device_time_ns=reading.device_time_ns, receive_time_ns=now, source=SOURCE,
                        rr_intervals_ms=list(reading.rr_intervals_ms))
    for name, value in (("heart_rate_bpm", reading.heart_rate), ("spo2_percent", reading.spo2),
                        ("systolic_mmhg", reading.systolic), ("diastolic_mmhg", reading.diastolic)):
        if value is not None:
            setattr(v, name, value)
    record = pb.Record(stream_id=f"{reading.device_id}/vitals", sequence=reading.sequence,
                       device_id=reading.device_id, patient=reading.patient, kind=pb.STREAM_KIND_VITALS, vitals=v)
    try:
        validate_batch(pb.TelemetryBatch(records=[record]), limits, now_ns=now)
    except InvalidBatch as exc:  # the ingest's own words, less its "record 0 (...)" prefix
        raise _bad(str(exc).split(": ", 1)[-1]) from exc
    return record


class DirectIngest:
    """Authorize, de-duplicate and write phone-direct readings (one at a time, each awaited until Kafka has it)."""

    def __init__(self, engine: Engine, producer: Producer, kafka: KafkaSettings, limits: IngestLimits,
                 claim_ttl_s: float = 5.0, replica: str = "api") -> None:
        self._engine = engine
        self._access = Access(engine)
        self._producer = producer
        self._limits = limits
        self._claim_ttl_s = claim_ttl_s
        self._ledger = SequenceLedger(engine, claim_ttl_s, replica)
        self._topics = {pb.STREAM_KIND_VITALS: kafka.topic_vitals}

    @classmethod
    def from_settings(cls, settings: CloudSettings, engine: Engine) -> DirectIngest:
        """With a producer of its own on ``settings.kafka`` (close it with :meth:`close`)."""
        return cls(engine, KafkaBridge(settings.kafka), settings.kafka, settings.limits, settings.flow.claim_ttl_s,
                   f"{settings.replica}-api")

    def close(self) -> None:
        if isinstance(self._producer, KafkaBridge):
            self._producer.close()

    def authorize(self, caller: Caller, record: pb.Record) -> str:
        """The pseudo-gateway the record is written under, once the caller may write for the patient (audited)
        and the device is not assigned to another patient; raises :class:`Refused`."""
        known, site = self._access.patient_site(record.patient)
        scope = site_filter(caller.principal)
        if not known or (scope is not None and site not in scope):
            raise Refused("FORBIDDEN", f"no access to patient {record.patient!r}")
        with self._engine.connect() as conn:
            owners = set(conn.execute(select(assignments.c.patient)
                                      .where(assignments.c.device_id == record.device_id)).scalars())
        if owners and record.patient not in owners:
            raise Refused("FORBIDDEN", f"device {record.device_id!r} is assigned to another patient")
        self._access.audit(caller, "ingestSmartwatchData", [record.patient])
        return f"direct:{site or 'none'}"[:64]

    async def ingest(self, caller: Caller, reading: Reading) -> bool:
        """Write the reading unless the ledger has it; True either way (the phone may forget it)."""
        record = vitals_record(reading, self._limits)
        gateway = await asyncio.to_thread(self.authorize, caller, record)
        stream = record.stream_id
        owner = self._ledger.new_owner()
        expected = await self._claim(gateway, stream, owner)
        if record.sequence < expected[stream]:
            await asyncio.to_thread(self._ledger.commit, gateway, owner, expected, {})
            READINGS.labels(outcome="duplicate").inc()
            return True
        outgoing = prepare_records(pb.TelemetryBatch(records=[record]), gateway, self._topics).outgoing
        errors: list[Exception | None] = [RuntimeError("not sent")]
        try:
            errors = await self._send_renewing(gateway, stream, owner, outgoing)
        finally:
            advance = {stream: record.sequence + 1} if errors == [None] else {}
            lost = await asyncio.to_thread(self._ledger.commit, gateway, owner, expected, advance)
        if lost:
            log.warning("ledger claim lost while writing; the reading may be duplicated", gateway=gateway,
                        stream=stream)
        if errors != [None]:
            log.warning("kafka did not confirm a phone-direct reading", gateway=gateway, error=str(errors[0]))
            raise Refused("UNAVAILABLE", "the reading could not be stored; send it again")
        READINGS.labels(outcome="written").inc()
        return True

    async def _claim(self, gateway: str, stream: str, owner: str) -> dict[str, int]:
        deadline = time.monotonic() + self._claim_ttl_s + _CLAIM_WAIT_S
        delay = 0.005
        while True:
            got = await asyncio.to_thread(self._ledger.claim, gateway, [stream], owner)
            if got:
                return got
            if time.monotonic() > deadline:
                raise Refused("UNAVAILABLE", "the device's stream is busy; send the reading again")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _send_renewing(self, gateway: str, stream: str, owner: str,
                             outgoing: list[OutgoingRecord]) -> list[Exception | None]:
        """Send, renewing the claim while Kafka is slow (as the gRPC ingest does)."""
        send = asyncio.ensure_future(self._producer.send(outgoing))
        try:
            while True:
                done, _ = await asyncio.wait({send}, timeout=self._claim_ttl_s / 3)
                if done:
                    return send.result()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._ledger.renew, gateway, [stream], owner)
        finally:
            send.cancel()



def reading_of(data: SmartwatchInput) -> Reading:
    """The mutation's input as a :class:`Reading`; raises :class:`Refused` for what the vitals record cannot carry."""
    if data.steps is not None:
        raise _bad("steps are not carried yet; leave them out")
    return Reading(device_id=str(data.device_id), patient=str(data.user_id), sequence=data.sequence,
                   device_time_ns=time_ns(data.time), heart_rate=data.heart_rate, spo2=data.spo2,
                   systolic=data.systolic, diastolic=data.diastolic,
                   rr_intervals_ms=tuple(data.rr_intervals_ms or ()))
