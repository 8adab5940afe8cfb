"""Process-local counters with labels, logged periodically and readable by tests and status pages."""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._counts[(name, tuple(sorted(labels.items())))] += amount

    def get(self, name: str, **labels: str) -> int:
        """The count for exactly these labels; with none given, the sum over all label sets."""
        if labels:
            return self._counts[(name, tuple(sorted(labels.items())))]
        return sum(v for (n, _), v in self._counts.items() if n == name)

    def snapshot(self) -> dict[str, int]:
        """Flat ``name{label=value,...}`` keys, Prometheus-style."""
        out = {}
        for (name, labels), value in sorted(self._counts.items()):
            suffix = ",".join(f'{k}="{v}"' for k, v in labels)
            out[f"{name}{{{suffix}}}" if suffix else name] = value
        return out
