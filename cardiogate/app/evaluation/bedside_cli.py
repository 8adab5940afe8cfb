"""Options of ``eval alarms-bedside`` (argparse only: the command line stays light, numpy loads when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = ("Feed CinC 2015-layout ICU alarm records (WFDB .hea/.mat plus ALARMS.csv = record,alarm,true_alarm; "
               "the alarm at 5:00) through the gateway's own processor, ECG monitor, VT check and alarm engine in "
               "chunks, using only the signal before the alarm (plus the R-peak detector's 0.37 s look-ahead). "
               "The gateway calls an alarm true when its matching alarm is raised in the last --window-s seconds. "
               "Prints per-record decisions with their reason (stderr) and a table of TP, TN, FP, FN, TPR, TNR "
               "and the challenge score (TP+TN)/(TP+TN+FP+5 FN) per alarm type and overall, with seeded 95%% "
               "bootstrap intervals over records.")


def _names(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of record names")
    return names


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {n}")
    return n


def _seconds(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < x <= 300:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 300], got {value}")
    return x


def _cmd(ns: argparse.Namespace) -> int:
    from cardiogate.app.evaluation.bedside import main

    return main(ns)


def add_bedside_parser(esub: Any) -> argparse.ArgumentParser:
    """``eval alarms-bedside``."""
    p: argparse.ArgumentParser = esub.add_parser(
        "alarms-bedside", help="the gateway's alarm path on real ICU alarms (PhysioNet/CinC 2015 layout)",
        description=DESCRIPTION)
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder with ALARMS.csv and the records")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--records", type=_names, default=None, metavar="A,B,...", help="only these records")
    p.add_argument("--window-s", type=_seconds, default=16.0,
                   help="the gateway's alarm must be raised this close before the bedside alarm (default 16)")
    p.add_argument("--chunk", type=_count, default=114, metavar="SAMPLES",
                   help="samples per ECG notification fed to the gateway (default 114)")
    p.add_argument("--vt-beats", type=int, choices=range(3, 31), default=None, metavar="N",
                   help="the VT alarm limit in ventricular beats, a per-site setting (default: the gateway's "
                        "shipped limit, 4 beats)")
    p.add_argument("--no-vt-rejection", action="store_true", help="turn the VT check off (analysis.vt_rejection)")
    p.add_argument("--mains-hz", type=float, default=60.0, help="notch frequency (default 60: US ICUs)")
    p.add_argument("--bootstrap", type=_count, default=1000, help="bootstrap resamples for the CIs (0: none)")
    p.add_argument("--seed", type=int, default=2015, help="bootstrap seed (default 2015)")
    p.set_defaults(func=_cmd)
    return p
