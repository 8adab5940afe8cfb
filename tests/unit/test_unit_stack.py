"""The local-stack launcher runs its parts on the configs it writes, whatever the caller's shell says."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cardiogate.app.stack import LocalStack


def test_parts_do_not_inherit_cardiogate_settings_from_the_shell(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOGATE_SIM__LISTEN", "127.0.0.1:1")  # would move the simulator off its config's port
    monkeypatch.setenv("UNRELATED_VARIABLE", "kept")
    stack = LocalStack(tmp_path, [])
    tmp_path.mkdir(exist_ok=True)
    probe = "import os; print(sorted(k for k in os.environ if k.startswith(('CARDIOGATE_', 'UNRELATED_'))))"
    stack._spawn("probe", [sys.executable, "-c", probe], {"CARDIOGATE_TEST_HOOK": "1"})
    assert stack.procs["probe"].wait(timeout=30) == 0
    assert (tmp_path / "probe.log").read_text().strip() == "['CARDIOGATE_TEST_HOOK', 'UNRELATED_VARIABLE']"
