"""Care features of the patient view in Debian's Chromium under Playwright: the care-team chat and the
nutrition analysis, on the API under uvicorn over the seeded SQLite database of the API tests (no Kafka,
no gateway; under a minute).

- nurse3 opens the ward-3 patient, starts a discussion and sends two messages that would run as HTML if
  the page ever parsed message text (`<script>…` and `<img onerror=…>`): both show verbatim as text, no
  script or image element appears in the chat panel, and nothing they carry ever runs.
- clin3, on the same patient page in another browser, gets the messages through the `chatMessageAdded`
  subscription (the session list is otherwise polled only once a minute): the session shows an unread
  badge in words; opening it shows the same text and marks it read, so the badge goes.
- "Discuss in chat" on an alarm opens a session tied to that alarm; the assistant's answer is labelled
  Automated and lists what it cites.
- clin3 records a low potassium (3.0 mmol/L) in the lab form: the nutrition panel shows a low potassium
  finding and suggested foods.
- axe-core finds no serious or critical violation on the patient page with the chat open; a screenshot
  of the chat goes to the artifacts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from cardiogate.app.stack import free_port
from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.live import LocalHub
from cardiogate.cloud.registry.migrate import open_database
from tests.browser.browser_kit import (
    ARTIFACTS,
    chromium,
    login,
    screenshot,
    serious_accessibility_violations,
    serving,
)
from tests.integration.api_testkit import PASSWORD, api_settings, seed

pytestmark = [pytest.mark.browser, pytest.mark.care, pytest.mark.timeout(120)]

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
TOPIC = "Night review"
CHAT_TEXTS = "() => [...document.querySelectorAll('[data-testid=chat-open] [data-testid=chat-text]')]" \
             ".map(e => e.textContent)"
ELEMENTS_IN_CHAT = "() => document.querySelector('[data-testid=chat-panel]').querySelectorAll('script, img').length"


async def _patient_page(page: Page, base_url: str, user: str, patient: str) -> None:
    await login(page, base_url, user, PASSWORD)
    await page.goto(f"{base_url}/patients/{patient}")
    await page.wait_for_selector("[data-testid=chat-panel] >> text=Discussions")


async def _send(page: Page, text: str) -> None:
    count = len(await page.evaluate(CHAT_TEXTS))
    await page.fill("[data-testid=chat-input]", text)
    await page.click("[data-testid=chat-send]")
    await page.wait_for_function(f"() => ({CHAT_TEXTS})().length > {count}", timeout=10_000)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, dashboard_dist: Path) -> dict[str, Any]:
    return asyncio.run(_drive(tmp_path_factory.mktemp("care"), dashboard_dist))


async def _drive(tmp: Path, dist: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    began = time.monotonic()
    engine = open_database(f"sqlite:///{tmp / 'cloud.sqlite3'}")
    seeded = seed(engine)
    patient = seeded.p3
    port = free_port()
    settings = api_settings(tmp, listen=f"127.0.0.1:{port}", dashboard_dir=dist, rate_per_s=0)
    app = create_app(settings, engine, hub=LocalHub())
    try:
        async with serving(app, port) as base_url, chromium() as browser:
            nurse = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
            clin = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
            try:
                await _patient_page(nurse, base_url, "nurse3", patient)
                await _patient_page(clin, base_url, "clin3", patient)
                await clin.wait_for_selector("[data-testid=chat-panel] >> text=No discussions")

                # -- nurse3 starts a discussion and sends text that must stay text -----------------------
                await nurse.fill("[data-testid=chat-topic]", TOPIC)
                await nurse.click("[data-testid=chat-start]")
                await nurse.wait_for_selector(f"[data-testid=chat-open] >> text={TOPIC}")
                await _send(nurse, SCRIPT)
                await _send(nurse, IMG)
                out["nurse_texts"] = await nurse.evaluate(CHAT_TEXTS)
                out["nurse_elements"] = await nurse.evaluate(ELEMENTS_IN_CHAT)
                out["nurse_pwned"] = await nurse.evaluate("() => typeof window.__pwned")

                # -- clin3 gets them by the subscription: unread badge, then reads them ------------------
                await clin.wait_for_function(
                    "() => /2 unread/.test(document.querySelector('[data-testid=chat-unread]')?.textContent ?? '')",
                    timeout=10_000)
                out["clin_badge"] = await clin.text_content("[data-testid=chat-unread]")
                out["clin_preview"] = await clin.text_content("[data-testid=chat-preview]")
                out["clin_announcement"] = await clin.text_content("[data-testid=chat-announcement]")
                await clin.click(f".chat-session-button >> text={TOPIC}")
                await clin.wait_for_function(f"() => ({CHAT_TEXTS})().length === 2", timeout=10_000)
                out["clin_texts"] = await clin.evaluate(CHAT_TEXTS)
                await clin.wait_for_selector("[data-testid=chat-unread]", state="detached", timeout=10_000)
                out["clin_elements"] = await clin.evaluate(ELEMENTS_IN_CHAT)
                out["clin_pwned"] = await clin.evaluate("() => typeof window.__pwned")

                # -- the alarm view: "Discuss in chat" opens a session tied to the alarm ----------------
                alarm = f"a-{patient}"
                await nurse.click(f"[data-testid=discuss-{alarm}]")
                await nurse.wait_for_selector(f"[data-testid=chat-open] >> text=alarm {alarm}", timeout=10_000)
                out["alarm_session"] = await nurse.text_content("[data-testid=chat-open] h3")
                await nurse.fill("[data-testid=chat-input]", "How is the heart rate?")
                await nurse.click("[data-testid=chat-ask]")
                await nurse.wait_for_selector("[data-testid=chat-open] .chat-automated", timeout=15_000)
                out["assistant_group"] = await nurse.text_content("[data-testid=chat-open] .chat-group-automated")
                out["assistant_citations"] = await nurse.locator(
                    "[data-testid=chat-open] .chat-group-automated .chat-citations li").count()
                out["axe"] = await serious_accessibility_violations(nurse)
                out["shot"] = await _chat_picture(nurse)

                # -- clin3 records a low potassium; the nutrition panel follows -------------------------
                await clin.select_option("#lab-analyte", "potassium")
                await clin.fill("#lab-value", "3.0")
                await clin.select_option("#lab-unit", "mmol/L")
                await clin.click("[data-testid=lab-submit]")
                await clin.wait_for_selector("[data-testid=lab-stored]", timeout=15_000)
                await clin.wait_for_selector("[data-testid=nutrition-deficiencies]", timeout=10_000)
                out["deficiencies"] = await clin.text_content("[data-testid=nutrition-deficiencies]")
                out["foods"] = await clin.locator("[data-testid=nutrition-foods] tbody tr").count()
                out["notice"] = await clin.text_content("[data-testid=nutrition-notice]")
                out["nurse_lab_form"] = await nurse.locator("[data-testid=lab-form]").count()
                await screenshot(clin, "patient-nutrition")
            except Exception:
                with contextlib.suppress(Exception):
                    await screenshot(nurse, "care-failure-nurse")
                    await screenshot(clin, "care-failure-clinician")
                raise
    finally:
        engine.dispose()
    out["seconds"] = time.monotonic() - began
    print(f"\ncare in the browser: {out['seconds']:.1f} s")
    return out


async def _chat_picture(page: Page) -> Path:
    """The chat section alone (the page is long; the section is what the picture is about)."""
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    path = ARTIFACTS / "dashboard-care.png"
    await page.locator("section[aria-labelledby=care-chat-title]").screenshot(path=str(path))
    return path


def test_hostile_message_text_is_shown_verbatim_and_never_runs(run: dict[str, Any]) -> None:
    assert run["nurse_texts"] == [SCRIPT, IMG]
    assert run["clin_texts"] == [SCRIPT, IMG]
    assert run["nurse_elements"] == 0 and run["clin_elements"] == 0
    assert run["nurse_pwned"] == "undefined" and run["clin_pwned"] == "undefined"


def test_a_colleague_gets_the_messages_by_subscription_with_an_unread_badge(run: dict[str, Any]) -> None:
    assert run["clin_badge"] == "2 unread"
    assert IMG in (run["clin_preview"] or "")  # the subscription's message, as text
    assert "New message from nurse3" in (run["clin_announcement"] or "")


def test_discuss_opens_the_alarms_session_and_the_assistant_is_labelled(run: dict[str, Any]) -> None:
    assert "Tachycardia" in (run["alarm_session"] or "")
    assert "Automated" in (run["assistant_group"] or "")
    assert run["assistant_citations"] >= 1


def test_a_low_potassium_lab_gives_a_finding_and_foods(run: dict[str, Any]) -> None:
    text = run["deficiencies"] or ""
    assert "Potassium" in text and "Low" in text and "3 mmol/L" in text
    assert run["foods"] >= 1
    assert run["notice"]
    assert run["nurse_lab_form"] == 0  # recording labs is the clinicians'


def test_the_patient_page_with_the_chat_open_has_no_serious_accessibility_violations(run: dict[str, Any]) -> None:
    assert run["axe"] == [], json.dumps(run["axe"], indent=1)


def test_the_run_is_cheap_and_leaves_a_picture(run: dict[str, Any]) -> None:
    assert run["seconds"] < 60
    assert Path(run["shot"]).stat().st_size > 0
