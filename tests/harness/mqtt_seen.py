"""What a test's MQTT monitor saw, with arrival times, and waiting for a message that matches."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiomqtt

Seen = list[tuple[float, str, dict[str, Any]]]


async def collect(client: aiomqtt.Client, seen: Seen, clock: Callable[[], float] = time.monotonic) -> None:
    """Append (arrival on ``clock``, topic, JSON body) for every non-empty message until cancelled."""
    async for msg in client.messages:
        if isinstance(msg.payload, bytes | bytearray) and msg.payload:
            seen.append((clock(), str(msg.topic), json.loads(msg.payload)))


async def wait_for(seen: Seen, match: Callable[[str, dict[str, Any]], bool],
                   timeout_s: float) -> tuple[float, dict[str, Any]]:
    """The first seen message (arrival time, body) that ``match``es, waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for t, topic, body in list(seen):
            if match(topic, body):
                return t, body
        await asyncio.sleep(0.02)
    raise AssertionError(f"no matching MQTT message within {timeout_s} s; saw {[x[1] for x in seen][-20:]}")
