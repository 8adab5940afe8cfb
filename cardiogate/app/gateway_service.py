"""``cardiogate gateway install-service``: write the hardened systemd unit for this gateway.

The unit itself is :func:`cardiogate.edge.service_unit.render_unit`; this shell checks what would
break it at start (a config the service cannot read, state it could not write under
``ProtectSystem=strict``), writes the file, and enables it only when asked.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from cardiogate.core.settings import ConfigError
from cardiogate.edge.service_unit import UNIT_NAME, UnitOptions, render_unit


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="the gateway TOML the service runs with (absolute)")
    p.add_argument("--user", default="cardiogate", help="the system user the gateway runs as (default cardiogate; "
                                                        "create it with `useradd --system --groups bluetooth`)")
    p.add_argument("--state-dir", default="cardiogate", help="directory under /var/lib for the outbox, identity "
                                                             "and models (default cardiogate)")
    p.add_argument("--watchdog", type=int, default=30, help="seconds without a keep-alive before systemd restarts "
                                                            "the gateway (default 30)")
    p.add_argument("--hci-raw", action="store_true", help="raw HCI sockets (a USB dongle driven by bumble) instead "
                                                          "of BlueZ over D-Bus: adds CAP_NET_RAW, CAP_NET_ADMIN and "
                                                          "the devices")
    p.add_argument("--executable", type=Path, default=None, help="the cardiogate entry point (default: the one "
                                                                 "running this command)")
    p.add_argument("--unit-dir", type=Path, default=Path("/etc/systemd/system"), help="where the unit goes")
    p.add_argument("--print", dest="print_only", action="store_true", help="print the unit, write nothing")
    p.add_argument("--force", action="store_true", help="replace a different unit already there")
    p.add_argument("--enable", action="store_true", help="then `systemctl daemon-reload` and `enable --now`")


def _executable(given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    found = shutil.which("cardiogate") or str(Path(sys.executable).with_name("cardiogate"))
    return Path(found).resolve()


def unwritable_paths(config: Path, state_root: Path) -> list[str]:
    """Absolute paths in the gateway's settings that the service could not write (read-only file system)."""
    from cardiogate.edge.settings import load_gateway_settings

    settings = load_gateway_settings(config)
    paths = {"outbox.path": settings.outbox.path, "uplink.identity_dir": settings.uplink.identity_dir,
             "state.pairings_path": settings.state.pairings_path, "updater.models_dir": settings.updater.models_dir}
    return [f"{name} = {path}" for name, path in paths.items()
            if path.is_absolute() and not path.resolve().is_relative_to(state_root)]


def run(ns: argparse.Namespace) -> int:
    config = ns.config.resolve()
    try:
        options = UnitOptions(executable=_executable(ns.executable), config=config, user=ns.user,
                              state_dir=ns.state_dir, watchdog_s=ns.watchdog, hci_raw=ns.hci_raw)
    except ValueError as exc:
        print(f"cardiogate: {exc}", file=sys.stderr)
        return 2
    if not config.is_file():
        print(f"cardiogate: no gateway config at {config}", file=sys.stderr)
        return 2
    try:
        outside = unwritable_paths(config, Path("/var/lib") / ns.state_dir)
    except ConfigError as exc:
        print(f"cardiogate: {exc}", file=sys.stderr)
        return 2
    if outside:
        print("cardiogate: the service may write only under /var/lib/" + ns.state_dir + "; make these relative "
              "(they resolve there) or move them:\n  " + "\n  ".join(outside), file=sys.stderr)
        return 2
    if not options.executable.exists():
        print(f"cardiogate: no executable at {options.executable}", file=sys.stderr)
        return 2
    text = render_unit(options)
    if ns.print_only:
        print(text, end="")
        return 0
    target = ns.unit_dir / UNIT_NAME
    if target.exists() and target.read_text() != text and not ns.force:
        print(f"cardiogate: {target} exists and differs; --force replaces it", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(target)
    print(f"wrote {target}")
    if not ns.enable:
        print(f"next: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}")
        return 0
    for args in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", UNIT_NAME]):
        result = subprocess.run(args, check=False)
        if result.returncode != 0:
            print(f"cardiogate: `{' '.join(args)}` failed with {result.returncode}", file=sys.stderr)
            return 1
    print(f"{UNIT_NAME} enabled and started; follow it with: journalctl -u {UNIT_NAME} -f")
    return 0
