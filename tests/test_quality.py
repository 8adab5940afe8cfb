"""Quality gates run with the tests: ruff, and mypy (strict for the kernel, the app, the
gateway and the simulator; see pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.layout import link_tree


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean(tmp_path: Path) -> None:
    tree = link_tree(tmp_path / "tree")
    # every package but cardiogate.models.rhythm, whose training code needs torch (the [models] extra)
    packages = ["cardiogate.core", "cardiogate.app", "cardiogate.edge", "cardiogate.sim", "cardiogate.cloud",
                "cardiogate.proto", "cardiogate.models.haim"]
    args = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
            "--cache-dir", str(REPO / ".mypy_cache"), "-m", "cardiogate", *[a for p in packages for a in ("-p", p)]]
    result = subprocess.run(args, cwd=tree, capture_output=True, text=True)
    # name the real files, not the links
    output = (result.stdout + result.stderr).replace(str(tree) + "/", "")
    assert result.returncode == 0, output
