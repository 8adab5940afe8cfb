"""A gateway told to stop must stop, even when cleanup on a dead radio fails.

Stopping a scan on a radio whose controller went away raises a stack error from the
scanner's ``__aexit__``, which replaces the CancelledError. The retry loops must not take
that for one more failure and scan again: that kept a gateway running after SIGTERM.
The scanner here is a stand-in (no radio is involved); the loop under test is the real one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cardiogate.edge.ble import adapters
from cardiogate.edge.ble.adapters import Adapter, being_cancelled
from cardiogate.edge.settings import AdapterSettings


class _DeadRadioScanner:
    """Starts fine; stopping fails as it does when the HCI transport is gone."""

    entered = 0

    def __init__(self, **_: Any) -> None:
        pass

    async def __aenter__(self) -> _DeadRadioScanner:
        type(self).entered += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        raise RuntimeError("HCI_LE_SET_SCAN_ENABLE_COMMAND timed out")


async def test_scanner_loop_stops_when_cancelled_even_if_stopping_the_scan_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters, "BleakScanner", _DeadRadioScanner)
    adapter = Adapter(AdapterSettings(name="hci9"), [])
    task = asyncio.create_task(adapter.run_scanner())
    await asyncio.sleep(0.05)
    assert _DeadRadioScanner.entered == 1 and adapter.scanning
    task.cancel()
    await asyncio.wait([task], timeout=2.0)
    stopped = task.done()
    if not stopped:  # leave no loop behind: the patched scanner lets a plain cancel through after this
        monkeypatch.setattr(_DeadRadioScanner, "__aexit__", _exit_quietly)
        task.cancel()
        await asyncio.wait([task], timeout=2.0)
    assert stopped and task.cancelled(), "the scanner loop kept running after it was told to stop"
    assert _DeadRadioScanner.entered == 1, "the loop scanned again after it was told to stop"
    assert not adapter.scanning


async def _exit_quietly(self: _DeadRadioScanner, *exc: object) -> None:
    return None


async def test_being_cancelled_only_after_a_cancel_request() -> None:
    seen: list[bool] = []

    async def worker() -> None:
        seen.append(being_cancelled())
        try:
            await asyncio.sleep(10)
        finally:
            seen.append(being_cancelled())

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False, True]
