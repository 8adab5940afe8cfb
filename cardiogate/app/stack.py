"""Start a whole local system (a locked Mosquitto, tansu, cloud, simulator, gateway) as child processes.

Used by ``cardiogate demo`` and the end-to-end tests. Each child runs in its own
process group with its log in the work directory; :meth:`LocalStack.stop` ends them
all (SIGTERM, then SIGKILL) so nothing is left behind.

Operations on a running stack: :meth:`LocalStack.kill` and :meth:`LocalStack.respawn`
(SIGKILL a part, start it again with the same config), :meth:`LocalStack.stop_ingest` /
:meth:`LocalStack.start_ingest`. The fault-injection harness (a pausable Kafka relay,
outbox inspection) lives with the tests, in tests/harness.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardiogate.app.site_mqtt import MONITOR, SiteMqtt, prepare_site_mqtt, start_mosquitto
from cardiogate.core.settings import merge_tables

if TYPE_CHECKING:
    import aiomqtt


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_port_lock = threading.Lock()
_port_rng = random.Random(os.urandom(16))  # never the global generator: tests seed that one


def _listen_range() -> tuple[int, int]:
    """Ports for our listeners: outside the kernel's ephemeral range, where no outgoing connection takes one
    (below it where there is room, as with Linux's default 32768-60999; otherwise above it)."""
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE.read_text().split()[:2])
    except (OSError, ValueError):
        low, high = 32768, 60999
    return (10000, low - 1) if low > 12000 else (high + 1, 65535)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a child process to listen on, never handed out twice by this process.

    Not the kernel's ``bind(0)``: that draws from the ephemeral range, so two calls may return the same
    port, and any outgoing connection made before the child binds may take it; either way a child
    then fails to listen, or a client reaches another child's listener.
    """
    low, high = _listen_range()
    with _port_lock:
        for _ in range(500):
            port = _port_rng.randint(low, high)
            if port not in _handed_out and _bindable(port) and not port_open("127.0.0.1", port, 0.05):
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port found in {low}-{high}")


def free_port_run(n: int, attempts: int = 50) -> int:
    """The first of ``n`` consecutive free TCP ports on 127.0.0.1 (for simulator processes side by side)."""
    for _ in range(attempts):
        first = free_port()
        rest = range(first + 1, first + n)
        with _port_lock:
            if first + n < 65536 and all(port not in _handed_out and not port_open("127.0.0.1", port, 0.05)
                                         and _bindable(port) for port in rest):
                _handed_out.update(rest)
                return first
    raise RuntimeError(f"no {n} consecutive free ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A minimal TOML writer for our config files (scalars, lists, tables, arrays of tables)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        elif v is not None:
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in tables:
        name = f"{prefix}{k}"
        lines += ["", f"[{name}]", to_toml(v, name + ".")]
    for k, items in arrays:
        for item in items:
            lines += ["", f"[[{prefix}{k}]]", to_toml(item, f"{prefix}{k}.")]
    return "\n".join(lines).strip() + "\n"


def wait_for_text(path: Path, text: str, timeout_s: float, count: int = 1) -> None:
    """Block until ``text`` appears ``count`` times in the file at ``path``."""
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text(encoding="utf-8", errors="replace").count(text) >= count):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} did not appear in {path} within {timeout_s:.0f} s")
        time.sleep(0.1)


@dataclass
class Patient:
    """A simulated patient wearing one watch."""

    pseudonym: str
    address: str
    heart_rate: list[tuple[float, float]]
    seed: int
    malformed_hr_at_s: list[float] = field(default_factory=list)
    watch_extra: dict[str, Any] = field(default_factory=dict)  # more WatchSpec fields (profile, faults, ...)


@dataclass
class LocalStack:
    workdir: Path
    patients: list[Patient]
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    gateway_id: str = "gw-demo-1"
    # The locked MQTT plane: a Mosquitto of its own from `mqtt-setup` files, on a free port (or the broker
    # the caller already started for ``mqtt``); False keeps the open broker at mqtt_host:mqtt_port.
    secure_mqtt: bool = True
    mqtt: SiteMqtt | None = None
    site: str = "demo-site"
    kafka_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    air_port: int = field(default_factory=lambda: free_port_run(8))
    enroll_port: int = field(default_factory=free_port)
    gateway_metrics_port: int = field(default_factory=free_port)  # /metrics on 127.0.0.1
    cloud_metrics_port: int = field(default_factory=free_port)
    processor_metrics_port: int = field(default_factory=free_port)
    consumers_metrics_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    gateway_extra: dict[str, Any] = field(default_factory=dict)  # merged into the gateway config
    sim_extra: dict[str, Any] = field(default_factory=dict)      # merged into the simulator config
    max_connections: int = 64
    sim_processes: int = 1  # >1: the fleet is dealt over processes, one radio (gateway adapter) each
    cloud_extra: dict[str, Any] = field(default_factory=dict)    # merged into the cloud config
    gateway_env: dict[str, str] = field(default_factory=dict)    # extra environment of the gateway process
    # The cloud's read side: the store consumers, the stream processor and the API (off by default: most tests
    # do not need them).
    read_side: bool = False
    api_port: int = field(default_factory=free_port)

    @property
    def kafka_bootstrap(self) -> str:
        """Where Kafka clients connect."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def metrics_urls(self) -> dict[str, str]:
        """Where each process's ``/metrics`` answers (the read side's only when it runs)."""
        urls = {"gateway": f"http://127.0.0.1:{self.gateway_metrics_port}/metrics",
                "cloud": f"http://127.0.0.1:{self.cloud_metrics_port}/metrics"}
        if self.read_side:
            urls.update(processor=f"http://127.0.0.1:{self.processor_metrics_port}/metrics",
                        consumers=f"http://127.0.0.1:{self.consumers_metrics_port}/metrics",
                        api=f"{self.api_url}/metrics")
        return urls

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def outbox_path(self) -> Path:
        return self.workdir / "gateway-outbox.sqlite3"

    @property
    def cloud_db_path(self) -> Path:
        return self.workdir / "cloud.sqlite3"

    @property
    def identity_dir(self) -> Path:
        return self.workdir / "identity"

    @property
    def truth_path(self) -> Path:
        return self.workdir / "sim-truth.jsonl"

    @property
    def truth_paths(self) -> list[Path]:
        """The ground-truth files: one per simulator process."""
        if self.sim_processes == 1:
            return [self.truth_path]
        return [self.workdir / f"sim-truth.{i}.jsonl" for i in range(self.sim_processes)]

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        # The parts run on the configs written here: settings from the caller's shell (CARDIOGATE_*) would
        # override them (the environment beats the file), so they are not passed on; ``env`` is.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CARDIOGATE_")}
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**inherited, **(env or {})}, cwd=self.workdir)

    def write_configs(self) -> dict[str, Path]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self.workdir / "pki"
        cloud = {"listen": f"127.0.0.1:{self.grpc_port}", "database": str(self.cloud_db_path),
                 "kafka": {"bootstrap": self.kafka_bootstrap},
                 "pki": {"ca_cert": str(pki / "ca.crt"), "ca_key": str(pki / "ca.key"),
                         "server_cert": str(pki / "server.crt"), "server_key": str(pki / "server.key")},
                 "enrollment": {"listen": f"127.0.0.1:{self.enroll_port}"},
                 "metrics": {"listen": f"127.0.0.1:{self.cloud_metrics_port}"},
                 # A short grace: a local stack's windows close a few seconds after their end, not minutes.
                 "processor": {"state_dir": str(self.workdir / "processor-state"), "grace_s": 5.0,
                               "metrics": {"listen": f"127.0.0.1:{self.processor_metrics_port}"}},
                 "consumers": {"metrics": {"listen": f"127.0.0.1:{self.consumers_metrics_port}"}},
                 "api": {"listen": f"127.0.0.1:{self.api_port}"}}
        sim = {"listen": f"127.0.0.1:{self.air_port}", "ground_truth": str(self.truth_path),
               "watches": [{"name": f"cg-{p.pseudonym}"[:29], "address": p.address, "seed": p.seed,
                            "heart_rate": [list(k) for k in p.heart_rate],
                            "malformed_hr_at_s": p.malformed_hr_at_s, **p.watch_extra} for p in self.patients],
               **self.sim_extra}
        gateway = {"gateway_id": self.gateway_id, "site": self.site,
                   "devices": [{"address": p.address, "patient": p.pseudonym} for p in self.patients],
                   "ble": {"adapters": [{"name": f"virtual{i}", "max_connections": self.max_connections,
                                         "bumble_transport": f"tcp-client:127.0.0.1:{self.air_port + i}"}
                                        for i in range(self.sim_processes)],
                           "scan_timeout_s": 5.0, "backoff_max_s": 5.0, "connect_timeout_s": 5.0,
                           "sighting_max_age_s": 1.5},
                   "mqtt": (self.mqtt.gateway_settings(self.gateway_id) if self.mqtt is not None
                            else {"host": self.mqtt_host, "port": self.mqtt_port}),
                   "uplink": {"target": f"127.0.0.1:{self.grpc_port}", "backoff_max_s": 5.0, "server_name": "localhost",
                              "identity_dir": str(self.identity_dir)},
                   "outbox": {"path": str(self.outbox_path)},
                   "state": {"pairings_path": str(self.workdir / "gateway-pairings.json")},
                   "metrics": {"listen": f"127.0.0.1:{self.gateway_metrics_port}"}}
        gateway = merge_tables(gateway, self.gateway_extra)
        cloud = merge_tables(cloud, self.cloud_extra)
        paths = {}
        for name, data in (("cloud", cloud), ("sim", sim), ("gateway", gateway)):
            path = self.workdir / f"{name}.toml"
            path.write_text(to_toml(data), encoding="utf-8")
            paths[name] = path
        return paths

    def start(self) -> None:
        """Start every part; raises if one fails to come up."""
        from cardiogate.cloud.admin import provision_local
        from cardiogate.cloud.settings import load_cloud_settings
        from cardiogate.cloud.tansu import wait_for_port
        from cardiogate.edge.enrollment import enroll

        self.start_mqtt()
        paths = self.write_configs()
        # The local CA, the ingest's certificate, this gateway's patients and its one-time enrollment token
        # (opening the cloud database migrates it: quietly here, the parts log their own migrations).
        logging.getLogger("alembic").setLevel(logging.WARNING)
        token = provision_local(load_cloud_settings(paths["cloud"]), self.gateway_id,
                                [p.pseudonym for p in self.patients])
        if self.read_side:
            self.register_site(load_cloud_settings(paths["cloud"]).db_url)
        self.procs["tansu"] = self._start_kafka()
        py = [sys.executable, "-m", "cardiogate"]
        self._spawn("cloud", [*py, "cloud", "run", "--config", str(paths["cloud"])])
        self._spawn("sim", [*py, "sim", "run", "--config", str(paths["sim"]), "--processes", str(self.sim_processes)])
        try:
            wait_for_port("127.0.0.1", self.grpc_port, 30.0)
            wait_for_port("127.0.0.1", self.enroll_port, 30.0)
            enroll(f"127.0.0.1:{self.enroll_port}", self.gateway_id, token, self.identity_dir,
                   self.workdir / "pki" / "ca.crt", server_name="localhost")
            # Not a port probe: the virtual radio's HCI socket serves one client, and a probe's late
            # disconnect could detach the gateway that connects right after it.
            wait_for_text(self.workdir / "sim.log", "simulator: ", 30.0, count=self.sim_processes)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"the stack did not come up; see the logs in {self.workdir}") from None
        self._spawn("gateway", [*py, "gateway", "run", "--config", str(paths["gateway"])], self.gateway_env)
        if self.read_side:
            self._spawn("consumers", [*py, "cloud", "consume", "--config", str(paths["cloud"])])
            self._spawn("processor", [*py, "processor", "run", "--config", str(paths["cloud"])])
            self._spawn("api", [*py, "api", "run", "--config", str(paths["cloud"])])
            try:
                wait_for_port("127.0.0.1", self.api_port, 60.0)
                # consuming, not just started: tansu takes seconds to hand a consumer group its partitions
                wait_for_text(self.workdir / "processor.log", "processor partitions assigned", 60.0)
            except TimeoutError:
                self.stop()
                raise RuntimeError(f"the API or the processor did not come up; see {self.workdir}") from None

    def register_site(self, db_url: str) -> None:
        """The fleet registry's view of this stack: the site, its gateway and its patients (the API scopes by site),
        and one local API user per role with a random password in a 0600 file under ``api-credentials/``."""
        from cardiogate.cloud.api.run import add_api_user
        from cardiogate.cloud.registry.fleet import FleetRegistry
        from cardiogate.cloud.registry.migrate import open_database
        from cardiogate.cloud.settings import load_cloud_settings

        engine = open_database(db_url)
        try:
            fleet = FleetRegistry(engine)
            fleet.add_site(self.site)
            fleet.add_gateway(self.gateway_id, self.site)
            for p in self.patients:
                fleet.add_patient(p.pseudonym, self.site)
        finally:
            engine.dispose()
        creds = self.workdir / "api-credentials"
        creds.mkdir(mode=0o700, exist_ok=True)
        settings = load_cloud_settings(self.workdir / "cloud.toml")
        for username, role in self.api_users.items():
            password = secrets.token_urlsafe(18)
            add_api_user(settings, username, password, role, [self.site] if role in ("nurse", "clinician") else [])
            path = creds / username
            path.touch(mode=0o600)
            path.write_text(password + "\n", encoding="utf-8")

    @property
    def api_users(self) -> dict[str, str]:
        """The local API users a read-side stack creates: username -> role."""
        return {"demo-nurse": "nurse", "demo-clinician": "clinician", "demo-operator": "operator",
                "demo-admin": "admin"}

    def _start_kafka(self) -> subprocess.Popen[bytes]:
        """Start the embedded Kafka-protocol broker (tansu); subclasses may put something in front of it."""
        from cardiogate.cloud.tansu import start_tansu

        return start_tansu(self.kafka_port, log_path=self.workdir / "tansu.log")

    def start_mqtt(self) -> None:
        """The stack's own locked broker: files as `mqtt-setup` writes them, Mosquitto on a free port."""
        if not self.secure_mqtt:
            return
        if self.mqtt is None:
            self.mqtt = prepare_site_mqtt(self.workdir / "mqtt", self.site, self.gateway_id)
            self.procs["mosquitto"] = start_mosquitto(self.mqtt, self.workdir / "mosquitto.log")
        self.mqtt_host, self.mqtt_port = self.mqtt.host, self.mqtt.port

    def mqtt_client(self, identity: str | None = MONITOR, identifier: str = "") -> aiomqtt.Client:
        """A client of the stack's broker as ``identity`` (default: the read-only monitor; None: anonymous)."""
        import aiomqtt

        identifier = identifier or f"stack-{identity}-{time.time_ns()}"
        if self.mqtt is None:
            return aiomqtt.Client(self.mqtt_host, self.mqtt_port, identifier=identifier)
        return self.mqtt.client(identity, identifier)

    def restart(self, name: str) -> None:
        """Kill one part with SIGKILL and start it again with the same config (chaos helpers)."""
        self.kill(name)
        self.respawn(name)

    def kill(self, name: str) -> None:
        """SIGKILL one part (its whole process group): no flush, no goodbye. Not tansu: its data is in memory."""
        self._kill(self.procs[name], signal.SIGKILL)

    def respawn(self, name: str) -> None:
        """Start a part that was killed or stopped again, with the same command line and config."""
        proc = self.procs[name]
        if proc.poll() is None:
            raise RuntimeError(f"{name} is still running")
        args = proc.args
        assert isinstance(args, list)
        self._spawn(name, [str(a) for a in args], self.gateway_env if name == "gateway" else None)

    def stop_ingest(self, timeout_s: float = 20.0) -> None:
        """Stop the cloud ingest as an operator would (SIGTERM: it drains, then exits); SIGKILL if it hangs."""
        proc = self.procs["cloud"]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._kill(proc, signal.SIGKILL)

    def start_ingest(self, timeout_s: float = 30.0) -> None:
        """Start the cloud ingest again and wait until it accepts gRPC connections."""
        from cardiogate.cloud.tansu import wait_for_port

        self.respawn("cloud")
        wait_for_port("127.0.0.1", self.grpc_port, timeout_s)

    def acked(self) -> dict[str, int]:
        """The cloud ledger for this gateway: per stream, the next sequence it expects (all below were acked)."""
        from cardiogate.app.verify import read_ledger

        return read_ledger(str(self.cloud_db_path), self.gateway_id)

    def check_alive(self) -> list[str]:
        """Names of parts that have exited."""
        return [n for n, p in self.procs.items() if p.poll() is not None]

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], sig: int) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def stop(self) -> None:
        """Gateway first (so it flushes), then simulator, cloud, brokers."""
        for name in ("gateway", "sim", "api", "processor", "consumers", "cloud", "tansu", "mosquitto"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                self._kill(proc, signal.SIGKILL)
