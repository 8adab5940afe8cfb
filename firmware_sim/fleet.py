"""Fleets of simulated watches in several processes, each with its own virtual radio.

One Python process drives a few hundred notifications per second comfortably; a larger
fleet is dealt round-robin over several processes. Each process exposes its own
gateway-facing controller on consecutive ports (``listen``, ``listen + 1``, ...) and
writes its own ground-truth file, so a gateway attaches one adapter per process,
exactly as it would with several USB dongles.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from pathlib import Path
from typing import Literal

from cardiogate.core.logs import setup_logging
from cardiogate.sim.air import run_simulator
from cardiogate.sim.scenario import SimSettings


def split_fleet(settings: SimSettings, processes: int) -> list[SimSettings]:
    """Per-process settings: watches dealt round-robin, consecutive ports, one truth file each."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    if processes == 1:
        return [settings]
    host, _, port = settings.listen.rpartition(":")
    out = []
    for i in range(processes):
        truth = settings.ground_truth
        if truth is not None:
            truth = truth.with_name(f"{truth.stem}.{i}{truth.suffix}")
        out.append(settings.model_copy(update={"listen": f"{host}:{int(port) + i}",
                                               "watches": settings.watches[i::processes], "ground_truth": truth}))
    return out


def truth_files(settings: SimSettings, processes: int) -> list[Path]:
    """Where the ground truth of a (possibly split) fleet is written."""
    return [s.ground_truth for s in split_fleet(settings, processes) if s.ground_truth is not None]


LogFormat = Literal["console", "json"]


def _child(settings_json: str, log_level: str, log_format: LogFormat) -> None:
    setup_logging(log_level, log_format, "sim")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_simulator(SimSettings.model_validate_json(settings_json)))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_fleet(settings: SimSettings, processes: int = 1, log_level: str = "INFO",
              log_format: LogFormat = "console") -> None:
    """Run the fleet; with several processes, this one runs the first share and supervises the rest."""
    parts = split_fleet(settings, processes)
    if processes > 1:  # SIGTERM must unwind through `finally`, or the other processes would be orphaned
        signal.signal(signal.SIGTERM, _interrupt)
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_child, args=(p.model_dump_json(), log_level, log_format), daemon=True,
                            name=f"sim-{i}") for i, p in enumerate(parts[1:], start=1)]
    for child in children:
        child.start()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_simulator(parts[0]))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(timeout=10)
