"""How many notifications per second the gateway's pipeline sustains on one core, BLE stack excluded.

Feeds pre-encoded notifications of our ECG watch (114-sample ECG packets, Heart Rate with
RR, PLX) for N watches straight into the gateway's processors: decode, time-stamping, gap
accounting, ECG blocks, the alarm engine, MQTT queueing and the SQLite outbox (the real
one, on disk). Beside it, in the same run, the decoders alone: the ratio says how much of
the cost is the codec. Not a test; run by hand:

    .venv/bin/python -m tests.benchmarks.bench_gateway_pipeline --watches 50 --seconds 60

``--ecg synthetic`` sends the simulator's ECG (beats the analysis finds, so the quality index, the VT
check and the rhythm model all work as on a patient) instead of random samples; ``--ab`` then runs
the pipeline twice in the same process on the same notifications, first with the numpy template
match and an uncached filter design (the gateway before the compiled template kernel), then as built:

    .venv/bin/python -m tests.benchmarks.bench_gateway_pipeline --watches 20 --seconds 120 --ecg synthetic --ab

``--ab-beat N`` alternates N rounds of the per-beat R-wave width, sinus template median and per-chunk heart
rate in numpy (as before 2026-12-05) with the compiled width and median and the plain-Python heart rate, on
the same notifications, and prints each round's ratio (TMPDIR=/dev/shm keeps the outbox's fsyncs, the
noisiest part here, out of it):

    .venv/bin/python -m tests.benchmarks.bench_gateway_pipeline --watches 50 --seconds 120 --ecg synthetic --ab-beat 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cardiogate.core.logs import setup_logging
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
from cardiogate.edge.dsp import beats, hrv, iir_design, quality, vt
from cardiogate.edge.gateway import Gateway
from cardiogate.edge.settings import GatewaySettings, PairedDevice
from cardiogate.sim.physiology import BeatGenerator, EcgSynthesizer, HeartRateTimeline

FS = 250
PER_PACKET = 114
T0_US = 1_800_000_000_000_000


def notifications(watches: int, seconds: int, ecg: str = "random") -> list[tuple[int, str, bytes, int]]:
    """(watch index, kind, payload, receive ns) in arrival order for ``seconds`` of simulated time."""
    rng = np.random.default_rng(1)
    out: list[tuple[int, str, bytes, int]] = []
    for w in range(watches):
        seq, index = 0, 0
        synth = EcgSynthesizer(BeatGenerator(HeartRateTimeline(((0.0, 60.0 + w % 40),)), seed=w), FS, seed=w)
        while index + PER_PACKET <= seconds * FS:
            samples = (synth.samples(index, PER_PACKET) if ecg == "synthetic"
                       else rng.integers(-2000, 2000, PER_PACKET).astype(np.int16))
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
    p.add_argument("--ecg", choices=("random", "synthetic"), default="random")
    p.add_argument("--ab", action="store_true", help="first without the template kernel and the filter cache")
    p.add_argument("--ab-beat", type=int, default=0, metavar="ROUNDS",
                   help="alternate the numpy R-wave width, template median and heart rate with the built ones")
    a = p.parse_args(argv)
    setup_logging("WARNING")  # as a gateway in service logs: per-beat debug lines would be most of the cost
    feed = notifications(a.watches, a.seconds, a.ecg)
    decoders = {"ecg": decode_ecg_packet, "hr": decode_heart_rate_measurement,
                "plx": decode_plx_continuous_measurement}
    t = time.process_time()
    for _, kind, payload, _ in feed:
        decoders[kind](payload)
    decode_s = time.process_time() - t
    n = len(feed)
    print(f"{a.watches} watches x {a.seconds} s, {a.ecg} ECG: {n:,} notifications")
    print(f"{'stage':<34}{'notifications/s':>18}{'µs each':>10}{'ms CPU per watch-s':>20}")
    print(f"{'decoders only':<34}{n / decode_s:>18,.0f}{1e6 * decode_s / n:>10.1f}")
    if a.ab_beat:
        return _ab_beat(a.ab_beat, a.watches, a.seconds, n, feed)
    if a.ab:
        kernel, design = quality._template_kernel, iir_design._butter_sos
        quality._template_kernel = vt._template_kernel = None  # type: ignore[assignment]
        iir_design._butter_sos = design.__wrapped__  # type: ignore[assignment]
        try:
            before = _pipeline(a.watches, feed)
        finally:
            quality._template_kernel = vt._template_kernel = kernel
            iir_design._butter_sos = design
        _row("pipeline, numpy template match", n, before, a.watches * a.seconds)
    after = _pipeline(a.watches, feed)
    _row("full pipeline (one core)", n, after, a.watches * a.seconds)
    print(f"ratio pipeline / decoders: {decode_s / after:.2f}; "
          f"watch-seconds per CPU-second: {a.watches * a.seconds / after:,.0f}"
          + (f"; as built / numpy template match: {after / before:.2f}" if a.ab else ""))
    return 0


def _ab_beat(rounds: int, watches: int, seconds: int, n: int, feed: list[tuple[int, str, bytes, int]]) -> int:
    """Alternate the per-beat width, template median and per-chunk heart rate in numpy (before) with the built
    ones (after)."""
    kernel, fast_rate, fast_median = beats._template_kernel, hrv.RrWindow.heart_rate, vt.column_median
    ratios = []

    def numpy_round() -> float:
        beats._template_kernel = None  # type: ignore[assignment]
        hrv.RrWindow.heart_rate = hrv.RrWindow.heart_rate_numpy  # type: ignore[method-assign]
        vt.column_median = lambda rows, count: np.median(rows[:count], axis=0)  # type: ignore[assignment]
        try:
            return _pipeline(watches, feed)
        finally:
            beats._template_kernel = kernel
            hrv.RrWindow.heart_rate = fast_rate  # type: ignore[method-assign]
            vt.column_median = fast_median

    for k in range(rounds):  # which goes first alternates, so neither gains from the other's warm-up
        if k % 2:
            after = _pipeline(watches, feed)
            before = numpy_round()
        else:
            before = numpy_round()
            after = _pipeline(watches, feed)
        _row(f"round {k + 1}: numpy width, median, rate", n, before, watches * seconds)
        _row(f"round {k + 1}: as built", n, after, watches * seconds)
        ratios.append(after / before)
    print("as built / numpy width, median and rate, per round: " + ", ".join(f"{r:.3f}" for r in ratios))
    return 0


def _row(label: str, n: int, cpu_s: float, watch_seconds: int) -> None:
    print(f"{label:<34}{n / cpu_s:>18,.0f}{1e6 * cpu_s / n:>10.1f}{1e3 * cpu_s / watch_seconds:>20.3f}")


def _pipeline(watches: int, feed: list[tuple[int, str, bytes, int]]) -> float:
    """CPU seconds of one gateway's processors over the whole feed (a fresh gateway and outbox each time)."""
    with tempfile.TemporaryDirectory() as tmp:
        devices = [PairedDevice(address=f"C0:00:00:00:{w // 256:02X}:{w % 256:02X}", patient=f"pt-{w:04d}")
                   for w in range(watches)]
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
        gw.outbox.close()
    return pipeline_s


if __name__ == "__main__":
    raise SystemExit(main())
