"""Shared pieces of the browser tests: Debian's Chromium under Playwright, the built dashboard, artifacts.

Playwright drives the system's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it): no browser
is ever downloaded. The flags keep a headless Chromium from reaching for the network it does not
have. Screenshots go to ``$CARDIOGATE_TEST_ARTIFACTS`` (default ``.artifacts/browser`` in the
repository) so a failed run leaves pictures of what the browser showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("CARDIOGATE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(os.environ.get("CARDIOGATE_TEST_ARTIFACTS", REPO / ".artifacts" / "browser"))
AXE = REPO / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"


def require_chromium() -> None:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.fail(f"Debian's Chromium must be installed for the browser tests ({CHROMIUM}; .ci/run installs it)")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def login(page: Page, base_url: str, username: str, password: str) -> None:
    await page.goto(base_url + "/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("[data-testid=login-submit]")
    await page.wait_for_selector("[data-testid=whoami]")


async def serious_accessibility_violations(page: Page) -> list[dict[str, object]]:
    """axe-core's serious and critical violations on the page as it stands (axe-core from the dashboard's
    own dev packages, injected from disk)."""
    # Evaluated, not added as a <script>: the dashboard's CSP rightly refuses scripts from anywhere but itself.
    await page.evaluate(await asyncio.to_thread(AXE.read_text))
    result = await page.evaluate("async () => (await axe.run(document)).violations"
                                 ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                                 ".map(v => ({id: v.id, impact: v.impact, help: v.help, "
                                 "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))")
    assert isinstance(result, list)
    return result


@contextlib.asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    """The app under uvicorn on its own thread and event loop (no signal handlers off the main thread)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    began = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - began > 30:
            raise AssertionError("the API did not start listening")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)
