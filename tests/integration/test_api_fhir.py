"""The FHIR R4B export (/fhir/Observation) on a seeded database: the Bundle parses with the
fhir.resources R4B models and carries the seeded values under their LOINC codes and UCUM units;
authorization and audit are those of the GraphQL patient reads; ECG blocks become SampledData."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from sqlalchemy import select

from cardiogate.cloud import history
from cardiogate.cloud.api.fhir import MEDIA_TYPE, date_bounds, ecg_observation, sampled_data
from cardiogate.cloud.api.tables import api_audit
from cardiogate.cloud.db import latest_vitals
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.api_testkit import T0, Seeded, api_settings, client_for, database, login, seed

pytestmark = [pytest.mark.api, pytest.mark.timeout(120)]

S = 10**9
LATEST_T = T0 + 900 * S
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seeded]:
    with database(request.param, tmp_path) as engine:
        s = seed(engine)
        with engine.begin() as conn:
            for vital, value in (("heart_rate_bpm", 91.0), ("spo2_percent", 96.0), ("systolic_mmhg", 128.0),
                                 ("diastolic_mmhg", 82.0)):
                conn.execute(latest_vitals.insert().values(
                    patient=s.p3, vital=vital, value=value, device_time_ns=LATEST_T, receive_time_ns=LATEST_T,
                    device_id="w1", gateway="gw-3", stream_id="w1/vitals", sequence=9))
            full = features_pb2.FeatureWindow(
                schema_version=1, patient=s.p3, width_s=300, start_device_time_ns=T0 + 600 * S,
                end_device_time_ns=T0 + 900 * S, computed_time_ns=T0 + 901 * S, hr_mean=77.5, spo2_mean=97.25,
                respiratory_rate_mean=16.0, systolic_mean=121.0, diastolic_mean=79.0, record_count=30)
            history.save(conn, [full], [])
        yield s


@pytest.fixture
def client(seeded: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(seeded.engine, api_settings(tmp_path, rate_per_s=0)) as c:
        yield c


def search(client: TestClient, token: str | None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/fhir/Observation", params=params, headers=headers)


def codes(obs: Observation) -> list[tuple[str, str]]:
    return [(str(c.system), str(c.code)) for c in obs.code.coding or []]


def quantity(obs: Observation) -> tuple[Decimal, str, str]:
    q = obs.valueQuantity
    assert q is not None
    return q.value, str(q.system), str(q.code)


def test_the_bundle_is_valid_r4b_with_loinc_codes_ucum_units_and_seeded_values(client: TestClient,
                                                                               seeded: Seeded) -> None:
    response = search(client, login(client, "nurse3"), patient=seeded.p3)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    bundle = Bundle.model_validate_json(response.content)
    assert bundle.type == "searchset"
    entries = bundle.entry or []
    resources = [e.resource for e in entries]
    assert all(isinstance(r, Observation) for r in resources)
    observations: list[Observation] = [r for r in resources if isinstance(r, Observation)]
    by_id = {o.id: o for o in observations}
    for obs in observations:
        assert obs.subject is not None and obs.subject.reference == f"Patient/{seeded.p3}"
        assert obs.status == "final"
        assert [c.code for cat in obs.category or [] for c in cat.coding or []] == ["vital-signs"]
    panels = [e for e in entries if e.search is not None and e.search.mode == "match"]
    assert all(codes(e.resource) == [(LOINC, "85353-1")] for e in panels)  # type: ignore[arg-type]
    # newest first: the latest vitals (device time T0+900 s), then the windows by start
    latest, full_window, *older = [e.resource for e in panels]
    assert isinstance(latest, Observation) and isinstance(full_window, Observation)
    assert latest.effectiveDateTime is not None and latest.effectiveDateTime.isoformat().startswith(
        "2026-01-01T00:15:00")
    members = {codes(by_id[ref.reference.removeprefix("Observation/")])[0][1]: by_id[  # type: ignore[union-attr]
        ref.reference.removeprefix("Observation/")] for ref in latest.hasMember or []}  # type: ignore[union-attr]
    assert set(members) == {"8867-4", "2708-6", "85354-9"}
    assert quantity(members["8867-4"]) == (Decimal("91.0"), UCUM, "/min")
    assert codes(members["2708-6"]) == [(LOINC, "2708-6"), (LOINC, "59408-5")]
    assert quantity(members["2708-6"]) == (Decimal("96.0"), UCUM, "%")
    bp = {str(c.code.coding[0].code): (c.valueQuantity.value, str(c.valueQuantity.code))  # type: ignore[index,union-attr]
          for c in members["85354-9"].component or []}
    assert bp == {"8480-6": (Decimal("128.0"), "mm[Hg]"), "8462-4": (Decimal("82.0"), "mm[Hg]")}
    # the full window: means over a period, respiratory rate included
    assert full_window.effectivePeriod is not None
    assert full_window.effectivePeriod.start.isoformat().startswith("2026-01-01T00:10:00")  # type: ignore[union-attr]
    window = {codes(by_id[r.reference.removeprefix("Observation/")])[0][1]:  # type: ignore[union-attr]
              by_id[r.reference.removeprefix("Observation/")] for r in full_window.hasMember or []}  # type: ignore[union-attr]
    assert quantity(window["8867-4"])[0] == Decimal("77.5")
    assert quantity(window["9279-1"]) == (Decimal("16.0"), UCUM, "/min")
    assert quantity(window["2708-6"])[0] == Decimal("97.25")
    assert len(older) == 2  # the testkit's two windows (heart rate only: no SpO2 mean)
    assert [quantity(by_id[r.reference.removeprefix("Observation/")])[0]  # type: ignore[union-attr]
            for o in older for r in o.hasMember or []] == [Decimal("90.0"), Decimal("80.0")]  # type: ignore[union-attr]
    assert all(e.fullUrl is not None and str(e.fullUrl).endswith(f"/fhir/Observation/{e.resource.id}")  # type: ignore[union-attr]
               for e in entries)


def test_count_and_date_narrow_the_search(client: TestClient, seeded: Seeded) -> None:
    token = login(client, "clin3")
    page = Bundle.model_validate_json(search(client, token, patient=f"Patient/{seeded.p3}", _count=1).content)
    assert [e.search.mode for e in page.entry or []] == ["match", "include", "include", "include"]  # type: ignore[union-attr]
    only_first = search(client, token, patient=seeded.p3, date=["ge2026-01-01T00:00:00Z", "lt2026-01-01T00:05:00Z"])
    panels = [e for e in Bundle.model_validate_json(only_first.content).entry or []
              if e.search.mode == "match"]  # type: ignore[union-attr]
    assert len(panels) == 1 and panels[0].resource.effectivePeriod.start.isoformat().startswith(  # type: ignore[union-attr]
        "2026-01-01T00:00:00")
    bad = search(client, token, patient=seeded.p3, date="2026-01-01")
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    assert search(client, token, patient=seeded.p3, _count=0).status_code == 422


def test_authorization_and_audit_match_the_patient_reads(client: TestClient, seeded: Seeded) -> None:
    assert search(client, None, patient=seeded.p3).status_code == 401
    refused = {u: search(client, login(client, u), patient=seeded.p3) for u in ("oper", "nurse4")}
    assert {u: r.status_code for u, r in refused.items()} == {"oper": 403, "nurse4": 403}
    assert all(r.json()["resourceType"] == "OperationOutcome" for r in refused.values())
    nurse3 = login(client, "nurse3")
    unknown, other = search(client, nurse3, patient="nobody"), search(client, nurse3, patient=seeded.p4)
    assert unknown.status_code == other.status_code == 403
    assert unknown.json()["issue"][0]["diagnostics"].replace("nobody", "X") == \
        other.json()["issue"][0]["diagnostics"].replace(seeded.p4, "X")
    assert search(client, nurse3, patient=seeded.p3).status_code == 200
    assert search(client, login(client, "admin"), patient=seeded.p4).status_code == 200
    with seeded.engine.connect() as conn:
        rows = conn.execute(select(api_audit.c.username, api_audit.c.patient)
                            .where(api_audit.c.action == "fhir.Observation")).all()
    assert sorted(tuple(r) for r in rows) == sorted([("nurse3", seeded.p3), ("admin", seeded.p4)])


def block(raw: list[int], encoding: pb.SampleEncoding.ValueType = pb.SAMPLE_ENCODING_INT16_LE) -> pb.SampleBlock:
    dtype = "<i2" if encoding == pb.SAMPLE_ENCODING_INT16_LE else "<i4"
    return pb.SampleBlock(first_sample_device_time_ns=T0, sample_rate_hz=130.0, scale=1.0, unit="uV",
                          encoding=encoding, samples=np.array(raw, dtype=dtype).tobytes(), sample_count=len(raw))


def test_ecg_blocks_become_sampled_data_per_lead() -> None:
    lead_one = block([0, -12, 350, 1200, -400])
    lead_two = block([5, 70000, -70000], pb.SAMPLE_ENCODING_INT32_LE)
    obs = Observation.model_validate(ecg_observation("pt-0001", {"I": lead_one, "II": lead_two}))
    assert codes(obs) == [("urn:oid:2.16.840.1.113883.6.24", "131328")]
    assert obs.effectiveDateTime is not None and obs.effectiveDateTime.isoformat().startswith("2026-01-01T00:00:00")
    got = {str(c.code.coding[0].code): c.valueSampledData for c in obs.component or []}  # type: ignore[index]
    assert set(got) == {"131329", "131330"}
    one, two = got["131329"], got["131330"]
    assert one is not None and two is not None
    assert one.data == "0 -12 350 1200 -400" and two.data == "5 70000 -70000"
    assert one.period == Decimal(str(1000.0 / 130.0)) and one.factor == Decimal("1.0") and one.dimensions == 1
    assert one.origin.value == 0 and one.origin.code == "uV" and str(one.origin.system) == UCUM
    with pytest.raises(ValueError, match="leads"):
        ecg_observation("pt-0001", {"V5": lead_one})
    with pytest.raises(ValueError, match="encoding"):
        sampled_data(pb.SampleBlock(sample_rate_hz=130.0, samples=b"\x00\x00", sample_count=1))


def test_date_bounds() -> None:
    assert date_bounds([]) == (None, None)
    assert date_bounds(["gt2026-01-01T00:00:00Z", "le2026-01-01T00:00:01Z"]) == (T0 + 1, T0 + S + 1)
    for bad in (["2026-01-01"], ["ge"], ["gex"], ["ge2026-01-01"] * 3):
        with pytest.raises(ValueError):
            date_bounds(bad)


def test_stored_ecg_blocks_are_searchable_by_code_within_five_minutes(client: TestClient, seeded: Seeded) -> None:
    raw = [0, -12, 350, 1200, -400]
    records = [pb.Record(stream_id="h10/ecg", sequence=i, device_id="h10", patient=seeded.p3, kind=pb.STREAM_KIND_ECG,
                         samples=block(raw)) for i in range(2)]
    records[1].samples.first_sample_device_time_ns = T0 + 10 * S
    with seeded.engine.begin() as conn:
        history.save_ecg(conn, [row for r in records if (row := history.ecg_row(r, "gw-3")) is not None])
    token = login(client, "nurse3")
    ecg = "urn:oid:2.16.840.1.113883.6.24|131328"
    response = search(client, token, patient=seeded.p3, code=ecg,
                      date=["ge2026-01-01T00:00:00Z", "lt2026-01-01T00:05:00Z"])
    assert response.status_code == 200, response.text
    found = [e.resource for e in Bundle.model_validate_json(response.content).entry or []]
    assert [o.effectiveDateTime.isoformat()[:19] for o in found] == [  # type: ignore[union-attr]
        "2026-01-01T00:00:10", "2026-01-01T00:00:00"]
    sampled = found[0].component[0].valueSampledData  # type: ignore[union-attr,index]
    assert sampled.data == "0 -12 350 1200 -400" and sampled.origin.code == "uV"
    assert codes(found[0]) == [("urn:oid:2.16.840.1.113883.6.24", "131328")]  # type: ignore[arg-type]
    for params in ({"code": ecg}, {"code": ecg, "date": ["ge2026-01-01T00:00:00Z", "lt2026-01-01T00:10:00Z"]},
                   {"code": "http://loinc.org|8867-4"}):
        assert search(client, token, patient=seeded.p3, **params).status_code == 400
