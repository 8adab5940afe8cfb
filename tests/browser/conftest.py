"""The browser tests need the dashboard built once per session (reused while its sources are unchanged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiogate.app.dashboard_build import ensure_built


@pytest.fixture(scope="session")
def dashboard_dist() -> Path:
    return ensure_built(say=lambda line: print(line, flush=True))
