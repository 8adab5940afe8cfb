"""Model rollouts run from the web dashboard, in Debian's Chromium under Playwright.

The cloud side is real: the API (uvicorn, in a thread) serves the built dashboard and drives the same
RolloutController as the Rollout gRPC server, both on the registries in SQLite, with the controller's
ticker running. The gateways are four in-process updaters fed live ECG windows
(tests/harness/rollout_fleet.py); a fifth gateway is registered at another site and never runs, so a
rollout that ignored the form's site choice would never finish.

- An operator signs in, opens Models, starts a rollout of a good version (2.0.0) from the form; the
  rollout's row reaches ``completed``, every gateway's updater runs 2.0.0 and the detail shows it.
- She starts a rollout of a bad version (3.0.0, which calls every window tachycardia); the agreement
  gate aborts it at the canary, the row shows ``aborted``, and no gateway ever runs it.
- Screenshots of the models page and the rollout details; no serious axe-core violations on the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from cardiogate.app.stack import free_port
from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.live import LocalHub
from cardiogate.cloud.api.settings import ApiAuthSettings, ApiSettings
from cardiogate.cloud.api.users import add_user
from cardiogate.cloud.registry.models import CHAMPION
from tests.browser.browser_kit import (
    AXE,
    chromium,
    login,
    screenshot,
    serious_accessibility_violations,
    serving,
)
from tests.harness.rollout_fleet import MODEL, RolloutBackend, eventually, rollout_backend, running_fleet

pytestmark = [pytest.mark.browser, pytest.mark.rollout, pytest.mark.timeout(300)]

SITE, OTHER_SITE = "ward-a", "ward-b"
GATEWAYS = [f"gw-{i:02d}" for i in range(4)]
IDLE_GATEWAY = "gw-b-00"  # registered at the other site; has no updater
OPERATOR, PASSWORD = "oper", "rollout-operator-pass"
GOOD, BAD = "2.0.0", "3.0.0"
# what the operator types: canary of 2 of the 4 gateways, then all 4; each stage bakes 1 s
FORM = {"#rollout-canary-share": "0.5", "#rollout-growth": "2", "#rollout-bake-s": "1", "#rollout-min-devices": "2",
        "#rollout-min-agreement": "0.9", "#rollout-max-p99": "1000",
        "#rollout-latency-slack": "500"}  # a busy test machine's jitter must not abort the good version

DETAIL_FINISHED = """(state) => {
  const detail = document.querySelector('[data-testid=rollout-detail]');
  if (detail?.querySelector('[data-testid=rollout-detail-state]')?.textContent?.trim() !== state) return false;
  const history = [...detail.querySelectorAll('table')].find(t => t.caption?.textContent?.startsWith('History'));
  return [...(history?.tBodies[0]?.rows ?? [])].some(row => row.cells[1]?.textContent?.trim() === state);
}"""
ACTIONS = ("pause", "resume", "promote", "abort")
MEMBER_VERSIONS = """() => [...document.querySelectorAll('[data-testid^="member-"]')]
  .map(row => [row.dataset.testid.slice('member-'.length), row.querySelectorAll('td')[2]?.textContent?.trim()])"""


async def _accessibility(page: Page) -> list[dict[str, object]]:
    """Serious axe-core violations; axe-core missing or refused by the page fails only the accessibility test,
    not the rollouts."""
    if not AXE.is_file():
        return [{"id": "axe-core-missing", "help": f"{AXE} is absent (a dev package of the dashboard)"}]
    try:
        return await serious_accessibility_violations(page)
    except PlaywrightError as exc:  # e.g. the dashboard's Content Security Policy blocks the injected script
        return [{"id": "axe-core-not-run", "help": str(exc).splitlines()[0]}]


def _rollout_in_url(page: Page) -> str | None:
    return parse_qs(urlsplit(page.url).query).get("rollout", [None])[0]


async def _start_from_form(page: Page, version: str, previous: str | None) -> str:
    """Fill the Start rollout form for ``version`` at the ward's site and submit; the new rollout's id."""
    await page.select_option("#rollout-model", MODEL)
    await page.select_option("#rollout-version", version)
    for selector, value in FORM.items():
        await page.fill(selector, value)
    await page.check(f"#rollout-site-{SITE}")
    await page.click("[data-testid=rollout-start]")
    # the page opens the started rollout's details (?rollout=<id>)
    await page.wait_for_url(lambda url: "rollout=ro-" in url and (previous is None or previous not in url),
                            timeout=15_000)
    rollout_id = _rollout_in_url(page)
    assert rollout_id is not None
    return rollout_id


async def _final_state(page: Page, rollout_id: str, timeout_s: float) -> str:
    """The state the rollout's row shows once it has finished, either way."""
    row = f'[data-testid="rollout-{rollout_id}"]'
    await page.wait_for_selector(f'{row}:is([data-state="completed"], [data-state="aborted"])',
                                 timeout=timeout_s * 1000)
    state = await page.get_attribute(row, "data-state")
    assert state is not None
    return state


async def _detail_shows(page: Page, state: str) -> None:
    """Wait until the opened rollout's details show ``state`` and its history holds the event that ended it
    (the rollouts list may update the state a poll before the details catch up)."""
    await page.wait_for_function(DETAIL_FINISHED, arg=state, timeout=10_000)


def _why(backend: RolloutBackend, rollout_id: str) -> str:
    status = backend.registries.rollouts.status(rollout_id)
    return f"{status.state}, stage {status.stage}: {status.decision}; " + ", ".join(
        f"{m.gateway_id} {m.status} on {m.active_version or '-'} ({m.windows} windows)" for m, _ in status.members)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, dashboard_dist: Path) -> dict[str, Any]:
    return asyncio.run(_drive(tmp_path_factory.mktemp("rollouts"), dashboard_dist))


async def _drive(tmp: Path, dist: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"shots": []}
    began = time.monotonic()
    async with rollout_backend(tmp / "cloud") as backend:
        controller, models = backend.registries.rollouts, backend.registries.models
        backend.register_gateways(SITE, GATEWAYS, "Cardiology ward A")
        backend.register_gateways(OTHER_SITE, [IDLE_GATEWAY], "Cardiology ward B")
        backend.publish_rule("1.0.0", 100)
        models.set_alias(MODEL, CHAMPION, "1.0.0", actor="setup")
        backend.publish_rule(GOOD, 98, metrics={"f1": 0.84})  # agrees with 1.0.0 on these patients
        backend.publish_rule(BAD, 40, metrics={"f1": 0.9})  # calls every window tachycardia
        add_user(backend.engine, OPERATOR, PASSWORD, "operator", [])
        port = free_port()
        settings = ApiSettings(listen=f"127.0.0.1:{port}", dashboard_dir=dist, rate_per_s=0,
                               auth=ApiAuthSettings(issuer_key=tmp / "issuer.key"))
        app = create_app(settings, backend.engine, hub=LocalHub(), rollouts=controller)
        async with (serving(app, port) as base_url,
                    running_fleet(backend.target, backend.trusted_keys(), tmp / "gateways", GATEWAYS) as fleet,
                    chromium() as browser):
            page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
            try:
                await login(page, base_url, OPERATOR, PASSWORD)
                await page.click("[data-testid=nav-models]")
                await page.wait_for_url("**/models")
                await page.wait_for_selector(f'[data-testid="model-{MODEL}-{BAD}"]')
                await page.wait_for_selector("[data-testid=rollout-start]")
                out["shots"].append(await screenshot(page, "models-page"))
                out["axe"] = await _accessibility(page)
                await eventually(lambda: set(fleet.active().values()) == {"1.0.0"}, "1.0.0 on every gateway",
                                 timeout_s=30)
                ready_s = time.monotonic() - began

                # -- a good version, to every gateway ----------------------------------------------
                t0 = time.monotonic()
                good = await _start_from_form(page, GOOD, None)
                out["good_id"], out["good_plan"] = good, controller.status(good).plan
                out["good_started_by"] = controller.history(good)[0].actor
                try:
                    out["good_state"] = await _final_state(page, good, 60)
                except Exception as exc:
                    raise AssertionError(f"rollout of {GOOD}: {_why(backend, good)}") from exc
                out["good_s"] = time.monotonic() - t0
                out["good_decision"] = controller.status(good).decision
                await eventually(lambda: set(fleet.active().values()) == {GOOD}, f"{GOOD} on every gateway",
                                 lambda: str(fleet.active()), timeout_s=10)
                out["after_good"] = fleet.active()
                out["champion_after_good"] = models.alias(MODEL, CHAMPION)
                await _detail_shows(page, "completed")
                await page.wait_for_function(
                    f"() => ({MEMBER_VERSIONS})().length === {len(GATEWAYS)} && "
                    f"({MEMBER_VERSIONS})().every(([, v]) => v === '{GOOD}')", timeout=10_000)
                out["ui_members_good"] = dict(await page.evaluate(MEMBER_VERSIONS))
                out["actions_after_good"] = {a: await page.is_enabled(f"[data-testid=rollout-{a}]") for a in ACTIONS}
                out["shots"].append(await screenshot(page, "rollout-detail-completed"))
                # the page at its fullest: rollouts listed, one opened, the form and the registry
                out["axe"] += await _accessibility(page)

                # -- a bad version, stopped at the canary ------------------------------------------
                t1 = time.monotonic()
                bad = await _start_from_form(page, BAD, good)
                out["bad_id"] = bad
                out["bad_canary"] = [m.gateway_id for m, _ in controller.status(bad).members if m.stage == 0]
                try:
                    out["bad_state"] = await _final_state(page, bad, 45)
                except Exception as exc:
                    raise AssertionError(f"rollout of {BAD}: {_why(backend, bad)}") from exc
                out["bad_s"] = time.monotonic() - t1
                final = controller.status(bad)
                out["bad_stage"], out["bad_decision"] = final.stage, final.decision
                await _detail_shows(page, "aborted")
                out["ui_bad_row"] = await page.text_content(f'[data-testid="rollout-{bad}"]')
                out["actions_after_bad"] = {a: await page.is_enabled(f"[data-testid=rollout-{a}]") for a in ACTIONS}
                out["shots"].append(await screenshot(page, "rollout-detail-aborted"))
                await eventually(lambda: all(u.target is None for u in fleet.updaters.values()),
                                 f"{BAD} dropped by every gateway", lambda: str(fleet.active()), timeout_s=15)
                out["after_bad"] = fleet.active()
                out["switches"] = {gw: list(s) for gw, s in fleet.switches.items()}
                out["champion_after_bad"] = models.alias(MODEL, CHAMPION)
                out["challenger_after_bad"] = models.alias(MODEL, "challenger")
                out["touched_bad"] = sorted({
                    e.gateway_id for e in controller.history(bad) if e.kind == "gateway"
                    and e.detail["to"] in ("downloading", "verifying", "staged", "shadow")})
            except Exception:
                with contextlib.suppress(Exception):
                    await screenshot(page, "rollouts-failure")
                raise
    out["stored_bad"] = [gw for gw in GATEWAYS if (tmp / "gateways" / gw / MODEL / "versions" / BAD).exists()]
    print(f"\nrollouts in the browser: ready {ready_s:.1f} s, {GOOD} to all {len(GATEWAYS)} in {out['good_s']:.1f} s, "
          f"{BAD} aborted in {out['bad_s']:.1f} s ({out['bad_decision']}); total {time.monotonic() - began:.1f} s")
    return out


def test_a_good_version_started_from_the_form_reaches_every_gateway(run: dict[str, Any]) -> None:
    assert run["good_state"] == "completed", run["good_decision"]
    assert run["good_started_by"] == OPERATOR
    plan = run["good_plan"]  # as the operator filled the form
    assert plan.sites == (SITE,) and plan.canary_share == 0.5 and plan.bake_s == 1.0
    assert plan.min_devices_per_stage == 2 and plan.gates.max_latency_p99_ms == 1000.0
    assert plan.gates.latency_slack_ms == 500.0
    assert run["after_good"] == dict.fromkeys(GATEWAYS, GOOD)
    assert run["ui_members_good"] == dict.fromkeys(GATEWAYS, GOOD)  # the idle gateway elsewhere is no member
    assert run["champion_after_good"] == GOOD
    assert not any(run["actions_after_good"].values()), run["actions_after_good"]  # a finished rollout is final


def test_a_bad_version_is_aborted_at_the_canary_and_no_gateway_runs_it(run: dict[str, Any]) -> None:
    assert run["bad_state"] == "aborted"
    assert run["bad_stage"] == 0 and "agreement with the champion" in run["bad_decision"]
    assert "agreement with the champion" in (run["ui_bad_row"] or "")
    assert run["after_bad"] == dict.fromkeys(GATEWAYS, GOOD)
    assert all(BAD not in versions for versions in run["switches"].values())  # none ever ran it live
    assert run["touched_bad"] and set(run["touched_bad"]) <= set(run["bad_canary"])
    assert run["stored_bad"] == []
    assert not any(run["actions_after_bad"].values()), run["actions_after_bad"]
    assert run["champion_after_bad"] == GOOD and run["challenger_after_bad"] is None


def test_screenshots_of_the_models_page_and_rollout_details(run: dict[str, Any]) -> None:
    names = [Path(p).name for p in run["shots"]]
    assert names == ["models-page.png", "rollout-detail-completed.png", "rollout-detail-aborted.png"]
    assert all(Path(p).stat().st_size > 0 for p in run["shots"])


def test_the_models_page_has_no_serious_accessibility_violations(run: dict[str, Any]) -> None:
    assert run["axe"] == [], json.dumps(run["axe"], indent=1)
