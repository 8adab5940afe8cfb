"""FHIR R4B export of a patient's vital signs: ``GET /fhir/Observation?patient=<pseudonym>``.

Hospital systems take vital signs as FHIR Observations with LOINC codes and UCUM units, not as our
GraphQL types, so this maps the two stores the API already reads: the latest value of each vital
(``latest_vitals``, one time point per value) and the 5-minute feature windows (means over the
window, so their Observations carry ``effectivePeriod`` rather than one instant). Each time point
becomes a vital-signs panel (LOINC 85353-1) whose ``hasMember`` points at its heart rate, respiratory
rate, SpO2 and blood pressure Observations, all in one ``searchset`` Bundle, newest first.

The subject is ``Patient/<pseudonym>``: the cloud knows no names. Reads are authorized and audited
exactly like the GraphQL patient reads (operation ``fhir.Observation``).

The panels are the search's matches and their members come along as includes (``search.mode``),
so ``_count`` counts panels and a page never holds a panel without its members. ``date``
(``ge``/``gt``/``le``/``lt``) bounds the device time. There is no next-page link and no ``total``
(the windows are read newest first, ``_count`` at a time): a narrower ``date`` range reaches older ones.

ECG: with ``code=131328`` (MDC_ECG_ELEC_POTL, optionally ``urn:oid:2.16.840.1.113883.6.24|``) and a
``date`` range of at most five minutes, the search returns instead the stored ECG blocks
(``ecg_blocks``) whose first sample lies in the range, one Observation per block with its raw
integers as ``valueSampledData``. A wearable does not say which lead it records, so a stored
block's component carries the unspecified-lead code 131328; :func:`ecg_observation` takes lead I
(131329) or II (131330) where the caller knows it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from cardiogate.cloud.api.access import Denied
from cardiogate.cloud.api.data import EcgBlockRow, VitalRow
from cardiogate.cloud.api.objects import time_ns
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb

MEDIA_TYPE = "application/fhir+json"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MDC = "urn:oid:2.16.840.1.113883.6.24"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
CATEGORY = {"coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs", "display": "Vital Signs"}],
            "text": "Vital Signs"}
PROFILE = "http://hl7.org/fhir/StructureDefinition/"
WINDOW_S = 300
MAX_COUNT = 500
ECG = ("131328", "MDC_ECG_ELEC_POTL")
ECG_LEADS = {"I": ("131329", "MDC_ECG_ELEC_POTL_I"), "II": ("131330", "MDC_ECG_ELEC_POTL_II"), "unspecified": ECG}
MAX_ECG_RANGE_NS = 300 * 10**9
_ENCODING_NAMES = {"int16_le": pb.SAMPLE_ENCODING_INT16_LE, "int32_le": pb.SAMPLE_ENCODING_INT32_LE}
_STATUS_ISSUE = {401: "login", 403: "forbidden", 429: "throttled", 400: "invalid"}
_WIDTH = {pb.SAMPLE_ENCODING_INT16_LE: "<i2", pb.SAMPLE_ENCODING_INT32_LE: "<i4"}


@dataclass(frozen=True)
class Vital:
    """One LOINC-coded vital sign: its codings, UCUM unit and the core profile it meets."""

    codings: tuple[tuple[str, str], ...]  # (code, display), LOINC
    unit: str
    ucum: str
    profile: str


HEART_RATE = Vital((("8867-4", "Heart rate"),), "beats/minute", "/min", "heartrate")
RESPIRATORY_RATE = Vital((("9279-1", "Respiratory rate"),), "breaths/minute", "/min", "resprate")
SPO2 = Vital((("2708-6", "Oxygen saturation in Arterial blood"),
              ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")), "%", "%", "oxygensat")
SYSTOLIC = Vital((("8480-6", "Systolic blood pressure"),), "mmHg", "mm[Hg]", "bp")
DIASTOLIC = Vital((("8462-4", "Diastolic blood pressure"),), "mmHg", "mm[Hg]", "bp")
BP_PANEL = (("85354-9", "Blood pressure panel with all children optional"),)
VITALS_PANEL = (("85353-1", "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel"),)

# latest_vitals names (the VitalsRecord field names) -> what they are in FHIR
LATEST = {"heart_rate_bpm": HEART_RATE, "spo2_percent": SPO2}
BLOOD_PRESSURE = {"systolic_mmhg": SYSTOLIC, "diastolic_mmhg": DIASTOLIC}


@dataclass(frozen=True)
class Effective:
    """When an Observation holds: an instant (``at``) or a window [``at``, ``end``)."""

    at: int
    end: int | None = None

    def fields(self) -> dict[str, Any]:
        if self.end is None:
            return {"effectiveDateTime": fhir_time(self.at)}
        return {"effectivePeriod": {"start": fhir_time(self.at), "end": fhir_time(self.end)}}


def fhir_time(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 10**9, tz=UTC).replace(microsecond=(ns % 10**9) // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _concept(codings: Iterable[tuple[str, str]], system: str = LOINC) -> dict[str, Any]:
    items = list(codings)
    return {"coding": [{"system": system, "code": c, "display": d} for c, d in items], "text": items[0][1]}


def _quantity(value: float, vital: Vital) -> dict[str, Any]:
    return {"value": value, "unit": vital.unit, "system": UCUM, "code": vital.ucum}


def _id(patient: str, source: str, at: int, what: str) -> str:
    digest = hashlib.sha256(f"{patient}|{source}|{at}|{what}".encode()).hexdigest()[:32]
    return f"{what}-{digest}"


def _observation(oid: str, patient: str, code: dict[str, Any], effective: Effective, profile: str,
                 **value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "meta": {"profile": [PROFILE + profile]}, "status": "final",
            "category": [CATEGORY], "code": code, "subject": {"reference": f"Patient/{patient}"},
            **effective.fields(), **value}


def _members(patient: str, source: str, effective: Effective, values: dict[Vital, float]) -> list[dict[str, Any]]:
    """The Observations of one time point: one per vital, the two pressures in one BP panel."""
    out = []
    for vital in (HEART_RATE, RESPIRATORY_RATE, SPO2):
        if vital in values:
            out.append(_observation(_id(patient, source, effective.at, vital.profile), patient,
                                    _concept(vital.codings), effective, vital.profile,
                                    valueQuantity=_quantity(values[vital], vital)))
    pressures = [{"code": _concept(v.codings), "valueQuantity": _quantity(values[v], v)}
                 for v in (SYSTOLIC, DIASTOLIC) if v in values]
    if pressures:
        out.append(_observation(_id(patient, source, effective.at, "bp"), patient, _concept(BP_PANEL), effective,
                                "bp", component=pressures))
    return out


def panel(patient: str, source: str, effective: Effective, values: dict[Vital, float]) -> list[dict[str, Any]]:
    """A vital-signs panel (85353-1) followed by its members; empty when nothing was measured."""
    members = _members(patient, source, effective, values)
    if not members:
        return []
    head = _observation(_id(patient, source, effective.at, "panel"), patient, _concept(VITALS_PANEL), effective,
                        "vitalspanel", hasMember=[{"reference": f"Observation/{m['id']}"} for m in members])
    return [head, *members]


def latest_panels(patient: str, rows: Sequence[VitalRow]) -> list[tuple[int, list[dict[str, Any]]]]:
    """Latest values, one panel per device time (each value keeps its own time; a cuff's two pressures share one)."""
    by_time: dict[int, dict[Vital, float]] = {}
    for row in rows:
        vital = LATEST.get(row.name) or BLOOD_PRESSURE.get(row.name)
        if vital is not None:
            by_time.setdefault(row.device_time_ns, {})[vital] = row.value
    return [(t, panel(patient, "latest", Effective(t), values)) for t, values in by_time.items()]


def window_panel(patient: str, w: features_pb2.FeatureWindow) -> list[dict[str, Any]]:
    """A feature window's means as a panel over the window's device-time period."""
    fields = {HEART_RATE: "hr_mean", RESPIRATORY_RATE: "respiratory_rate_mean", SPO2: "spo2_mean",
              SYSTOLIC: "systolic_mean", DIASTOLIC: "diastolic_mean"}
    values = {vital: float(getattr(w, name)) for vital, name in fields.items() if w.HasField(name)}  # type: ignore[arg-type]
    return panel(patient, f"window-{w.width_s}", Effective(w.start_device_time_ns, w.end_device_time_ns), values)


def sampled_data(block: pb.SampleBlock) -> dict[str, Any]:
    """A sample block as FHIR SampledData: raw integers, ``factor`` = the block's scale, ``period`` in ms."""
    dtype = _WIDTH.get(block.encoding)
    if dtype is None:
        raise ValueError(f"unknown sample encoding {block.encoding}")
    raw = np.frombuffer(block.samples, dtype=dtype, count=block.sample_count)
    return {"origin": {"value": 0, "unit": block.unit, "system": UCUM, "code": block.unit},
            "period": 1000.0 / block.sample_rate_hz, "factor": block.scale, "dimensions": 1,
            "data": " ".join(str(int(v)) for v in raw)}


def ecg_observation(patient: str, leads: dict[str, pb.SampleBlock], device: str = "") -> dict[str, Any]:
    """An ECG Observation (MDC 131328) with one ``valueSampledData`` component per lead ("I", "II", "unspecified")."""
    if not leads or set(leads) - set(ECG_LEADS):
        raise ValueError(f"leads must be some of {sorted(ECG_LEADS)}")
    first = min(b.first_sample_device_time_ns for b in leads.values())
    components = [{"code": _concept([ECG_LEADS[name]], MDC), "valueSampledData": sampled_data(block)}
                  for name, block in sorted(leads.items())]
    extra = {"device": {"display": device}} if device else {}
    return {"resourceType": "Observation", "id": _id(patient, f"ecg-{device}", first, "ecg"), "status": "final",
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "procedure"}]}],
            "code": _concept([("131328", "MDC_ECG_ELEC_POTL")], MDC), "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": fhir_time(first), "component": components, **extra}


def stored_ecg(patient: str, row: EcgBlockRow) -> dict[str, Any] | None:
    """A stored block as an ECG Observation; None for an encoding this export does not know."""
    encoding = _ENCODING_NAMES.get(row.encoding)
    if encoding is None:
        return None
    block = pb.SampleBlock(first_sample_device_time_ns=row.first_ns, sample_rate_hz=row.sample_rate_hz,
                           scale=row.scale, unit=row.unit, encoding=encoding, samples=row.samples,
                           sample_count=row.sample_count)
    return ecg_observation(patient, {"unspecified": block}, row.device_id)


def is_ecg_code(value: str) -> bool:
    """Whether a ``code`` search parameter asks for ECG (the only code this search filters on)."""
    system, _, code = value.rpartition("|")
    if system not in ("", MDC) or code != ECG[0]:
        raise ValueError(f"only code {ECG[0]} ({MDC}) can be searched; leave code out for vital signs")
    return True


def outcome(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A refusal as an OperationOutcome, the FHIR way to say why."""
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": _STATUS_ISSUE.get(status, "processing"), "diagnostics": text}]}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def date_bounds(values: Sequence[str]) -> tuple[int | None, int | None]:
    """``date=ge2026-01-01T00:00:00Z&date=lt...`` as [from, to) in ns; raises ValueError for anything else."""
    if len(values) > 2:
        raise ValueError("at most two date parameters (a lower and an upper bound)")
    lows: list[int] = []
    highs: list[int] = []
    for value in values:
        prefix, text = value[:2], value[2:]
        if prefix not in ("ge", "gt", "le", "lt"):
            raise ValueError("date needs a ge, gt, le or lt prefix")
        ns = time_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))
        if prefix in ("ge", "gt"):
            lows.append(ns + (prefix == "gt"))
        else:
            highs.append(ns + (prefix == "le"))
    return (max(lows) if lows else None), (min(highs) if highs else None)


def router() -> APIRouter:
    """``/fhir/Observation``; the services come from ``request.app.state.services``."""
    api = APIRouter(tags=["fhir"])

    @api.get("/fhir/Observation", response_class=JSONResponse,
             responses={200: {"content": {MEDIA_TYPE: {}}, "description": "a searchset Bundle"},
                        400: {"description": "a date parameter FHIR search does not allow"},
                        401: {"description": "no or invalid bearer token"},
                        403: {"description": "the role or site scope does not cover the patient"},
                        429: {"description": "too many requests"}})
    async def search_observations(
            request: Request,
            patient: Annotated[str, Query(min_length=1, max_length=72,
                                          description="the pseudonym (or Patient/<pseudonym>)")],
            count: Annotated[int, Query(ge=1, le=MAX_COUNT, alias="_count")] = 100,
            date: Annotated[list[str] | None, Query(description="ge/gt/le/lt + ISO date-time; at most two")] = None,
            code: Annotated[str | None, Query(max_length=80, description="131328: ECG blocks (needs a date range "
                                                                       "of at most 5 minutes)")] = None,
    ) -> JSONResponse:
        """Vital-signs panels of one patient with their member Observations (FHIR R4B searchset, newest first)."""
        services = request.app.state.services
        pseudonym = patient.removeprefix("Patient/")
        try:
            low, high = date_bounds(date or [])
            ecg = code is not None and is_ecg_code(code)
        except ValueError as exc:
            return outcome(400, f"bad search parameter: {exc}")
        if ecg and (low is None or high is None or not 0 < high - low <= MAX_ECG_RANGE_NS):
            return outcome(400, "an ECG search needs a date range (ge and le) of at most 5 minutes")
        client = request.client.host if request.client else ""
        try:
            caller = await services.authenticate(request.headers.get("authorization"), client)
            await asyncio.to_thread(services.access.authorize_patient, caller, pseudonym, "fhir.Observation")
        except Denied as exc:
            status = {"UNAUTHENTICATED": 401, "RATE_LIMITED": 429}.get(exc.code, 403)
            return outcome(status, str(exc), {"WWW-Authenticate": "Bearer"} if status == 401 else None)
        data = services.data

        def load() -> list[tuple[int, list[dict[str, Any]]]]:
            if ecg:
                assert low is not None and high is not None
                blocks = [(r.first_ns, stored_ecg(pseudonym, r)) for r in data.ecg_blocks(pseudonym, low, high)
                          if low <= r.first_ns < high]
                return [(t, [o]) for t, o in blocks if o is not None]
            found = [(t, g) for t, g in latest_panels(pseudonym, data.vitals(pseudonym))
                     if (low is None or t >= low) and (high is None or t < high)]
            windows = data.recent_windows(pseudonym, WINDOW_S, low, high, count)
            return found + [(w.start_device_time_ns, window_panel(pseudonym, w)) for w in windows]

        groups = await asyncio.to_thread(load)
        groups = sorted(((t, g) for t, g in groups if g), key=lambda item: item[0], reverse=True)
        base = str(request.base_url).rstrip("/")
        entries = [{"fullUrl": f"{base}/fhir/Observation/{o['id']}", "resource": o,
                    "search": {"mode": "match" if i == 0 else "include"}}
                   for _, group in groups[:count] for i, o in enumerate(group)]
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "link": [{"relation": "self", "url": str(request.url)}], "entry": entries}
        return JSONResponse(bundle, media_type=MEDIA_TYPE)

    return api
