"""Model and gateway versions: dotted integers, compared numerically.

Pre-release suffixes are refused rather than guessed at: anti-rollback depends on every
gateway agreeing which of two versions is newer.
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.10.2"`` -> ``(1, 10, 2, 0)``; ValueError for anything else."""
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        raise ValueError(f"version {text!r} is not dotted integers such as 1.2.0")
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (4 - len(parts))


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``."""
    pa, pb = parse_version(a), parse_version(b)
    return (pa > pb) - (pa < pb)
