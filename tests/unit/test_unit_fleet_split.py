"""Dealing a fleet over simulator processes, and connection slots on an adapter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cardiogate.edge.ble.adapters import Adapter
from cardiogate.edge.settings import AdapterSettings
from cardiogate.sim.fleet import split_fleet, truth_files
from cardiogate.sim.scenario import SimSettings, demo_watches


def test_watches_are_dealt_round_robin_over_consecutive_ports_with_one_truth_file_each() -> None:
    settings = SimSettings(listen="127.0.0.1:19000", ground_truth=Path("/tmp/run/truth.jsonl"),
                           watches=demo_watches(5))
    parts = split_fleet(settings, 2)
    assert [p.listen for p in parts] == ["127.0.0.1:19000", "127.0.0.1:19001"]
    assert [[w.name for w in p.watches] for p in parts] == [["cg-watch-1", "cg-watch-3", "cg-watch-5"],
                                                           ["cg-watch-2", "cg-watch-4"]]
    assert truth_files(settings, 2) == [Path("/tmp/run/truth.0.jsonl"), Path("/tmp/run/truth.1.jsonl")]
    assert split_fleet(settings, 1) == [settings]
    with pytest.raises(ValueError, match="at least 1"):
        split_fleet(settings, 0)


async def test_a_full_adapter_makes_the_next_session_wait_for_a_slot() -> None:
    adapter = Adapter(AdapterSettings(name="hci0", max_connections=2), [])
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str) -> None:
        async with adapter.slot():
            order.append(f"{name} in")
            await release.wait()
            order.append(f"{name} out")

    holders = [asyncio.create_task(hold(n)) for n in ("a", "b", "c")]
    await asyncio.sleep(0.05)
    assert order == ["a in", "b in"] and adapter.free_slots == 0
    release.set()
    await asyncio.gather(*holders)
    assert order.index("c in") > order.index("a out") and adapter.free_slots == 2
