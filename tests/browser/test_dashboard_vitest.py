"""The dashboard's own unit tests (Vitest): the ECG renderer's sample-to-pixel mapping and grid, the ward's
alarm ordering, token decoding. Run here so the one test command covers them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cardiogate.cloud.api.dashboard import REPO_DASHBOARD

pytestmark = [pytest.mark.browser]


def test_the_dashboards_vitest_suite_passes(dashboard_dist: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm (Node.js 20) is needed for the dashboard's tests"
    result = subprocess.run([npm, "test", "--silent"], cwd=REPO_DASHBOARD, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert " passed" in result.stdout + result.stderr and " failed" not in result.stdout + result.stderr
