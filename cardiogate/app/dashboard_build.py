"""Build the web dashboard once, and again only when its sources change.

``npm ci`` installs exactly the committed lockfile (only when the lockfile changed since the
last install), ``npm run build`` type-checks and bundles into ``dashboard/dist``. A digest of
every source file is written beside the build; while it matches, the build is reused, so
``cardiogate demo`` and the browser tests start at once after the first time.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from cardiogate.cloud.api.dashboard import REPO_DASHBOARD
from cardiogate.core.errors import PermanentError

STAMP = ".source-digest"
INSTALL_STAMP = ".lock-digest"
_SOURCES = ("package.json", "package-lock.json", "index.html", "tsconfig.json", "vite.config.ts", "src", "public")


class DashboardBuildError(PermanentError):
    """npm is missing, or installing or building the dashboard failed (the output says why)."""


def source_digest(folder: Path = REPO_DASHBOARD) -> str:
    """SHA-256 over the names and bytes of every source file, in a stable order."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        path = folder / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        for file in files:
            digest.update(file.relative_to(folder).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def ensure_built(folder: Path = REPO_DASHBOARD, say: Callable[[str], None] = print) -> Path:
    """The built ``dist`` folder, building it first when missing or out of date; raises DashboardBuildError."""
    dist = folder / "dist"
    wanted = source_digest(folder)
    stamp = dist / STAMP
    if (dist / "index.html").is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise DashboardBuildError("the web dashboard needs Node.js 20 and npm to build (not found on PATH)")
    lock = _digest_of(folder / "package-lock.json")
    installed = folder / "node_modules" / INSTALL_STAMP
    if not installed.is_file() or installed.read_text().strip() != lock:
        say("dashboard: installing its packages from the lockfile (npm ci) ...")
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], folder)
        installed.write_text(lock)
    say("dashboard: building (npm run build) ...")
    _run([npm, "run", "build", "--silent"], folder)
    if not (dist / "index.html").is_file():
        raise DashboardBuildError(f"the build finished without {dist / 'index.html'}")
    stamp.write_text(wanted)
    return dist


def _run(command: list[str], folder: Path) -> None:
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise DashboardBuildError(f"{' '.join(command[1:])} failed in {folder} (exit {result.returncode}):\n{tail}")
