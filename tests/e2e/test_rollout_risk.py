"""The risk student through the signed staged rollout, to ten gateway updaters.

The same backend as tests/e2e/test_rollout.py (registries on SQLite behind a real Rollout gRPC
server) and ten in-process updaters on the ``risk`` model line, each in its own thread. What
the gateway hands a risk candidate in shadow is a feature window: the inputs the live risk
model just scored (edge/gateway.py ``_score_risk``); here they come from 24-h vitals
summaries of three simulated patients per gateway (well, borderline, sick), built with the
gateway's own code (cardiogate.core.risk_window).

    publish v1 = the shipped int8 student; promote -> all ten install and run it
    publish v2 = a retrained student (the same model refitted: scores move by a few thousandths)
      -> canary, stages 2/4/8/10 -> all ten on v2
    publish v3 = a student whose intercept flags every patient -> canary shadow: agreement and
      advisory-rate gates breached -> aborted, discarded, no gateway ever ran v3
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardiogate.cloud.registry.models import CHAMPION
from cardiogate.cloud.rollout.plan import Gates, RolloutPlan
from cardiogate.core.risk_window import NS_PER_MIN, VitalsHistory, risk_features
from cardiogate.edge.updater import FeatureWindow, RiskRunner
from tests.conftest import REPO
from tests.harness.rollout_fleet import eventually, rollout_backend, running_fleet

pytest.importorskip("onnx", reason="exporting students needs the [learn] extra")

from cardiogate.models.haim.export import write_gateway_risk_artifact

pytestmark = [pytest.mark.rollout, pytest.mark.e2e, pytest.mark.training, pytest.mark.timeout(240)]

RISK = REPO / "models" / "artifacts" / "risk"
SHIPPED = RISK / "risk-student-1.0.0.int8.onnx"
GATEWAYS = [f"gw-{i:02d}" for i in range(10)]
LINE = "risk"
PATTERNS = ({"hr": 72.0, "spo2": 98.0, "sys": 124.0, "dia": 78.0, "map": 93.0},
            {"hr": 108.0, "spo2": 93.0, "sys": 100.0, "dia": 60.0, "map": 73.0},
            {"hr": 140.0, "spo2": 86.0, "sys": 82.0, "dia": 45.0, "map": 57.0})


def feature_windows(seed: int) -> list[FeatureWindow]:
    """Per gateway: three patients' risk inputs after 1 to 4 h of minute-by-minute vitals."""
    names = json.loads(SHIPPED.with_name(SHIPPED.name + ".json").read_text())["input"]["features"]
    out = []
    for hours in (1, 2, 3, 4):
        for k, pattern in enumerate(PATTERNS):
            h = VitalsHistory()
            for minute in range(60 * hours):
                wobble = ((minute * 7 + seed + k) % 5) - 2
                for signal, value in pattern.items():
                    h.add(signal, value + wobble, minute * NS_PER_MIN)
            out.append(FeatureWindow(tuple(risk_features(h, names)), patient=f"p-{seed}-{k}"))
    return out


def student_variant(tmp: Path, version: str, intercept_shift: float) -> Path:
    spec = json.loads((RISK / "student.json").read_text())
    spec["intercept"] = float(spec["intercept"]) + intercept_shift
    return write_gateway_risk_artifact(spec, tmp / version, version=version)


def test_the_labels_these_windows_get() -> None:
    live = RiskRunner(SHIPPED)
    labels = [live.predict(w) for w in feature_windows(0)]
    assert labels.count("advisory") == 4 and labels[2::3] == ["advisory"] * 4  # the sick patient only


async def test_a_retrained_student_reaches_all_ten_and_a_flagging_one_is_aborted(tmp_path: Path) -> None:
    async with rollout_backend(tmp_path) as backend:
        controller, models = backend.registries.rollouts, backend.registries.models
        backend.register_gateways("ward-a", GATEWAYS, "Cardiology ward A")
        backend.publish_artifact(SHIPPED, name=LINE, version="1.0.0")
        models.set_alias(LINE, CHAMPION, "1.0.0", actor="test")
        async with running_fleet(backend.target, backend.trusted_keys(), tmp_path / "gateways", GATEWAYS,
                                 model=LINE, windows_for=feature_windows) as fleet:
            await eventually(lambda: set(fleet.active().values()) == {"1.0.0"}, "v1 everywhere")
            assert all(isinstance(u.live_runner, RiskRunner) for u in fleet.updaters.values())

            plan = RolloutPlan(sites=("ward-a",), canary_share=0.2, growth=2.0, min_devices_per_stage=2, bake_s=1.0,
                               stale_after_s=30.0,
                               gates=Gates(min_windows=8, min_agreement=0.9, max_latency_p99_ms=1000.0,
                                           latency_slack_ms=500.0, max_alarm_rate_increase=0.1))
            backend.publish_artifact(student_variant(tmp_path, "1.1.0", -0.01), name=LINE, version="1.1.0",
                                     metrics={"held_out_auroc": 0.65})
            rid = controller.start(LINE, "1.1.0", plan, actor="test")

            def why() -> str:
                st = controller.status(rid)
                return f"{st.state}, stage {st.stage}: {st.decision}"
            await eventually(lambda: controller.status(rid).state == "completed", "v1.1 rollout complete", why)
            assert set(fleet.active().values()) == {"1.1.0"} and models.alias(LINE, CHAMPION) == "1.1.0"

            backend.publish_artifact(student_variant(tmp_path, "1.2.0", +4.0), name=LINE, version="1.2.0",
                                     metrics={"held_out_auroc": 0.99})  # a claim the gates do not take on trust
            rid3 = controller.start(LINE, "1.2.0", plan, actor="test")
            await eventually(lambda: controller.status(rid3).state == "aborted", "v1.2 aborted")
            final = controller.status(rid3)
            assert final.stage == 0 and ("agreement" in final.decision or "alarm" in final.decision), final.decision
            await eventually(lambda: all(u.target is None for u in fleet.updaters.values()), "candidates dropped")
            assert set(fleet.active().values()) == {"1.1.0"} and models.alias(LINE, CHAMPION) == "1.1.0"
            assert all("1.2.0" not in s for s in fleet.switches.values())
