"""``cardiogate eval``: score our DSP against public annotated data, beside a reference implementation.

Only argparse lives here, so building the command line never imports numpy, wfdb or
NeuroKit2; each subcommand imports its module when it runs: ``rpeaks`` (our streaming
detector vs NeuroKit2 on WFDB beat annotations) and ``rhythm`` (the shipped rhythm model
artifacts on CinC 2017-style data) and ``alarms`` (the alarm path on simulated patients).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _cmd_eval_rpeaks(ns: argparse.Namespace) -> int:
    from cardiogate.app.evaluation.rpeaks import run_cli

    return run_cli(ns)


def _records(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of record names")
    return names


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` group to the top-level subparsers; return the group's parser."""
    ev: argparse.ArgumentParser = subparsers.add_parser(
        "eval", help="score the edge DSP and models on annotated public data (needs the [eval] extra)")
    esub = ev.add_subparsers(dest="eval_command", required=True, metavar="EVALUATION")
    add_rpeaks_parser(esub)
    rh: argparse.ArgumentParser = esub.add_parser(
        "rhythm", add_help=False, help="the shipped rhythm models (fp32, int8, tflite) on CinC 2017-style data")
    rh.add_argument("args", nargs=argparse.REMAINDER, help="see `cardiogate eval rhythm --help`")
    rh.set_defaults(func=_cmd_eval_rhythm)
    al: argparse.ArgumentParser = esub.add_parser(
        "alarms", add_help=False, help="the alarm path on simulated patients: delays on critical events, false alarms")
    al.add_argument("args", nargs=argparse.REMAINDER, help="see `cardiogate eval alarms --help`")
    al.set_defaults(func=_cmd_eval_alarms)
    return ev


def _cmd_eval_alarms(ns: argparse.Namespace) -> int:
    from cardiogate.app.evaluation.alarms import main

    return main(list(ns.args))


def _cmd_eval_rhythm(ns: argparse.Namespace) -> int:
    from cardiogate.app.evaluation.rhythm import main

    return main(list(ns.args))


def add_rpeaks_parser(esub: Any) -> argparse.ArgumentParser:
    """``eval rpeaks``."""
    rp: argparse.ArgumentParser = esub.add_parser(
        "rpeaks", help="R-peak detection on WFDB records with beat annotations (e.g. MIT-BIH), vs NeuroKit2",
        description="Run our streaming R-peak detector (fed in chunks, as on the gateway) and NeuroKit2 "
                    "('neurokit' clean + peaks) on the first channel of every WFDB record with .atr beat "
                    "annotations in DIR; match detections one-to-one, nearest first, to the reference beats "
                    "(symbols N L R B A a J S V r F e j n E / f Q ?) within the window; report Se, +P and F1 "
                    "from TP/FP/FN summed over records, and single-core throughput.")
    rp.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder with WFDB records (.hea/.dat/.atr)")
    rp.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    rp.add_argument("--records", type=_records, default=None, metavar="A,B,...", help="only these records")
    rp.add_argument("--window-ms", type=float, default=150.0, help="matching tolerance (default 150 ms)")
    rp.add_argument("--chunk-s", type=float, default=1.0, help="chunk length fed to our detector (default 1 s)")
    rp.add_argument("--mains-hz", type=float, default=50.0,
                    help="our notch frequency (default 50, the gateway default; 0 disables it)")
    rp.add_argument("--no-neurokit", action="store_true", help="score only our detector")
    rp.set_defaults(func=_cmd_eval_rpeaks)
    return rp
