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
from typing import Any, Protocol

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
    """Redis pub/sub: every replica's subscribers get every update; the latest report comes from the hash.

    One pub/sub connection per process, whatever the number of subscribers: a patient's channel is
    subscribed while anyone here watches it, and each message fans out to the local subscribers'
    queues (one Redis connection per WebSocket would stop at the connection pool's limit)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._local = LocalHub()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._watchers: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def publish(self, patient: str, payload: bytes) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(LATEST_KEY.format(patient=patient), "risk", payload)
            pipe.publish(RISK_CHANNEL.format(patient=patient), payload)
            await pipe.execute()

    async def _watch(self, patient: str) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            count = self._watchers.get(patient, 0)
            if count == 0:
                await self._pubsub.subscribe(RISK_CHANNEL.format(patient=patient))
            self._watchers[patient] = count + 1
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="redis-risk-reader")

    async def _unwatch(self, patient: str) -> None:
        async with self._lock:
            count = self._watchers.get(patient, 0) - 1
            if count > 0:
                self._watchers[patient] = count
                return
            self._watchers.pop(patient, None)
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(RISK_CHANNEL.format(patient=patient))

    async def _read(self) -> None:
        prefix = RISK_CHANNEL.format(patient="")
        while self._watchers:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub read failed; retrying", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            await self._local.publish(channel.removeprefix(prefix), bytes(message["data"]))

    async def subscribe(self, patient: str) -> AsyncIterator[bytes]:
        await self._watch(patient)
        try:
            async for payload in self._local.subscribe(patient):
                yield payload
        finally:
            await self._unwatch(patient)

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
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
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
