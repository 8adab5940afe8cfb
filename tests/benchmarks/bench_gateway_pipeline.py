"""How many notifications per second the gateway's pipeline sustains on one core, BLE stack excluded.

Feeds pre-encoded notifications of our ECG watch (114-sample ECG packets, Heart Rate with
RR, PLX) for N watches straight into the gateway's processors: decode, time-stamping, gap
accounting, ECG blocks, the alarm engine, MQTT queueing and the SQLite outbox (the real
one, on disk). Beside it, in the same run, the decoders alone: the ratio says how much of
the cost is the codec. Not a test; run by hand:

    .venv/bin/python -m tests.benchmarks.bench_gateway_pipeline --watches 50 --seconds 60
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cardiogate.edge.codecs.ecg_waveform import EcgPacket, decode_ecg_packet, encode_ecg_packet
from cardiogate.edge.codecs.heart_rate import (
    HeartRateMeasurement,
    decode_heart_rate_measurement,
    encode_heart_rate_measurement,
)
from cardiogate.edge.codecs.pulse_oximeter import (
    PlxContinuousMeasurement,
    SpO2PR,
    decode_plx_continuous_measurement,
    encode_plx_continuous_measurement,
)
from cardiogate.edge.codecs.sfloat import sfloat_from_float
from cardiogate.edge.gateway import Gateway
from cardiogate.edge.settings import GatewaySettings, PairedDevice

FS = 250
PER_PACKET = 114
T0_US = 1_800_000_000_000_000


def notifications(watches: int, seconds: int) -> list[tuple[int, str, bytes, int]]:
    """(watch index, kind, payload, receive ns) in arrival order for ``seconds`` of simulated time."""
    rng = np.random.default_rng(1)
    out: list[tuple[int, str, bytes, int]] = []
    for w in range(watches):
        seq, index = 0, 0
        while index + PER_PACKET <= seconds * FS:
            samples = rng.integers(-2000, 2000, PER_PACKET).astype(np.int16)
            t_us = T0_US + index * 4000
            out.append((w, "ecg", encode_ecg_packet(EcgPacket(seq, t_us, FS, 1000, samples)),
                        t_us * 1000 + PER_PACKET * 4_000_000 + 20_000_000))
            seq, index = seq + 1, index + PER_PACKET
        for s in range(seconds):
            rx = (T0_US + s * 1_000_000) * 1000 + 30_000_000
            out.append((w, "hr", encode_heart_rate_measurement(HeartRateMeasurement(72, True, None, (820, 830))), rx))
            plx = PlxContinuousMeasurement(SpO2PR(sfloat_from_float(97.0, 1), sfloat_from_float(72, 0)))
            out.append((w, "plx", encode_plx_continuous_measurement(plx), rx + 1000))
    out.sort(key=lambda n: n[3])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--watches", type=int, default=50)
    p.add_argument("--seconds", type=int, default=60, help="simulated seconds of data per watch")
    a = p.parse_args(argv)
    feed = notifications(a.watches, a.seconds)
    decoders = {"ecg": decode_ecg_packet, "hr": decode_heart_rate_measurement,
                "plx": decode_plx_continuous_measurement}
    t = time.process_time()
    for _, kind, payload, _ in feed:
        decoders[kind](payload)
    decode_s = time.process_time() - t
    with tempfile.TemporaryDirectory() as tmp:
        devices = [PairedDevice(address=f"C0:00:00:00:{w // 256:02X}:{w % 256:02X}", patient=f"pt-{w:04d}")
                   for w in range(a.watches)]
        gw = Gateway(GatewaySettings(devices=devices, outbox={"path": Path(tmp) / "outbox.sqlite3"},
                                     state={"pairings_path": Path(tmp) / "pairings.json"}, uplink={"tls": False}))
        procs = [gw.devices.devices[d.address].processor for d in devices]
        handlers = {"ecg": [p.on_ecg for p in procs], "hr": [p.on_heart_rate for p in procs],
                    "plx": [p.on_plx_continuous for p in procs]}
        t = time.process_time()
        for w, kind, payload, rx in feed:
            handlers[kind][w](payload, rx)
        for proc in procs:
            proc.flush()
        pipeline_s = time.process_time() - t
        records = gw.outbox.metrics().records
        gw.outbox.close()
    n = len(feed)
    print(f"{a.watches} watches x {a.seconds} s: {n:,} notifications, {records:,} outbox records")
    print(f"{'stage':<28}{'notifications/s':>18}{'µs each':>10}")
    print(f"{'decoders only':<28}{n / decode_s:>18,.0f}{1e6 * decode_s / n:>10.1f}")
    print(f"{'full pipeline (one core)':<28}{n / pipeline_s:>18,.0f}{1e6 * pipeline_s / n:>10.1f}")
    print(f"ratio pipeline / decoders: {decode_s / pipeline_s:.2f}; "
          f"watch-seconds per CPU-second: {a.watches * a.seconds / pipeline_s:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
