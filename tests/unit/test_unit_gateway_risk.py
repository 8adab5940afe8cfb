"""The gateway risk model: 24-h vitals summaries, the verified int8 artifact, the advisory beside NEWS2."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from cardiogate.core.risk_window import NS_PER_MIN, VitalsHistory, known_feature, risk_features
from cardiogate.edge.alarm_bridge import engine_config
from cardiogate.edge.alarm_engine import AlarmEngine
from cardiogate.edge.gateway import Gateway
from cardiogate.edge.inference.errors import ModelLoadError
from cardiogate.edge.inference.risk import RiskModel, RiskMonitor
from cardiogate.edge.mqtt import Outgoing
from cardiogate.edge.settings import SHIPPED_RISK_MODEL, AlarmSettings, GatewaySettings, PairedDevice
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.conftest import REPO

NS = 1_000_000_000
STUDENT = REPO / "models" / "artifacts" / "risk" / "student.json"
WELL = {"hr": 75.0, "spo2": 98.0, "sys": 122.0, "dia": 78.0, "map": 93.0}
SICK = {"hr": 140.0, "spo2": 86.0, "sys": 82.0, "dia": 45.0, "map": 57.0}


def test_history_keeps_24_hours_of_minutes_and_the_value_farthest_from_normal() -> None:
    h = VitalsHistory()
    for second in range(0, 25 * 3600, 30):  # 25 h of a reading every 30 s
        h.add("hr", 80.0 + (20.0 if second == 24 * 3600 else 0.0), second * NS)
    assert h.minutes("hr") == 24 * 60  # the oldest hour fell out of the horizon
    stats = h.stats("hr")
    assert stats["worst"] == 100.0 and stats["max"] == 100.0 and stats["min"] == 80.0
    h.add("hr", 40.0, 25 * 3600 * NS)  # 40 from 80 beats 100 from 80
    assert h.stats("hr")["worst"] == 40.0


def test_a_patient_day_of_five_vitals_costs_well_under_a_megabyte() -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        h = VitalsHistory()
        for minute in range(24 * 60):
            for signal, value in WELL.items():
                h.add(signal, value + minute % 7 * 0.1, minute * NS_PER_MIN + 1)
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert all(h.minutes(s) == 24 * 60 for s in WELL)
    assert used < 600_000  # a ring of raw numbers; per-minute Python objects took 1.6 MB (80 MB for 50 patients)
    assert h.add("hr", 75.0, 24 * 60 * NS_PER_MIN + 1)  # minute 1440 takes minute 0's slot
    assert h.minutes("hr") == 24 * 60
    assert not h.add("hr", 70.0, 1)  # minute 0 is now older than the 24-h horizon: refused, not folded in
    assert h.stats("hr")["min"] == 75.0


def test_history_refuses_implausible_and_non_finite_readings_and_folds_late_ones_in() -> None:
    h = VitalsHistory()
    assert not h.add("hr", 900.0, 0) and not h.add("hr", math.nan, 0) and not h.add("lactate", 2.0, 0)
    assert h.add("spo2", 97.0, 5 * NS_PER_MIN) and h.add("spo2", 95.0, 6 * NS_PER_MIN)
    assert h.add("spo2", 91.0, 5 * NS_PER_MIN + NS)  # late, for minute 5: folded into it
    stats = h.stats("spo2")
    assert h.minutes("spo2") == 2 and stats["min"] == 91.0 and stats["last"] == 95.0
    assert stats["mean"] == pytest.approx((97 + 95 + 91) / 3)


def test_features_follow_the_manifest_order_and_are_nan_for_what_no_wearable_measures() -> None:
    names = json.loads(STUDENT.read_text())["features"]
    h = VitalsHistory()
    for minute in range(30):
        for signal, value in WELL.items():
            h.add(signal, value + (minute % 3), minute * NS_PER_MIN)
    x = dict(zip(names, risk_features(h, names), strict=True))
    assert x["worst_heartrate"] == 75.0 and x["worst_heartrate_dev"] == 5.0  # 75..77: 75 is farthest from 80
    assert x["nibp_sys_min"] == 122.0 and x["nibp_sys_max"] == 124.0 and x["nibp_sys_last"] == 124.0
    assert math.isnan(x["worst_temperature"]) and math.isnan(x["rr_mean"])
    assert all(known_feature(n) for n in names) and not known_feature("lactate_max")
    with pytest.raises(ValueError, match="lactate"):
        risk_features(h, ["lactate_max"])


def test_the_int8_artifact_agrees_with_the_students_own_evaluation() -> None:
    student_mod = pytest.importorskip("cardiogate.models.haim.student")
    spec = json.loads(STUDENT.read_text())
    model = RiskModel.load(SHIPPED_RISK_MODEL)
    assert model.features == tuple(spec["features"])
    rng = np.random.default_rng(5)
    x = np.asarray(spec["mean"]) + rng.normal(size=(300, len(spec["mean"]))) * np.asarray(spec["scale"])
    x[rng.random(x.shape) < 0.3] = np.nan  # missing inputs are imputed inside the graph
    want = student_mod.predict(spec, x)
    got = np.array([model.predict(list(row)) for row in x])
    assert np.max(np.abs(got - want)) < 0.01


def test_a_tampered_or_foreign_artifact_is_refused(tmp_path: Path) -> None:
    art = tmp_path / SHIPPED_RISK_MODEL.name
    manifest = tmp_path / (art.name + ".json")
    shutil.copy(SHIPPED_RISK_MODEL, art)
    shutil.copy(SHIPPED_RISK_MODEL.with_name(art.name + ".json"), manifest)
    RiskModel.load(art)
    blob = bytearray(art.read_bytes())
    blob[-5] ^= 0xFF
    art.write_bytes(bytes(blob))
    with pytest.raises(ModelLoadError) as bad:
        RiskModel.load(art)
    assert bad.value.reason == "checksum_mismatch"
    shutil.copy(SHIPPED_RISK_MODEL, art)
    raw = json.loads(manifest.read_text())
    for change, reason in (({"task": "rhythm"}, "manifest_invalid"),
                           ({"input": {**raw["input"], "features": ["lactate_max"] * len(raw["input"]["features"])}},
                            "input_mismatch")):
        manifest.write_text(json.dumps({**raw, **change}))
        with pytest.raises(ModelLoadError) as refused:
            RiskModel.load(art)
        assert refused.value.reason == reason


def test_the_monitor_scores_once_per_window_and_not_before_five_minutes_of_data() -> None:
    monitor = RiskMonitor(RiskModel.load(SHIPPED_RISK_MODEL), every_s=60)
    scores = [(t, s) for t in range(0, 1200, 5) if (s := monitor.observe("pt-1", t * NS, **SICK)) is not None]
    first = scores[0][0]
    assert 240 <= first < 300  # the fifth minute of readings
    assert all(b[0] - a[0] >= 60 for a, b in itertools.pairwise(scores))
    assert len(scores) == (1195 - first) // 60 + 1
    assert scores[-1][1].score > 0.10 and scores[-1][1].model == "risk-student@1.0.0"
    well = [s for t in range(0, 1200, 5) if (s := monitor.observe("pt-2", t * NS, **WELL)) is not None]
    assert well[-1].score < 0.05 and monitor.latest("pt-1") == scores[-1][1]
    day = 24 * 3600
    assert monitor.observe("pt-3", (day + 1000) * NS, **WELL) is None and monitor.patients() == 3  # < a day
    monitor.observe("pt-3", (day + 1000 + 3700) * NS, **WELL)  # an hour on: pt-1 and pt-2 silent for over a day
    assert monitor.patients() == 1 and monitor.latest("pt-1") is None


def test_coverage_counted_once_per_new_minute_gives_the_scores_of_counting_at_every_reading() -> None:
    """Random signals with gaps, silences and late (reordered) readings: counting coverage only when a minute
    entry starts or the horizon moves scores exactly when and what recounting at every reading does."""
    model = RiskModel.load(SHIPPED_RISK_MODEL)
    cached, recount = RiskMonitor(model, every_s=60), RiskMonitor(model, every_s=60)
    rng = np.random.default_rng(7)
    t_s, seen = 0.0, 0
    for _ in range(3000):
        t_s += float(rng.choice([1.0, 7.0, 45.0, 400.0], p=[0.6, 0.3, 0.08, 0.02]))
        at = t_s - float(rng.uniform(0, 90)) if rng.random() < 0.1 else t_s  # some arrive late
        signal = str(rng.choice(["hr", "spo2", "sys", "map"]))
        value = {"hr": 80.0, "spo2": 95.0, "sys": 120.0, "map": 85.0}[signal] + float(rng.normal(0, 5))
        patient = f"pt-{int(rng.integers(3))}"
        recount._covered.clear()
        a = cached.observe(patient, int(at * NS), **{signal: value})
        b = recount.observe(patient, int(at * NS), **{signal: value})
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert (a.score, a.minutes_of_data) == (b.score, b.minutes_of_data)
            np.testing.assert_array_equal(a.features, b.features)  # NaN where a vital is missing, in both
            seen += 1
    assert seen > 20


def test_the_risk_advisory_is_low_priority_by_default_configurable_and_never_touches_the_rules() -> None:
    engine = AlarmEngine(engine_config(AlarmSettings()))
    raised = engine.observe_risk("pt-1", 60 * NS, 0.16, "risk-student@1.0.0", 60 * NS)
    (notice,) = raised.notices
    assert (notice.condition, notice.priority, notice.state) == ("risk", "low", "raised")
    assert not engine.observe_risk("pt-1", 120 * NS, 0.095, "m", 120 * NS).notices  # within the hysteresis
    assert not engine.observe_risk("pt-2", 60 * NS, 0.099, "m", 60 * NS).notices  # below the limit
    rules = [n for t in range(61, 120) for n in engine.observe_vitals("pt-2", t * NS, t * NS, hr=160.0).notices]
    assert {(n.condition, n.state) for n in rules} >= {("hr_high", "raised")}  # the rules run as before
    assert all(n.condition != "risk" for n in rules)
    medium = AlarmEngine(engine_config(AlarmSettings(risk_priority="medium")))
    (notice,) = medium.observe_risk("pt-1", 60 * NS, 0.5, "m", 60 * NS).notices
    assert notice.priority == "medium"
    with pytest.raises(ValueError):
        AlarmSettings(risk_priority="high")  # type: ignore[arg-type]


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    settings = GatewaySettings(
        gateway_id="gw-9", site="ward-9", devices=[PairedDevice(address="C0:00:00:00:00:09", patient="pt-0009")],
        outbox={"path": tmp_path / "outbox.sqlite3"}, state={"pairings_path": tmp_path / "pairings.json"},
        uplink={"tls": False})
    gw = Gateway(settings)
    gw.sent = []  # type: ignore[attr-defined]
    gw.mqtt.publish = gw.sent.append  # type: ignore[method-assign, attr-defined]
    return gw


def vitals_record(t_s: int, v: dict[str, float]) -> pb.Record:
    record = pb.Record(patient="pt-0009", device_id="C0:00:00:00:00:09", kind=pb.STREAM_KIND_VITALS)
    r = record.vitals
    r.device_time_ns, r.receive_time_ns, r.source = t_s * NS, t_s * NS, "bpm"
    r.heart_rate_bpm, r.spo2_percent = v["hr"], v["spo2"]
    r.systolic_mmhg, r.diastolic_mmhg, r.mean_arterial_mmhg = v["sys"], v["dia"], v["map"]
    return record


def test_the_gateway_sends_the_score_with_the_vitals_into_the_outbox_and_on_mqtt(gateway: Gateway) -> None:
    assert gateway.risk is not None and gateway.risk_error is None
    records = [vitals_record(t, SICK) for t in range(0, 600, 10)]
    for record in records:
        gateway.emit_records([record])
    scored = [r for r in records if r.vitals.HasField("risk_score")]
    assert 4 <= len(scored) <= 6 and all(r.vitals.risk_model == "risk-student@1.0.0" for r in scored)
    sent: list[Outgoing] = gateway.sent  # type: ignore[attr-defined]
    vitals = [m.payload for m in sent if m.topic.endswith("/vitals")]
    assert "risk" not in vitals[0] and vitals[-1]["risk"]["score"] == pytest.approx(scored[-1].vitals.risk_score,
                                                                                    abs=1e-4)
    assert vitals[-1]["risk"]["advisory"] is True and "news2" in vitals[-1]
    notices = [m.payload for m in sent if m.payload.get("condition") == "risk"]
    assert notices and notices[0]["priority"] == "low"
    gateway.outbox.close()
