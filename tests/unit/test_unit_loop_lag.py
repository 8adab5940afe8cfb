"""The loop-lag gauge: it sees a blocked event loop, and only then."""

from __future__ import annotations

import asyncio
import time

from cardiogate.core.metrics import exposition
from cardiogate.edge.loop_lag import LoopLagMonitor, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert percentile([], 99) == 0.0 and percentile([3.0], 1) == 3.0


def test_a_loop_that_is_blocked_shows_up_and_an_idle_one_does_not() -> None:
    async def scenario(block_s: float) -> LoopLagMonitor:
        lag = LoopLagMonitor(interval_s=0.01)
        task = asyncio.create_task(lag.run())
        await asyncio.sleep(0.3)
        if block_s:
            time.sleep(block_s)  # noqa: ASYNC251 - what an inline fsync on a slow SD card does to the loop
        await asyncio.sleep(0.1)
        task.cancel()
        return lag

    idle = asyncio.run(scenario(0.0))
    assert idle.count > 20 and idle.summary().p50_s < 0.005
    blocked = asyncio.run(scenario(0.2))
    assert 0.18 < blocked.max_s < 0.5
    assert b"gateway_loop_lag_seconds_bucket" in exposition()
    assert b"gateway_loop_lag_latest_seconds" in exposition()
