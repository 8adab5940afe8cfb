"""CinC 2017 records: ``REFERENCE.csv`` plus ``training2017/*.mat``, as a folder or the tarball.

Records are read straight from the tarball, so the data never has to be extracted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.io import loadmat  # type: ignore[import-untyped]

RECORD_RATE_HZ = 300.0
"""Sample rate of every CinC 2017 record (AliveCor, single lead, 1000 ADU per mV)."""


@dataclass(frozen=True)
class Record:
    name: str
    label: str
    ecg: NDArray[np.int16]
    fs: float = RECORD_RATE_HZ


def _tarball(data: Path) -> Path | None:
    if data.is_file() and data.name.endswith((".tar.gz", ".tgz", ".tar")):
        return data
    for candidate in ("training2017.tar.gz", "training2017.tgz", "training2017.tar"):
        if (data / candidate).is_file():
            return data / candidate
    return None


def reference_path(data: Path) -> Path:
    """REFERENCE.csv beside the tarball, at the top of the folder, or inside training2017/."""
    base = data.parent if data.is_file() else data
    for candidate in (base / "REFERENCE.csv", base / "training2017" / "REFERENCE.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no REFERENCE.csv under {base}")


def read_reference(data: Path) -> dict[str, str]:
    """Record name -> label, in file order."""
    with reference_path(data).open(newline="", encoding="utf-8") as fh:
        return {row[0].strip(): row[1].strip() for row in csv.reader(fh) if len(row) >= 2}


def reference_sha256(data: Path) -> str:
    return hashlib.sha256(reference_path(data).read_bytes()).hexdigest()


def _decode(blob: bytes) -> NDArray[np.int16]:
    return np.asarray(loadmat(io.BytesIO(blob))["val"], dtype=np.int16).ravel()


def iter_records(data: Path, names: set[str] | None = None) -> Iterator[Record]:
    """Labelled records (optionally only ``names``), from the folder or the tarball."""
    labels = read_reference(data)
    wanted = set(labels) if names is None else set(labels) & names
    tar = _tarball(data)
    if tar is not None:
        with tarfile.open(tar, "r:*") as tf:
            for member in tf:
                name = Path(member.name).stem
                if member.isfile() and member.name.endswith(".mat") and name in wanted:
                    fh = tf.extractfile(member)
                    if fh is not None:
                        yield Record(name, labels[name], _decode(fh.read()))
        return
    folder = data / "training2017" if (data / "training2017").is_dir() else data
    for name in labels:
        path = folder / f"{name}.mat"
        if name in wanted and path.is_file():
            yield Record(name, labels[name], _decode(path.read_bytes()))


def load_records(data: Path, names: set[str] | None = None) -> list[Record]:
    """All wanted records, sorted by name so every run sees the same order."""
    return sorted(iter_records(data, names), key=lambda r: r.name)
