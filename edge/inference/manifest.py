"""Artifact manifests: what a model expects and what file it must be.

A manifest sits beside its artifact as ``<artifact>.json``. The gateway checks the
artifact's size and sha256 against it before handing the bytes to a runtime, and takes
the input spec (shape and preprocessing) from it, never from code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardiogate.core.artifacts import sha256_file
from cardiogate.edge.inference.errors import ModelLoadError
from cardiogate.edge.inference.preprocess import check_spec


@dataclass(frozen=True)
class ArtifactManifest:
    name: str
    version: str
    task: str
    classes: tuple[str, ...]
    input_name: str
    input_shape: tuple[int, ...]
    preprocess: dict[str, Any]
    sha256: str
    size_bytes: int
    artifact: str
    training_data_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def manifest_path_for(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")


def load_manifest(path: Path) -> ArtifactManifest:
    """Parse and check a manifest; any defect is a ``ModelLoadError('manifest_invalid')``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError("missing_file", "manifest not found", path) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError("manifest_invalid", f"unreadable manifest: {exc}", path) from exc
    try:
        spec = raw["input"]
        check_spec(spec["preprocess"])
        known = {"name", "version", "task", "classes", "input", "sha256", "size_bytes", "artifact",
                 "training_data_hash", "metrics"}
        manifest = ArtifactManifest(
            name=str(raw["name"]), version=str(raw["version"]), task=str(raw["task"]),
            classes=tuple(str(c) for c in raw["classes"]), input_name=str(spec["name"]),
            input_shape=tuple(int(d) for d in spec["shape"]), preprocess=dict(spec["preprocess"]),
            sha256=str(raw["sha256"]), size_bytes=int(raw["size_bytes"]), artifact=str(raw["artifact"]),
            training_data_hash=str(raw.get("training_data_hash", "")), metrics=dict(raw.get("metrics", {})),
            extra={k: v for k, v in raw.items() if k not in known},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelLoadError("manifest_invalid", f"bad or missing field: {exc}", path) from exc
    if manifest.input_shape[-1] != int(manifest.preprocess["window_samples"]) or not manifest.classes:
        raise ModelLoadError("manifest_invalid", "input shape disagrees with the preprocessing window", path)
    return manifest


def verify_artifact(artifact: Path, manifest: ArtifactManifest) -> None:
    """Size and sha256 must match the manifest, so a truncated or swapped file never reaches a runtime."""
    try:
        size = artifact.stat().st_size
    except FileNotFoundError as exc:
        raise ModelLoadError("missing_file", "artifact not found", artifact) from exc
    if size != manifest.size_bytes:
        raise ModelLoadError("checksum_mismatch", f"size {size} != manifest {manifest.size_bytes}", artifact)
    if sha256_file(artifact) != manifest.sha256:
        raise ModelLoadError("checksum_mismatch", "sha256 differs from the manifest", artifact)
