"""The gateway's systemd unit for Raspberry Pi OS and Debian, hardened: a pure function of a few choices.

Why these settings:
- ``Type=notify`` with ``WatchdogSec``: systemd knows when the gateway is up, and restarts it when
  its event loop stops answering (:mod:`cardiogate.edge.service_notify` sends the keep-alives).
- A dedicated system user in the ``bluetooth`` group: BlueZ's D-Bus policy admits that group, so
  bleak reaches bluetoothd with no capability at all. Only a raw HCI adapter (bumble on a USB
  dongle, ``hci_raw``) needs ``CAP_NET_RAW`` and ``CAP_NET_ADMIN``, and the devices.
- The file system is read-only but for the state directory (outbox, identity, models), which
  only the gateway's user can read (``UMask=0077``, ``StateDirectoryMode=0700``).
- Logs go to journald; ``--log-format json`` keeps them structured there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "cardiogate-gateway.service"


@dataclass(frozen=True, slots=True)
class UnitOptions:
    """What differs between installs."""

    executable: Path                  # the `cardiogate` entry point (absolute)
    config: Path                      # the gateway TOML
    user: str = "cardiogate"
    state_dir: str = "cardiogate"     # under /var/lib: the outbox, identity and models
    watchdog_s: int = 30
    hci_raw: bool = False             # raw HCI sockets (bumble on a USB dongle) instead of BlueZ over D-Bus
    after_broker: str | None = "mosquitto.service"

    def __post_init__(self) -> None:
        if not self.executable.is_absolute() or not self.config.is_absolute():
            raise ValueError("the executable and config paths must be absolute")
        if not self.user or not self.user.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"not a user name: {self.user!r}")
        if not 5 <= self.watchdog_s <= 600:
            raise ValueError("the watchdog must be between 5 and 600 seconds")
        if "/" in self.state_dir or not self.state_dir:
            raise ValueError("state_dir is one directory name under /var/lib")


def render_unit(o: UnitOptions) -> str:
    """The unit file's text."""
    after = ["network-online.target", "bluetooth.service"] + ([o.after_broker] if o.after_broker else [])
    command = shlex.join([str(o.executable), "--log-format", "json", "gateway", "run", "--config", str(o.config)])
    families = "AF_UNIX AF_INET AF_INET6 AF_NETLINK" + (" AF_BLUETOOTH" if o.hci_raw else "")
    caps = "CAP_NET_RAW CAP_NET_ADMIN" if o.hci_raw else ""
    lines = [
        "[Unit]",
        "Description=cardiogate gateway (wearables over BLE -> local alarms on MQTT -> outbox -> cloud)",
        f"Wants={' '.join(after[:2])}",
        f"After={' '.join(after)}",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"WatchdogSec={o.watchdog_s}",
        f"ExecStart={command}",
        "Restart=always",
        "RestartSec=2",
        "TimeoutStopSec=20",
        f"User={o.user}",
        f"Group={o.user}",
        "SupplementaryGroups=bluetooth",
        f"StateDirectory={o.state_dir}",
        "StateDirectoryMode=0700",
        f"WorkingDirectory=/var/lib/{o.state_dir}",
        "UMask=0077",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=cardiogate-gateway",
        # least privilege
        f"CapabilityBoundingSet={caps}",
        f"AmbientCapabilities={caps}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        f"PrivateDevices={'no' if o.hci_raw else 'yes'}",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        f"RestrictAddressFamilies={families}",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)
