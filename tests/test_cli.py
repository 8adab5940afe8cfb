"""The command line: help for every subcommand, and one clear line for a bad config file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cardiogate", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["gateway", "run", "--help"],
                                  ["cloud", "run", "--help"], ["sim", "run", "--help"]])
def test_every_subcommand_explains_itself(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 0
    assert "usage: cardiogate" in result.stdout


def test_invalid_gateway_config_gives_one_line_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('gateway_id = "gw-1"\n[uplink]\nbatch_max_records = "lots"\n', encoding="utf-8")
    result = run_cli("gateway", "run", "--config", str(config))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "uplink.batch_max_records" in lines[0] and str(config) in lines[0]


def test_invalid_device_address_is_named(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[[devices]]\naddress = "not-an-address"\npatient = "pt-0001"\n', encoding="utf-8")
    result = run_cli("gateway", "run", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "devices.0.address" in result.stderr


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli("cloud", "run", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("cardiogate: configuration error: config file not found")
