"""What the VF detector costs beside the ECG analysis it runs next to, per lead-second, on one core.

For each sample rate a watch may use, the simulator's ECG (sinus rhythm with noise) goes in 1-s chunks
through the gateway's ECG analyser (R-peaks, heart rate, HRV, quality, AF evidence: the baseline) and
through the VF detector (``cardiogate.edge.dsp.vf.VfWatch``), each on its own, in the same run. Printed:
ms of CPU per lead-second for each and the ratio VF / analyser. Not a test; run by hand:

    .venv/bin/python -m tests.benchmarks.bench_vf --seconds 600
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from cardiogate.edge.dsp.analyzer import AnalyzerConfig, EcgAnalyzer
from cardiogate.edge.dsp.vf import VfWatch
from cardiogate.sim.patient import PatientScenario, PatientSimulator


def cpu_ms_per_second(feed: Callable[[np.ndarray, int], object], x: np.ndarray, fs: int) -> float:
    """CPU (ms) per second of signal for ``feed`` over ``x`` in 1-s chunks."""
    started = time.process_time()
    for start in range(0, x.size, fs):
        feed(x[start:start + fs], start)
    return (time.process_time() - started) * 1e3 / (x.size / fs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--rates", type=int, nargs="+", default=[130, 250, 360])
    ns = p.parse_args()
    scenario = PatientScenario.model_validate({"hr_bpm": 75, "snr_db": 20.0})
    print(f"{'rate':>6} {'analyser ms/s':>14} {'VF ms/s':>8} {'VF / analyser':>14}")
    for fs in ns.rates:
        x = PatientSimulator(scenario, seed=7, ecg_rate_hz=fs).ecg_uv(0, round(ns.seconds * fs))
        analyser = EcgAnalyzer(float(fs), AnalyzerConfig(units_per_mv=1000.0))
        vf = VfWatch(float(fs), 1000.0, screen=True)  # as the gateway runs it on the primary lead
        base = cpu_ms_per_second(analyser.process, x, fs)
        cost = cpu_ms_per_second(vf.push, x, fs)
        print(f"{fs:>4} Hz {base:>14.3f} {cost:>8.3f} {cost / base:>14.2f}")


if __name__ == "__main__":
    main()
