"""The ground-truth log: one JSON line per thing a watch actually put on the air.

Tests and `cardiogate verify`-style tools score the gateway against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any


class GroundTruthLog:
    """Append-only JSONL writer (flushed per line so a killed run keeps what it had)."""

    def __init__(self, path: Path | None) -> None:
        self._fh: IO[str] | None = path.open("a", encoding="utf-8") if path is not None else None

    def write(self, **record: Any) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_truth(path: Path) -> list[dict[str, Any]]:
    """All records of a ground-truth log."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
