"""Model rollout end to end: registry -> signed artifact -> staged rollout -> shadow -> switch or roll back.

Ten gateway updaters (in-process ``Updater`` objects, each in its own thread with its own
gRPC channel) talk to a real Rollout gRPC server backed by the registries on SQLite.
Full BLE gateways are NOT needed for this test and are not started: the updaters are fed
4-second windows of ECG from firmware_sim's PatientSimulator (three patients per gateway,
one of them tachycardic), which is what a gateway's ECG pipeline would hand them
(tests/harness/rollout_fleet.py runs both sides).

The models are the tiny deterministic rule runner (a heart-rate threshold in a JSON
artifact): v1 and v2 agree on these patients; v3 calls every window tachycardia, so it
disagrees with the champion on two windows in three and would flood the ward with alarms.

    publish v1, promote -> all ten install it
    publish v2 -> 2-gateway canary -> stages 4, 8, 10 -> all ten on v2 (one waits for an alarm)
    publish v3 -> canary shadows it -> agreement gate breached -> aborted, discarded, no gateway on v3
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from cardiogate.cloud.registry.models import CHAMPION
from cardiogate.cloud.rollout.plan import Gates, RolloutPlan
from tests.harness.rollout_fleet import eventually, patient_windows, rollout_backend, running_fleet

pytestmark = [pytest.mark.rollout, pytest.mark.timeout(180)]

GATEWAYS = [f"gw-{i:02d}" for i in range(10)]


async def test_canary_stages_all_then_bad_model_aborted_and_rolled_back(tmp_path: Path) -> None:
    async with rollout_backend(tmp_path) as backend:
        fleet_registry, models, controller = (backend.registries.fleet, backend.registries.models,
                                              backend.registries.rollouts)
        assert controller.signer is not None and controller.signer.key_id == backend.signer.key_id
        backend.register_gateways("ward-a", GATEWAYS, "Cardiology ward A")
        assert fleet_registry.cohort(("ward-a",)) == GATEWAYS
        backend.publish_rule("1.0.0", 100)
        models.set_alias("rhythm", CHAMPION, "1.0.0", actor="test")
        began = time.monotonic()
        async with running_fleet(backend.target, backend.trusted_keys(), tmp_path / "gateways", GATEWAYS) as fleet:
            install_s = await eventually(lambda: set(fleet.active().values()) == {"1.0.0"}, "v1 everywhere")

            # -- v2: canary, stages, all ---------------------------------------------------------
            backend.publish_rule("2.0.0", 98, metrics={"f1": 0.84})
            plan = RolloutPlan(sites=("ward-a",), canary_share=0.2, growth=2.0, min_devices_per_stage=2, bake_s=1.0,
                               stale_after_s=30.0,
                               # latency is judged loosely here: ten updaters share a couple of busy cores
                               gates=Gates(min_windows=8, min_agreement=0.9, max_latency_p99_ms=1000.0,
                                           latency_slack_ms=500.0))
            t0 = time.monotonic()
            rid = controller.start("rhythm", "2.0.0", plan, actor="test")

            def why() -> str:
                st = controller.status(rid)
                members = [(m.gateway_id, m.status) for m, _ in st.members]
                return f"{st.state}, stage {st.stage}: {st.decision}; members {members}"
            status = controller.status(rid)
            assert status.sizes == (2, 4, 8, 10)
            canary = [m.gateway_id for m, _ in status.members if m.stage == 0]
            late = next(m.gateway_id for m, _ in status.members if m.stage == 1)
            fleet.alarms[late] = True  # a patient on this stage-2 gateway has a high-priority alarm
            await eventually(lambda: all(fleet.updaters[g].phase == "shadow" for g in canary), "canary shadowing")
            assert all(fleet.updaters[g].target is None for g in GATEWAYS if g not in canary)  # only the canary
            # stage 2 passes; its other gateway switches but the alarmed one waits
            await eventually(lambda: controller.status(rid).stage >= 2, "stage 2 passed", why)
            mate = next(m.gateway_id for m, _ in status.members if m.stage == 1 and m.gateway_id != late)
            await eventually(lambda: fleet.updaters[mate].active == "2.0.0", "stage-2 mate switched")
            assert fleet.updaters[late].active == "1.0.0"
            await eventually(lambda: controller.status(rid).stage >= 4, "every stage passed", why)
            await asyncio.sleep(0.5)
            assert controller.status(rid).state == "running" and fleet.updaters[late].active == "1.0.0"
            assert "waiting for a high-priority alarm" in controller.status(rid).decision
            fleet.alarms[late] = False
            await eventually(lambda: controller.status(rid).state == "completed", "v2 rollout complete", why)
            v2_s = time.monotonic() - t0
            assert set(fleet.active().values()) == {"2.0.0"}
            assert models.alias("rhythm", CHAMPION) == "2.0.0"
            passed = [e for e in controller.history(rid) if e.kind == "stage_passed"]
            assert [len(e.detail["switching"]) for e in passed] == [2, 2, 4, 2]
            assert passed[0].detail["switching"] == canary

            # -- v3: bad model, aborted at the canary --------------------------------------------
            backend.publish_rule("3.0.0", 40, metrics={"f1": 0.9})
            t1 = time.monotonic()
            rid3 = controller.start("rhythm", "3.0.0", plan, actor="test")
            canary3 = [m.gateway_id for m, _ in controller.status(rid3).members if m.stage == 0]
            await eventually(lambda: controller.status(rid3).state == "aborted", "v3 aborted")
            abort_s = time.monotonic() - t1
            final = controller.status(rid3)
            assert final.stage == 0 and "agreement with the champion" in final.decision
            await eventually(lambda: all(u.target is None for u in fleet.updaters.values()), "candidates dropped")
            assert set(fleet.active().values()) == {"2.0.0"}
            assert models.alias("rhythm", CHAMPION) == "2.0.0" and models.alias("rhythm", "challenger") is None
            assert all("3.0.0" not in s for s in fleet.switches.values())  # nobody ever ran v3 live
            touched = {e.gateway_id for e in controller.history(rid3)
                       if e.kind == "gateway" and e.detail["to"] in ("downloading", "verifying", "staged", "shadow")}
            assert touched and touched <= set(canary3)  # only the canary ever fetched or shadowed v3
            for gw in GATEWAYS:
                assert not (tmp_path / "gateways" / gw / "rhythm" / "versions" / "3.0.0").exists()
            print(f"\nrollout e2e: install v1 {install_s:.1f} s, v2 to all 10 {v2_s:.1f} s (4 stages, 1 s bake, "
                  f"one alarm wait), v3 aborted after {abort_s:.1f} s: {final.decision}; "
                  f"total {time.monotonic() - began:.1f} s")


def test_patient_windows_label_as_expected() -> None:
    """The fixture the e2e relies on: v1/v2 agree, v3 disagrees on the normal patients."""
    from cardiogate.edge.updater import RuleRunner

    windows = patient_windows(3)
    v1, v2, v3 = (RuleRunner(t) for t in (100, 98, 40))
    a12 = np.mean([v1.predict(w) == v2.predict(w) for w in windows])
    a13 = np.mean([v1.predict(w) == v3.predict(w) for w in windows])
    assert a12 >= 0.95 and a13 <= 0.5
