"""Telling systemd how the gateway is doing: ready, status, stopping, and the watchdog.

Under ``Type=notify`` systemd starts the next unit only once the gateway says ``READY=1``, and with
``WatchdogSec=`` it restarts a gateway whose event loop stopped answering. The keep-alive is sent
from the event loop itself, by a task that sleeps for half the watchdog interval: a loop blocked
by a computation or a wedged library call stops the keep-alives, so systemd's restart follows
the fault it should (the outbox is on disk; nothing accepted is lost by the restart).

The protocol is one datagram per message on the Unix socket named in ``$NOTIFY_SOCKET`` (a path, or
an abstract name starting with ``@``), so no library is needed. Outside systemd every call is a
no-op, which keeps ``cardiogate gateway run`` the same command in a terminal, a container and a
unit.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

from cardiogate.core import metrics
from cardiogate.core.logs import get_logger

log = get_logger(__name__)

_SENT = metrics.counter("gateway_service_notifications", "Messages sent to the service manager, by kind",
                        ("kind",))
_FAILED = metrics.counter("gateway_service_notify_failures", "Messages the service manager's socket refused")


def socket_address(env: Mapping[str, str]) -> str | None:
    """The notification socket from ``$NOTIFY_SOCKET``, with ``@`` turned into Linux's abstract namespace."""
    name = env.get("NOTIFY_SOCKET", "")
    if not name or not (name.startswith("/") or name.startswith("@")):
        return None
    return "\0" + name[1:] if name.startswith("@") else name


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog period systemd expects, or None when no watchdog is set for this process.

    ``WATCHDOG_PID``, when present, names the one process the watchdog is meant for: a child the
    gateway starts must not take over the keep-alive.
    """
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1_000_000


def message(**fields: str | int) -> bytes:
    """``KEY=value`` lines, the notification format (``message(ready=1)`` -> ``b"READY=1"``)."""
    return "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()


class ServiceNotifier:
    """Sends the gateway's state to systemd when it runs under it; does nothing otherwise."""

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        self.address = socket_address(env)
        self.watchdog_s = watchdog_interval_s(env, os.getpid() if pid is None else pid)

    @property
    def active(self) -> bool:
        return self.address is not None

    def send(self, kind: str, payload: bytes) -> bool:
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, self.address)
        except OSError as exc:
            _FAILED.inc()
            log.warning("service manager notification failed", kind=kind, error=repr(exc))
            return False
        _SENT.labels(kind=kind).inc()
        return True

    def ready(self, status: str) -> bool:
        return self.send("ready", message(ready=1, status=status, mainpid=os.getpid()))

    def status(self, status: str) -> bool:
        return self.send("status", message(status=status))

    def stopping(self) -> bool:
        return self.send("stopping", message(stopping=1, status="stopping: flushing the outbox"))

    async def keep_alive(self) -> None:
        """Pet the watchdog from the event loop at half its period, for as long as the loop runs."""
        if self.address is None or self.watchdog_s is None:
            return
        period = max(0.05, self.watchdog_s / 2)
        log.info("service watchdog on", period_s=round(period, 3))
        while True:
            self.send("watchdog", message(watchdog=1))
            await asyncio.sleep(period)
