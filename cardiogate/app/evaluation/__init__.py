"""``cardiogate eval``: score our DSP against public annotated data, beside a reference implementation.

Only argparse lives here, so building the command line never imports numpy, wfdb or
NeuroKit2; each subcommand imports its module when it runs: ``rpeaks`` (our streaming
detector vs NeuroKit2 on WFDB beat annotations) and ``rhythm`` (the shipped rhythm model
artifacts on CinC 2017-style data) and ``alarms`` (the alarm path on simulated patients)
and ``risk`` (the eICU mortality models beside APACHE IVa).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cardiogate.app.evaluation.bedside_cli import add_bedside_parser


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
        "rhythm", help="the shipped rhythm models (fp32, int8, tflite) on CinC 2017-style data",
        description=RHYTHM_DESCRIPTION)
    add_rhythm_arguments(rh)
    rh.set_defaults(func=_cmd_eval_rhythm)
    al: argparse.ArgumentParser = esub.add_parser(
        "alarms", help="the alarm path on simulated patients: delays on critical events, false alarms",
        description=ALARMS_DESCRIPTION)
    add_alarms_arguments(al)
    al.set_defaults(func=_cmd_eval_alarms)
    add_bedside_parser(esub)
    rk: argparse.ArgumentParser = esub.add_parser(
        "risk", help="the shipped eICU mortality models (teacher, gateway student) vs APACHE IVa (needs [learn])",
        description=RISK_DESCRIPTION)
    add_risk_arguments(rk)
    rk.set_defaults(func=_cmd_eval_risk)
    return ev


# The options live here, beside the other evaluations', and the modules' own `main` reuses them:
# the top-level parser then knows every option (help, errors, options in any order) without
# importing numpy or the models.
RHYTHM_DESCRIPTION = ("Score each shipped rhythm artifact (fp32, int8 ONNX, TFLite) through the gateway's own "
                      "inference path on CinC 2017-layout records (REFERENCE.csv plus training2017/*.mat or the "
                      "tarball): per-class F1, mean F1 over N/A/O, latency from the manifests.")
ALARMS_DESCRIPTION = ("Feed seeded simulated patients through the gateway's processor, ECG monitor, rhythm model "
                      "and alarm engine faster than real time: every injected critical event must alarm within "
                      "its onset delay + 1 s; physiological alarms on noisy normal rhythms are counted per "
                      "patient-hour. Exit 1 when a critical event is missed.")


RISK_DESCRIPTION = ("Score the committed eICU in-hospital mortality artifacts (HAIM-style XGBoost teacher, gateway "
                    "student) 24 h after unit admission, beside APACHE IVa's own prediction, on the same stays of an "
                    "eICU-layout folder (*.csv.gz): AUROC and AUPRC with bootstrap 95% CIs. Trains nothing.")


def add_risk_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``eval risk``."""
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="eICU-layout folder (patient.csv.gz, ...)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--artifacts", type=Path, default=None, metavar="DIR",
                   help="artifact folder (default: the shipped models/artifacts/risk)")
    p.add_argument("--split", choices=("all", "held-out"), default="all",
                   help="all: every eligible stay (default); held-out: the patients the training run held out")


def _cmd_eval_risk(ns: argparse.Namespace) -> int:
    try:
        from cardiogate.app.evaluation.risk import run_cli
    except ImportError as exc:
        print(f"cardiogate eval risk: {exc}; install the learn extra: pip install -c constraints.txt -e '.[learn]'",
              file=sys.stderr)
        return 2
    return run_cli(ns)


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {n}")
    return n


def _non_negative_int(value: str) -> int:
    return 0 if value.strip() == "0" else _positive_int(value)


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {value}")
    return x


def add_rhythm_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``eval rhythm``."""
    p.add_argument("--data", required=True, type=Path, metavar="DIR",
                   help="REFERENCE.csv + training2017/*.mat, or REFERENCE.csv + training2017.tar.gz")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the summary as JSON")
    p.add_argument("--artifacts", type=Path, default=None, metavar="DIR",
                   help="artifact folder (default: the shipped models/artifacts/rhythm)")
    p.add_argument("--split", choices=("validation", "all"), default="validation",
                   help="validation: only records the models were not trained on (split.json); all: every record")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="score only the first N selected records in the data's order (a quick check)")


def add_alarms_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``eval alarms``."""
    p.add_argument("--patients", type=_non_negative_int, default=20, metavar="N",
                   help="noisy normal patients for the false-alarm count (default 20; 0 scores critical events only)")
    p.add_argument("--minutes", type=_positive_float, default=30.0, help="simulated minutes each (default 30)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--no-model", action="store_true", help="without the rhythm model (DSP and vitals only)")


def _logging(ns: argparse.Namespace) -> None:
    """The gateway code under evaluation logs every rhythm and alarm; --log-level decides what shows."""
    from cardiogate.core.logs import setup_logging

    setup_logging(getattr(ns, "log_level", "INFO"), getattr(ns, "log_format", "console"), "eval")


def _cmd_eval_alarms(ns: argparse.Namespace) -> int:
    from cardiogate.app.evaluation.alarms import run_cli

    _logging(ns)
    return run_cli(ns)


def _cmd_eval_rhythm(ns: argparse.Namespace) -> int:
    from cardiogate.app.evaluation.rhythm import run_cli

    _logging(ns)
    return run_cli(ns)


def _windows_ms(value: str) -> list[float]:
    """``150`` or ``150,75``: matching windows in milliseconds, each a finite number above 0."""
    return [_positive_float(v) for v in _records(value)]


def add_rpeaks_parser(esub: Any) -> argparse.ArgumentParser:
    """``eval rpeaks``."""
    rp: argparse.ArgumentParser = esub.add_parser(
        "rpeaks", help="R-peak detection on WFDB records with beat annotations (e.g. MIT-BIH), vs NeuroKit2",
        description="Run our streaming R-peak detector (fed in chunks, as on the gateway) and NeuroKit2 "
                    "(clean + peaks with each of --neurokit-methods) on the first channel of every WFDB record "
                    "with .atr beat annotations in DIR; match detections one-to-one, nearest first, to the "
                    "reference beats (symbols N L R B A a J S V r F e j n E / f Q ?) within each window; report "
                    "Se, +P and F1 from TP/FP/FN summed over records, single-core throughput, and its ratio to "
                    "the fastest NeuroKit2 method timed in the same run.")
    rp.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder with WFDB records (.hea/.dat/.atr)")
    rp.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    rp.add_argument("--records", type=_records, default=None, metavar="A,B,...", help="only these records")
    rp.add_argument("--window-ms", type=_windows_ms, default=[150.0, 75.0], metavar="MS[,MS...]",
                    help="matching tolerance(s), all scored in one run; the first is the headline (default 150,75)")
    rp.add_argument("--chunk-s", type=float, default=1.0, help="chunk length fed to our detector (default 1 s)")
    rp.add_argument("--mains-hz", type=float, default=50.0,
                    help="our notch frequency (default 50, the gateway default; 0 disables it)")
    rp.add_argument("--no-neurokit", action="store_true", help="score only our detector")
    rp.add_argument("--neurokit-methods", type=_records, default=["neurokit", "pantompkins1985"], metavar="M,...",
                    help="NeuroKit2 methods to run beside ours (default neurokit,pantompkins1985)")
    rp.set_defaults(func=_cmd_eval_rpeaks)
    return rp
