"""A pausable TCP relay in front of tansu, to cut Kafka off without losing its in-memory data."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from pathlib import Path


class TcpProxy:
    """A loopback TCP relay that can cut its traffic, to make a server unreachable without stopping it.

    :meth:`pause` closes every relayed connection and from then on accepts and at once
    closes new ones (clients see resets, as when a broker's host vanishes); :meth:`resume`
    relays again. One thread per direction per connection: Kafka clients hold a handful.
    """

    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self._lock = threading.Lock()
        self._paused = False
        self._closed = False
        self._conns: set[socket.socket] = set()
        self.accepted = 0
        self.refused = 0
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((host, listen_port))
        self._server.listen(64)
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{listen_port}", daemon=True)
        self._thread.start()

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            conns, self._conns = list(self._conns), set()
        for c in conns:
            self._close(c)

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def close(self) -> None:
        self._closed = True
        self.pause()
        self._thread.join(timeout=2)
        self._server.close()

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._paused:
                self.refused += 1
                self._close(client)
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                self._close(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self._paused:
                    self._close(client)
                    self._close(upstream)
                    continue
                self._conns.update((client, upstream))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            self._close(src)
            self._close(dst)


def start_tansu_advertising(port: int, advertised_port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """tansu listening on ``port`` but naming ``advertised_port`` in its metadata (a proxy in front of it),
    so clients that bootstrap through the proxy keep going through it."""
    from cardiogate.cloud.tansu import tansu_binary, wait_for_port

    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{advertised_port}", "--storage-engine", "memory://tansu/"],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_for_port("127.0.0.1", port, 20.0)
    except TimeoutError:
        proc.kill()
        raise
    return proc
