"""The VF detector on the reference records: MIT-BIH flutter episodes, false raises elsewhere, noise stress.

Each record's first lead is the primary, its second the second lead, judged as the gateway judges them
(``VfWatch`` per lead in 1-s chunks, :func:`cardiogate.edge.dsp.vf.judge`; MIT-BIH has no pulse channel,
so the pulse rule does not take part); a ``vf`` alarm is three ``vf`` windows in a row, the engine's shipped
onset delay. The noise stress records run twice, each lead as the primary. Printed: for every ``[``...``]``
episode, the delay from its annotated onset to the alarm; every raise outside the episodes; the windows
inside them judged VF on the primary lead alone. Not a test (needs the data and the ``[eval]`` extra's wfdb);
run by hand:

    .venv/bin/python -m tests.benchmarks.vf_reference --mitdb ../shared/data/mitdb --nstdb ../shared/data/nstdb
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from cardiogate.app.evaluation.rpeaks import find_records, vf_spans
from cardiogate.edge.alarm_engine import default_specs
from cardiogate.edge.dsp.vf import VfConfig, VfJudgement, VfVerdict, VfWatch, judge

CFG = VfConfig()
IN_A_ROW = 1 + round(default_specs()["vf"].tiers[0].onset_delay_s / CFG.step_s)


def verdicts(primary: np.ndarray, second: np.ndarray, fs: float) -> list[tuple[VfJudgement, VfVerdict]]:
    """Every primary-lead window with its verdict against the second lead's latest window."""
    a, b = VfWatch(fs, 1.0, CFG, screen=True), VfWatch(fs, 1.0, CFG)
    step, latest, out = round(fs), None, []
    for start in range(0, primary.size, step):
        judged_b = b.push(second[start:start + step], start)
        latest = judged_b[-1] if judged_b else latest
        for j in a.push(primary[start:start + step], start):
            other = latest.features if latest is not None and abs(latest.end - j.end) <= b.step else None
            out.append((j, judge(j.features, CFG, other)[0]))
    return out


def raises(judged: list[tuple[VfJudgement, VfVerdict]], fs: float) -> list[float]:
    """Seconds at which a ``vf`` alarm would be raised (each run of ``vf`` windows counts once)."""
    run, out = 0, []
    for j, verdict in judged:
        run = run + 1 if verdict == "vf" else 0
        if run == IN_A_ROW:
            out.append(j.end / fs)
    return out


def read(path: Path) -> tuple[np.ndarray, float, tuple[tuple[int, int], ...]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import wfdb  # type: ignore[import-untyped]

        rec = wfdb.rdrecord(str(path))
        try:
            ann = wfdb.rdann(str(path), "atr")
            spans = vf_spans(ann.sample, [str(s) for s in ann.symbol], rec.sig_len)
        except FileNotFoundError:
            spans = ()
    return np.nan_to_num(np.asarray(rec.p_signal, dtype=np.float64)), float(rec.fs), spans


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mitdb", type=Path, required=True)
    p.add_argument("--nstdb", type=Path)
    ns = p.parse_args()
    hours, outside, inside, judged_inside = 0.0, 0, 0, 0
    for name in find_records(ns.mitdb):
        x, fs, spans = read(ns.mitdb / name)
        hours += x.shape[0] / fs / 3600
        judged = verdicts(x[:, 0], x[:, 1], fs)
        seconds = [(lo / fs, hi / fs) for lo, hi in spans]
        for lo, hi in seconds:
            hit = [t for t in raises(judged, fs) if lo <= t <= hi + CFG.window_s]
            print(f"{name} episode {lo:.1f}-{hi:.1f} s: "
                  + (f"vf raised {hit[0] - lo:+.1f} s after onset" if hit else "MISSED"))
        for j, _ in judged:
            if any(lo <= j.end - round(CFG.window_s * fs) and j.end <= hi for lo, hi in spans):
                inside += 1
                judged_inside += j.vf
        stray = [t for t in raises(judged, fs) if not any(lo <= t <= hi + CFG.window_s for lo, hi in seconds)]
        outside += len(stray)
        if stray:
            print(f"{name}: vf raised outside the episodes at {', '.join(f'{t:.1f}' for t in stray)} s")
    print(f"MIT-BIH: {hours:.1f} h, {outside} raises outside the episodes; {judged_inside} of {inside} windows "
          "wholly inside an episode judged VF on the primary lead alone")
    if ns.nstdb is not None:
        noise_h, noise_raises = 0.0, 0
        for name in ("118e00", "118e12", "118e24", "bw", "ma"):
            if not (ns.nstdb / f"{name}.hea").is_file():
                continue
            x, fs, _ = read(ns.nstdb / name)
            noise_h += x.shape[0] / fs / 3600
            for a, b in ((0, 1), (1, 0)):
                noise_raises += len(raises(verdicts(x[:, a], x[:, b], fs), fs))
        print(f"noise stress: {noise_h:.1f} h, each lead as the primary: {noise_raises} raises")


if __name__ == "__main__":
    main()
