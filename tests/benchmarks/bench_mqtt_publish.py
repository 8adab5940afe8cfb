"""CPU per QoS 0 vitals message: aiomqtt's waiting publish beside the gateway's publisher, on the local broker.

Both send the same JSON vitals bodies to Mosquitto on 127.0.0.1:1883, one message per turn of the event loop
(as vitals arrive, one BLE notification at a time). The baseline awaits ``aiomqtt.Client.publish`` for each
message, as the gateway's publisher did before; the other is ``MqttPublisher`` as built, which hands QoS 0
messages to the client and settles them once written. Not a test; run by hand, alternating the two:

    .venv/bin/python -m tests.benchmarks.bench_mqtt_publish --messages 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import uuid
from collections.abc import Callable

import aiomqtt

from cardiogate.edge.mqtt import MqttPublisher, Outgoing
from cardiogate.edge.settings import MqttSettings


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _body(i: int) -> dict[str, object]:
    return {"schema": 1, "patient": "pt-0001", "device": "C0:00:00:00:00:01", "source": "hrm",
            "device_time_ns": 1_800_000_000_000_000_000 + i, "heart_rate_bpm": 72.0, "rr_intervals_ms": [830, 828],
            "news2": {"score": 1, "band": "low"}}


async def _awaiting(topic: str, n: int) -> float:
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"bench-{uuid.uuid4().hex[:6]}") as client:
        started = _cpu_s()
        for i in range(n):
            await client.publish(topic, json.dumps(_body(i), separators=(",", ":")), qos=0)
            await asyncio.sleep(0)
        return _cpu_s() - started


async def _until(done: Callable[[], bool], timeout_s: float = 60.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if done():
                return
            await asyncio.sleep(0.001)


async def _publisher(topic: str, n: int) -> float:
    publisher = MqttPublisher(MqttSettings(), f"bench-{uuid.uuid4().hex[:6]}")
    runner = asyncio.create_task(publisher.run())
    try:
        await _until(lambda: publisher.connected)
        started = _cpu_s()
        for i in range(n):
            publisher.publish(Outgoing(topic, _body(i), qos=0))
            await asyncio.sleep(0)
        await _until(lambda: publisher.published >= n)
        return _cpu_s() - started
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    topic = f"bench/{uuid.uuid4().hex[:8]}/vitals"
    print(f"{'round':>5}  {'aiomqtt publish, awaited (us CPU/msg)':>38}  {'MqttPublisher (us CPU/msg)':>27}  ratio")
    for r in range(1, args.rounds + 1):
        base = asyncio.run(_awaiting(topic, args.messages)) / args.messages * 1e6
        ours = asyncio.run(_publisher(topic, args.messages)) / args.messages * 1e6
        print(f"{r:>5}  {base:>38.1f}  {ours:>27.1f}  {ours / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
