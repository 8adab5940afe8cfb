"""Typed model failures: the gateway raises a technical alarm on these instead of crashing."""

from __future__ import annotations

from pathlib import Path

from cardiogate.core.errors import CardiogateError, PermanentError, TransientError


class ModelError(CardiogateError):
    """Any failure of an on-device model; ``reason`` is a stable code for the technical alarm."""

    def __init__(self, reason: str, detail: str, path: Path | None = None) -> None:
        where = f" ({path})" if path is not None else ""
        super().__init__(f"{reason}: {detail}{where}")
        self.reason = reason
        self.detail = detail
        self.path = path


class ModelLoadError(ModelError, PermanentError):
    """The artifact cannot be used: runtime missing, file missing/corrupt, checksum or shape mismatch.

    Reasons: ``missing_runtime``, ``missing_file``, ``unsupported_format``, ``manifest_invalid``,
    ``checksum_mismatch``, ``corrupt_artifact``, ``input_mismatch``.
    """


class InferenceError(ModelError, TransientError):
    """One inference could not run: wrong input shape, too little signal, or a runtime failure.

    Reasons: ``bad_input``, ``input_too_short``, ``runtime_failure``.
    """
