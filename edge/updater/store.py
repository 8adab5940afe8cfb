"""The gateway's model directory, crash-safe at every step.

Layout under ``<models_dir>/<model>/``::

    current            the live version (one line), replaced only by rename
    last_good          the version live before it: where a failed boot falls back to
    state.json         the updater's own state (what it is fetching, shadowing, refused)
    partial/<v>.part   a download in progress; its length is the resume offset
    staging/           half-assembled version folders; deleted on start
    versions/<v>/      complete, verified versions: the artifact, the signed manifest and
                       the plain manifest cardiogate.edge.inference reads (``<artifact>.json``)

Every file is written to a temporary name, fsynced, renamed, and its folder fsynced, so
a SIGKILL or power cut leaves either the old or the new state, never a torn one; and on
start every pointer is re-verified (signature, size, SHA-256) before it is believed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cardiogate.core.logs import get_logger
from cardiogate.edge.updater.manifest import Manifest, Refusal, TrustedKeys, verify_artifact, verify_manifest
from cardiogate.edge.updater.versioning import parse_version
from cardiogate.proto.contracts import RefusalCode

log = get_logger(__name__)

SIGNED_MANIFEST = "manifest.signed.json"
Step = Callable[[str], None]


def _no_step(_name: str) -> None:
    return None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename over ``path``, fsync the folder: all or nothing, even on power loss."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class ModelStore:
    """One model line's files on disk."""

    def __init__(self, root: Path, trusted: TrustedKeys) -> None:
        self.root = root
        self.trusted = trusted
        for sub in ("partial", "staging", "versions"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    # -- pointers -----------------------------------------------------------------------------
    def read_pointer(self, name: str) -> str | None:
        try:
            text = (self.root / name).read_text(encoding="ascii").strip()
            parse_version(text)
            return text
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    def write_pointer(self, name: str, version: str) -> None:
        parse_version(version)
        write_atomic(self.root / name, f"{version}\n".encode("ascii"))

    @property
    def current(self) -> str | None:
        return self.read_pointer("current")

    @property
    def last_good(self) -> str | None:
        return self.read_pointer("last_good")

    # -- state --------------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.root / "state.json").read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.root / "state.json", json.dumps(state, sort_keys=True).encode("utf-8"))

    # -- downloads ----------------------------------------------------------------------------
    def partial_path(self, version: str) -> Path:
        parse_version(version)
        return self.root / "partial" / f"{version}.part"

    def partial_size(self, version: str) -> int:
        try:
            return self.partial_path(version).stat().st_size
        except FileNotFoundError:
            return 0

    def write_chunk(self, version: str, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` (never past the end), fsync, return the new length."""
        path = self.partial_path(version)
        size = self.partial_size(version)
        if offset > size:
            raise ValueError(f"chunk at {offset} would leave a hole after {size} bytes")
        with path.open("r+b" if path.exists() else "wb") as fh:
            fh.seek(offset)
            fh.write(data)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
        return offset + len(data)

    def discard_partial(self, version: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.partial_path(version).unlink()

    # -- versions -----------------------------------------------------------------------------
    def version_dir(self, version: str) -> Path:
        parse_version(version)
        return self.root / "versions" / version

    def artifact_path(self, manifest: Manifest) -> Path:
        return self.version_dir(manifest.version) / manifest.artifact_name

    def installed(self, version: str) -> Manifest | None:
        """The version's manifest if its files are complete, signed by a trusted key and intact."""
        folder = self.version_dir(version)
        try:
            manifest = verify_manifest((folder / SIGNED_MANIFEST).read_bytes(), self.trusted)
            if manifest.version != version:
                raise Refusal(RefusalCode.MALFORMED, f"folder {version} holds version {manifest.version}")
            verify_artifact(folder / manifest.artifact_name, manifest)
            return manifest
        except (OSError, Refusal) as exc:
            if folder.exists():
                log.warning("installed model version is not usable", folder=str(folder), error=str(exc))
            return None

    def installed_versions(self) -> list[str]:
        found = []
        for folder in (self.root / "versions").iterdir():
            with contextlib.suppress(ValueError):
                parse_version(folder.name)
                found.append(folder.name)
        return found

    def stage(self, manifest: Manifest, step: Step = _no_step) -> Path:
        """Move the verified download into ``versions/<v>/`` with its manifests, atomically."""
        final = self.version_dir(manifest.version)
        tmp = self.root / "staging" / f"{manifest.version}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        os.replace(self.partial_path(manifest.version), tmp / manifest.artifact_name)
        step("stage:artifact_moved")
        write_atomic(tmp / SIGNED_MANIFEST, manifest.envelope)
        write_atomic(tmp / f"{manifest.artifact_name}.json",
                     json.dumps(dict(manifest.body), indent=2, sort_keys=True).encode("utf-8"))
        with (tmp / manifest.artifact_name).open("rb") as fh:
            os.fsync(fh.fileno())
        fsync_dir(tmp)
        step("stage:files_written")
        if final.exists():  # a stale, unusable copy (installed() said no): never the live one
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        fsync_dir(tmp.parent)
        fsync_dir(self.root / "partial")
        step("stage:done")
        return final

    def switch(self, version: str, step: Step = _no_step) -> None:
        """Make ``version`` live: first remember the live one as last good, then replace ``current``."""
        live = self.current
        if live is not None and live != version:
            self.write_pointer("last_good", live)
        step("switch:last_good_written")
        self.write_pointer("current", version)
        step("switch:current_written")

    def remove(self, version: str) -> None:
        """Delete a version that is neither live nor the last good one (a discarded candidate)."""
        if version in (self.current, self.last_good):
            return
        shutil.rmtree(self.version_dir(version), ignore_errors=True)
        self.discard_partial(version)

    def recover(self) -> str | None:
        """On start: drop half-staged folders and re-verify ``current``; if it is unusable fall
        back to ``last_good``, then to the newest intact version; returns the live version."""
        for leftover in (self.root / "staging").iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        for stray in self.root.glob(".*.tmp"):
            stray.unlink(missing_ok=True)
        live = self.current
        if live is not None and self.installed(live) is not None:
            return live
        candidates = [v for v in (self.last_good,) if v is not None and v != live]
        candidates += sorted((v for v in self.installed_versions() if v not in (live, *candidates)),
                             key=parse_version, reverse=True)
        for version in candidates:
            if self.installed(version) is not None:
                log.error("live model unusable; falling back", model=self.root.name, was=live, now=version)
                self.write_pointer("current", version)
                return version
        if live is not None:
            log.error("no usable model version on disk", model=self.root.name, was=live)
        return None
