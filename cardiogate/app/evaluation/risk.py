"""``cardiogate eval risk``: score the committed eICU mortality artifacts on an eICU-layout folder.

Nothing is trained: the shipped embedding vocabulary, teacher (XGBoost JSON) and student
(JSON coefficients) from ``models/artifacts/risk`` score the stays still in the unit 24 h after
admission, beside APACHE IVa's own predicted hospital mortality, on the same stays (those with
an APACHE IVa prediction; the others are counted and left out). ``--split all`` (the default)
scores every stay of the folder, e.g. data the models never saw; ``--split held-out`` keeps the
patients the training run held out (the rule and seed are in the manifest).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cardiogate.models.haim.eicu import load_cohort
from cardiogate.models.haim.train import RiskModels, compare, held_out_ids, report


def run(data_dir: Path | str, json_path: Path | str | None = None, artifacts_dir: Path | str | None = None,
        split: str = "all", log: Callable[[str], None] = print) -> dict[str, Any]:
    log("loading the risk artifacts")
    models = RiskModels.load(Path(artifacts_dir) if artifacts_dir else None)
    log(f"reading {data_dir}")
    cohort = load_cohort(data_dir, log=log)
    if split == "held-out":
        rule = models.manifest["split"]
        ids = held_out_ids(cohort, int(models.manifest["seed"]), float(rule["holdout_fraction"]))
    else:
        ids = [s.stay_id for s in cohort.samples if s.eligible]
    log(f"scoring {len(ids)} stays ({split})")
    result = compare(cohort, ids, models)
    if not result["stays"]:
        raise FileNotFoundError(f"no eligible stay with an APACHE IVa prediction in {data_dir} ({split})")
    summary: dict[str, Any] = {**result, "split": split, "data": str(data_dir),
                               "artifacts_code_version": models.manifest.get("code_version"),
                               "prediction_offset_min": models.manifest.get("prediction_offset_min")}
    report(result, log)
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def run_cli(ns: argparse.Namespace) -> int:
    """Exit 2 when the data or the artifacts cannot be used."""
    try:
        run(ns.data, ns.json, ns.artifacts, ns.split)
    except FileNotFoundError as exc:
        print(f"cardiogate eval risk: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    from cardiogate.app.evaluation import RISK_DESCRIPTION, add_risk_arguments

    parser = argparse.ArgumentParser(prog="cardiogate eval risk", description=RISK_DESCRIPTION)
    add_risk_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
