"""The service-manager notifications: socket naming, the watchdog's owner and period, the wire format,
and that keep-alives come from the event loop (a blocked loop sends none)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardiogate.edge.service_notify import ServiceNotifier, message, socket_address, watchdog_interval_s


def test_socket_address_accepts_paths_and_abstract_names_only() -> None:
    assert socket_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    abstract = "@/org/freedesktop/systemd1/notify"
    assert socket_address({"NOTIFY_SOCKET": abstract}) == "\0" + abstract[1:]
    assert socket_address({}) is None
    assert socket_address({"NOTIFY_SOCKET": "relative/notify"}) is None
    assert socket_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_watchdog_belongs_to_the_named_process_only() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, pid=42) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42) == 30.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"}, pid=42) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}, pid=42) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "-5"}, pid=42) is None
    assert watchdog_interval_s({}, pid=42) is None


def test_message_is_key_value_lines() -> None:
    assert message(ready=1, status="2/2 devices") == b"READY=1\nSTATUS=2/2 devices"


def test_outside_a_service_manager_nothing_is_sent() -> None:
    notifier = ServiceNotifier(env={}, pid=1)
    assert not notifier.active
    assert notifier.ready("up") is False


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.setblocking(False)
        yield sock, path


def _drain(sock: socket.socket) -> list[tuple[float, bytes]]:
    out = []
    while True:
        try:
            out.append((time.monotonic(), sock.recv(4096)))
        except BlockingIOError:
            return out


async def test_keep_alives_stop_while_the_event_loop_is_blocked(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = ServiceNotifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}, pid=1)
    assert notifier.watchdog_s == 0.2
    task = asyncio.create_task(notifier.keep_alive())
    await asyncio.sleep(0.35)  # keep-alives at 0.0, 0.1, 0.2, 0.3
    before = _drain(sock)
    time.sleep(0.6)  # noqa: ASYNC251 - a computation holding the loop: no keep-alive may be sent meanwhile
    during = _drain(sock)
    await asyncio.sleep(0.15)
    after = _drain(sock)
    task.cancel()
    assert len(before) >= 3 and all(m == b"WATCHDOG=1" for _, m in before)
    assert during == []
    assert after, "keep-alives resume once the loop runs again"
