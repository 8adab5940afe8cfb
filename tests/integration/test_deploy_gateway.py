"""Gateways in production: the hardened systemd unit (checked by systemd itself), `gateway install-service`'s
refusals, a real gateway process speaking the notify protocol, and the balena files agreeing with the tree."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardiogate.app.cli import build_parser
from cardiogate.edge.service_unit import UnitOptions, render_unit
from cardiogate.edge.settings import load_gateway_settings
from tests.conftest import REPO

pytestmark = [pytest.mark.ops, pytest.mark.timeout(120)]

BALENA = REPO / "deploy" / "balena"
CLI = [sys.executable, "-m", "cardiogate"]


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text('gateway_id = "gw-svc"\nsite = "ward-9"\n[uplink]\ntls = false\ntarget = "127.0.0.1:1"\n'
                    '[outbox]\npath = "outbox.sqlite3"\n' + extra, encoding="utf-8")
    return path


def _verify(unit: Path) -> str:
    """systemd-analyze's complaints about a unit (it exits 0 on most of them, so the text is the verdict)."""
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    return (result.stdout + result.stderr).strip() if result.returncode == 0 else f"rc={result.returncode} " + \
        result.stderr


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@needs_systemd
@pytest.mark.parametrize("hci_raw", [False, True])
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path, hci_raw: bool) -> None:
    unit = tmp_path / "cardiogate-gateway.service"
    unit.write_text(render_unit(UnitOptions(executable=Path(sys.executable), config=_config(tmp_path),
                                            hci_raw=hci_raw)))
    assert _verify(unit) == ""
    # the check is real: a typo in a hardening option is reported
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps"))
    assert "Failed to parse boolean value, ignoring: perhaps" in _verify(broken)


def test_the_unit_grants_no_capability_unless_raw_hci_is_asked_for(tmp_path: Path) -> None:
    dbus = render_unit(UnitOptions(executable=Path(sys.executable), config=_config(tmp_path)))
    raw = render_unit(UnitOptions(executable=Path(sys.executable), config=_config(tmp_path), hci_raw=True))
    assert "CapabilityBoundingSet=\n" in dbus and "AmbientCapabilities=\n" in dbus
    assert "PrivateDevices=yes" in dbus and "AF_BLUETOOTH" not in dbus
    assert "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN" in raw and "PrivateDevices=no" in raw
    for unit in (dbus, raw):
        for line in ("Type=notify", "WatchdogSec=30", "User=cardiogate", "SupplementaryGroups=bluetooth",
                     "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=cardiogate", "UMask=0077"):
            assert line in unit.splitlines(), line


def test_install_service_writes_the_unit_and_refuses_what_would_break_it(tmp_path: Path) -> None:
    units = tmp_path / "units"
    config = _config(tmp_path)
    base = [*CLI, "gateway", "install-service", "--config", str(config), "--unit-dir", str(units)]
    done = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unit = (units / "cardiogate-gateway.service").read_text()
    assert re.search(r"^ExecStart=.*cardiogate --log-format json gateway run --config " + re.escape(str(config)),
                     unit, re.M)
    assert oct((units / "cardiogate-gateway.service").stat().st_mode & 0o777) == "0o644"

    again = subprocess.run([*base, "--watchdog", "60"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "--force" in again.stderr
    assert "WatchdogSec=30" in (units / "cardiogate-gateway.service").read_text(), "replaced without --force"

    (tmp_path / "x").mkdir()
    outside = _config(tmp_path / "x", '[state]\npairings_path = "/home/pi/pairings.json"\n')
    refused = subprocess.run([*CLI, "gateway", "install-service", "--config", str(outside), "--unit-dir",
                              str(tmp_path / "other")], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "state.pairings_path = /home/pi/pairings.json" in refused.stderr
    assert not (tmp_path / "other").exists()

    relative = subprocess.run([*CLI, "gateway", "install-service", "--config", "gateway.toml", "--print"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert relative.returncode == 0, relative.stderr
    assert f"--config {config}" in relative.stdout, "the unit must name the config by its absolute path"


def test_a_real_gateway_reports_ready_status_keep_alives_and_stopping(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
        proc = subprocess.Popen([*CLI, "gateway", "run", "--config", str(_config(tmp_path))], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        messages: list[str] = []
        try:
            while sum(m == "WATCHDOG=1" for m in messages) < 3:
                messages.append(sock.recv(4096).decode())
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while not messages[-1].startswith("STOPPING=1") and time.monotonic() < deadline:
                messages.append(sock.recv(4096).decode())
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ready = [m for m in messages if m.startswith("READY=1")]
    assert len(ready) == 1, messages
    assert "STATUS=0/0 devices connected, outbox 0 records, uplink down" in ready[0]
    assert f"MAINPID={proc.pid}" in ready[0]
    assert messages.index(ready[0]) <= 1, "the gateway said it was ready only after its first keep-alives"
    assert messages[-1].startswith("STOPPING=1")


def _balena_command(text: str) -> list[str]:
    match = re.search(r'^CMD \[(.*)\]$', text, re.M)
    assert match, "the Dockerfile has an exec-form CMD"
    return [part.strip().strip('"') for part in match.group(1).split(",")]


def test_balena_image_entrypoint_and_config_paths_exist_in_the_tree() -> None:
    dockerfile = (BALENA / "gateway" / "Dockerfile.template").read_text()
    compose = (BALENA / "docker-compose.yml").read_text()
    command = _balena_command(dockerfile)
    # the compose file runs the same command as the image
    assert 'command: ["' + '", "'.join(command) + '"]' in compose
    # the command is a real subcommand with real options
    pyproject = (REPO / "pyproject.toml").read_text()
    assert command[0] == "cardiogate" and 'cardiogate = "cardiogate.app.cli:main"' in pyproject
    ns = build_parser().parse_args(command[1:])
    assert ns.func.__name__ == "_cmd_gateway_run"
    config = Path(ns.config)
    # the config lives on the data volume, which is the working directory
    assert re.search(r"^WORKDIR " + re.escape(str(config.parent)) + "$", dockerfile, re.M)
    assert f"gateway-data:{config.parent}" in compose
    # what the build copies and installs exists in the staged tree (the repository root)
    assert "COPY app/ /app/" in dockerfile and '"/app[edge]"' in dockerfile and "-c constraints.txt" in dockerfile
    assert (REPO / "pyproject.toml").is_file() and (REPO / "constraints.txt").is_file()
    assert re.search(r"^edge = \[", (REPO / "pyproject.toml").read_text(), re.M)
    assert "app/" in (BALENA / "gateway" / ".gitignore").read_text()
    # the example config loads, and every path in it stays on the volume
    example = load_gateway_settings(BALENA / "gateway" / "gateway.example.toml")
    for path in (example.outbox.path, example.uplink.identity_dir, example.state.pairings_path,
                 example.updater.models_dir, example.updater.trusted_keys):
        assert not path.is_absolute() or path.is_relative_to(config.parent), path
    assert example.mqtt.host == "127.0.0.1" and '"127.0.0.1:1883:1883"' in compose
