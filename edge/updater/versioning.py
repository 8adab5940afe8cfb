"""Model and gateway versions: dotted integers, compared numerically.

Pre-release suffixes are refused rather than guessed at: anti-rollback depends on every
gateway agreeing which of two versions is newer.
"""

from __future__ import annotations

from cardiogate.core.artifacts import parse_version


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``."""
    pa, pb = parse_version(a), parse_version(b)
    return (pa > pb) - (pa < pb)


__all__ = ["compare_versions", "parse_version"]
