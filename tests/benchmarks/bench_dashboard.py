"""The dashboard under a ward's load: ECG drawing with 12 live strips, alarm-on-MQTT to tile change, payload.

The real local stack (simulated watches on one bumble radio, gateway, its Mosquitto, ingest,
tansu, store consumers, processor, and the API serving the built dashboard) with ``--patients``
patients; patient i becomes tachycardic at ``--first-s + i * --stagger-s`` seconds, so the
gateway escalates one hr_high alarm to high priority after another. A nurse's page in headless
Chromium shows the ward with ``/?strips=N`` (N live ECG strips, each on its own canvas fed by
``/ws/live``). Not a test; run by hand (results in docs/benchmarks.md):

    .venv/bin/python -m tests.benchmarks.bench_dashboard [--patients 12] [--first-s 40] [--stagger-s 4]

- ECG frame time: the draw time of every animation frame of every strip, as the dashboard records
  it in ``window.__ecgFrameTimes`` (the last 2000), p50/p99/max. Headless Chromium on this
  machine draws with the CPU (no GPU), while the whole stack runs beside it.
- Alarm to tile: for each patient, the tile's ``data-priority`` turning ``high`` (a
  MutationObserver's ``Date.now()`` in the page) minus the arrival of the gateway's high-priority
  MQTT alarm at a monitor client (``time.time()``, the same clock). The path between is the
  gateway's uplink, Kafka, the store consumer, the database and the ward's 1-second poll.
- Payload: the built JavaScript, gzipped (level 9), and the whole ``dist``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cardiogate.app.dashboard_build import ensure_built
from cardiogate.app.site_mqtt import MONITOR
from cardiogate.app.stack import LocalStack, Patient
from tests.browser.browser_kit import chromium, login
from tests.harness.mqtt_seen import Seen, collect

RED_TIMES = """() => {
  window.__redAt = window.__redAt || {};
  const mark = (el) => {
    const id = el.dataset && el.dataset.testid;
    if (id && id.startsWith('tile-') && el.dataset.priority === 'high' && !(id in window.__redAt)) {
      window.__redAt[id] = Date.now();
    }
  };
  document.querySelectorAll('[data-testid^="tile-"]').forEach(mark);
  new MutationObserver(ms => ms.forEach(m => mark(m.target)))
    .observe(document.body, {attributes: true, subtree: true, attributeFilter: ['data-priority']});
}"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def payload_sizes(dist: Path) -> dict[str, int]:
    scripts = sorted((dist / "assets").glob("*.js"))
    return {"js_bytes": sum(p.stat().st_size for p in scripts),
            "js_gzip_bytes": sum(len(gzip.compress(p.read_bytes(), 9)) for p in scripts),
            "dist_bytes": sum(p.stat().st_size for p in dist.rglob("*") if p.is_file()),
            "js_files": len(scripts)}


async def run(args: argparse.Namespace, dist: Path) -> dict[str, Any]:
    patients = [Patient(f"pt-{2001 + i}", f"C0:00:00:00:20:{i + 1:02X}",
                        [(0.0, 70.0), (args.first_s + i * args.stagger_s, 70.0),
                         (args.first_s + i * args.stagger_s + 4.0, 168.0)], seed=200 + i)
                for i in range(args.patients)]
    stack = LocalStack(Path(tempfile.mkdtemp(prefix="bench-dashboard-")), patients, gateway_id="gw-bench",
                       site="bench-site", read_side=True)
    seen: Seen = []
    await asyncio.to_thread(stack.start_mqtt)
    try:
        async with stack.mqtt_client(MONITOR, f"bench-watch-{time.time_ns()}") as monitor, chromium() as browser:
            await monitor.subscribe(f"cardiogate/{stack.site}/+/alarms", qos=1)
            reader = asyncio.create_task(collect(monitor, seen, time.time))
            started = time.monotonic()
            await asyncio.to_thread(stack.start)
            print(f"stack up in {time.monotonic() - started:.0f} s", flush=True)
            page = await (await browser.new_context(viewport={"width": 1600, "height": 1200})).new_page()
            password = (stack.workdir / "api-credentials" / "demo-nurse").read_text().strip()
            await login(page, stack.api_url, "demo-nurse", password)
            await page.goto(f"{stack.api_url}/?strips={args.patients}")
            await page.wait_for_selector(f"[data-testid=tile-{patients[-1].pseudonym}]", timeout=60_000)
            await page.evaluate(RED_TIMES)
            await page.evaluate("() => { window.__ecgFrameTimes = []; }")
            deadline = time.monotonic() + args.first_s + args.patients * args.stagger_s + 60
            while time.monotonic() < deadline:
                red = await page.evaluate("() => Object.keys(window.__redAt || {}).length")
                if red >= args.patients:
                    break
                await asyncio.sleep(1.0)
            await asyncio.sleep(5.0)  # frames with every strip live and every tile red
            red_at = await page.evaluate("() => window.__redAt")
            frames = await page.evaluate("() => window.__ecgFrameTimes.slice()")
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        await asyncio.to_thread(stack.stop)
    alarm_at: dict[str, float] = {}
    for t, topic, body in seen:
        patient = topic.split("/")[2]
        if body.get("priority") == "high" and body.get("condition") == "hr_high" and patient not in alarm_at:
            alarm_at[patient] = t
    delays = [red_at[f"tile-{p}"] / 1000 - alarm_at[p] for p in alarm_at if f"tile-{p}" in red_at]
    return {"patients": args.patients, "strips": args.patients, "alarms_seen": len(alarm_at),
            "tiles_turned": len(red_at), "alarm_to_tile_s": sorted(round(d, 3) for d in delays),
            "alarm_to_tile_p50_s": round(statistics.median(delays), 3) if delays else None,
            "alarm_to_tile_p99_s": round(_percentile(delays, 0.99), 3) if delays else None,
            "frames": len(frames), "frame_ms_p50": round(_percentile(frames, 0.5), 3),
            "frame_ms_p99": round(_percentile(frames, 0.99), 3), "frame_ms_max": round(max(frames or [0.0]), 3),
            **payload_sizes(dist)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=12, help="patients, and live strips on the ward page")
    parser.add_argument("--first-s", type=float, default=40.0, help="first tachycardia onset after the start")
    parser.add_argument("--stagger-s", type=float, default=4.0, help="seconds between the patients' onsets")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    dist = ensure_built()
    result = asyncio.run(run(args, dist))
    print(json.dumps(result, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
