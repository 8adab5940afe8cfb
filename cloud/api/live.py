"""Live risk updates for subscriptions: Redis pub/sub when Redis answers, else one process's own hub.

The stream processor publishes each serialized RiskReport on ``cardiogate:risk:<patient>`` and
keeps the newest in the hash ``cardiogate:latest:<patient>`` (field ``risk``). Without Redis,
updates reach only subscribers of this process (a single replica; the log says so once), and
whatever is published through :meth:`LocalHub.publish` (the tests, the demo) is the latest too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cardiogate.core.logs import get_logger

log = get_logger(__name__)

RISK_CHANNEL = "cardiogate:risk:{patient}"
LATEST_KEY = "cardiogate:latest:{patient}"
QUEUE_LIMIT = 64  # a subscriber this far behind loses the oldest updates, never blocks the others


class Hub(Protocol):
    async def publish(self, patient: str, payload: bytes) -> None: ...
    def subscribe(self, patient: str) -> AsyncIterator[bytes]: ...
    async def subscribers(self, patient: str) -> int: ...
    async def latest_risk(self, patient: str) -> bytes | None: ...
    async def close(self) -> None: ...


class LocalHub:
    """In-process fan-out with a bounded queue per subscriber."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[bytes]]] = {}
        self._latest: dict[str, bytes] = {}

    async def publish(self, patient: str, payload: bytes) -> None:
        self._latest[patient] = payload
        for queue in list(self._queues.get(patient, ())):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(payload)

    async def subscribe(self, patient: str) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.setdefault(patient, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues[patient].discard(queue)
            if not self._queues[patient]:
                del self._queues[patient]

    async def subscribers(self, patient: str) -> int:
        return len(self._queues.get(patient, ()))

    async def latest_risk(self, patient: str) -> bytes | None:
        return self._latest.get(patient)

    async def close(self) -> None:
        self._queues.clear()


class RedisHub:
    """Redis pub/sub: every replica's subscribers get every update; the latest report comes from the hash."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def publish(self, patient: str, payload: bytes) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(LATEST_KEY.format(patient=patient), "risk", payload)
            pipe.publish(RISK_CHANNEL.format(patient=patient), payload)
            await pipe.execute()

    async def subscribe(self, patient: str) -> AsyncIterator[bytes]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(RISK_CHANNEL.format(patient=patient))
        try:
            while True:
                message = await pubsub.get_message(timeout=30.0)
                if message is not None and message.get("type") == "message":
                    yield bytes(message["data"])
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe()
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def subscribers(self, patient: str) -> int:
        counts = await self._redis.pubsub_numsub(RISK_CHANNEL.format(patient=patient))
        return int(counts[0][1]) if counts else 0

    async def latest_risk(self, patient: str) -> bytes | None:
        try:
            value = await self._redis.hget(LATEST_KEY.format(patient=patient), "risk")
        except (RedisError, OSError) as exc:
            log.warning("redis read failed; falling back to the database", error=str(exc))
            return None
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def close(self) -> None:
        await self._redis.aclose()


async def open_hub(redis_url: str, timeout_s: float = 1.0) -> Hub:
    """A :class:`RedisHub` if Redis answers at ``redis_url``, else a :class:`LocalHub` (logged once)."""
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=timeout_s)
    try:
        await asyncio.wait_for(client.ping(), timeout_s)
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        log.warning("redis unreachable: live risk updates stay in this process (single replica only)",
                    redis=redis_url.split("@")[-1], error=str(exc))
        return LocalHub()
    log.info("live risk updates via redis pub/sub", redis=redis_url.split("@")[-1])
    return RedisHub(client)
