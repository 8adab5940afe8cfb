"""A compact cache of CinC 2017 records already at the model rate, for training away from the data.

The records are preprocessed once (``to_model_rate``: resample, band-pass, robust
normalisation) and stored as int16 at ``SCALE`` counts per normalised unit. Normalised
values are clipped to +-8 by the spec, so int16 holds them with a resolution of 1/4000 of
the 99th-percentile amplitude, far below the noise of a wearable lead. The cache is a
plain ``.npz`` (no pickle) and carries the spec and REFERENCE.csv's hash, so a cache made
with another spec or other labels is refused rather than silently trained on.

    python -m cardiogate.models.rhythm.cache --data ../shared/data/cinc2017 --out cinc2017-125hz.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardiogate.models.rhythm.data import iter_records, read_reference, reference_sha256
from cardiogate.models.rhythm.preprocess import to_model_rate
from cardiogate.models.rhythm.spec import default_spec

SCALE = 4000.0
"""int16 counts per normalised unit; the spec's clip (8) times this stays inside int16."""


class CacheMismatch(ValueError):
    """The cache was made with another preprocessing spec or another REFERENCE.csv."""


@dataclass(frozen=True)
class SignalSet:
    """Preprocessed records at the model rate, with their labels and provenance."""

    signals: dict[str, NDArray[np.float64]]
    labels: dict[str, str]
    reference_sha256: str
    spec: dict[str, Any]


def build(data: Path, spec: dict[str, Any] | None = None, progress: bool = True) -> SignalSet:
    """Read and preprocess every labelled record (folder or tarball)."""
    spec = spec or default_spec()
    labels = read_reference(data)
    signals: dict[str, NDArray[np.float64]] = {}
    began = time.perf_counter()
    for i, record in enumerate(iter_records(data), start=1):
        signals[record.name] = to_model_rate(record.ecg, record.fs, spec)
        if progress and i % 1000 == 0:
            print(f"  {i} records preprocessed ({time.perf_counter() - began:.0f}s)", flush=True)
    return SignalSet(signals, {n: labels[n] for n in signals}, reference_sha256(data), spec)


def save(dataset: SignalSet, path: Path) -> Path:
    names = sorted(dataset.signals)
    lengths = np.asarray([dataset.signals[n].size for n in names], dtype=np.int64)
    clip = float(dataset.spec["normalise"]["clip"])
    if clip * SCALE > np.iinfo(np.int16).max:
        raise ValueError(f"clip {clip} x scale {SCALE} does not fit int16")
    flat = np.concatenate([dataset.signals[n] for n in names]) if names else np.zeros(0)
    samples = np.round(flat * SCALE).astype(np.int16)
    meta = {"spec": dataset.spec, "reference_sha256": dataset.reference_sha256, "scale": SCALE}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, names=np.asarray(names), labels=np.asarray([dataset.labels[n] for n in names]),
                        lengths=lengths, samples=samples, meta=np.asarray(json.dumps(meta, sort_keys=True)))
    return path


def load(path: Path, spec: dict[str, Any] | None = None, reference: str | None = None) -> SignalSet:
    """Read a cache; CacheMismatch when its spec or labels are not the ones expected."""
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        names = [str(n) for n in npz["names"]]
        labels = [str(label) for label in npz["labels"]]
        lengths = npz["lengths"]
        samples = npz["samples"].astype(np.float64) / float(meta["scale"])
    expected = spec or default_spec()
    if meta["spec"] != expected:
        raise CacheMismatch(f"{path} was preprocessed with another spec: {meta['spec']} != {expected}")
    if reference is not None and meta["reference_sha256"] != reference:
        raise CacheMismatch(f"{path} was built from another REFERENCE.csv ({meta['reference_sha256'][:12]})")
    if int(lengths.sum()) != samples.size or len(names) != len(labels) != lengths.size:
        raise CacheMismatch(f"{path} is inconsistent: lengths do not add up to the samples")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    signals = {n: samples[bounds[i]:bounds[i + 1]] for i, n in enumerate(names)}
    return SignalSet(signals, dict(zip(names, labels, strict=True)), str(meta["reference_sha256"]), meta["spec"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cardiogate.models.rhythm.cache", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with REFERENCE.csv + training2017/, or the tarball")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    ns = p.parse_args(argv)
    dataset = build(ns.data)
    save(dataset, ns.out)
    print(f"{len(dataset.signals)} records -> {ns.out} ({ns.out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
