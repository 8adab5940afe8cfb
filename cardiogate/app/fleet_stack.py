"""Start a fleet of gateways against one cloud, every part a child process: the many-gateway LocalStack.

A staged model rollout only means something across gateways that are separate processes,
each with its own enrolled identity, outbox, model folder and radio, as on real hardware.
``FleetStack`` starts tansu, one cloud, one simulator with one virtual radio per gateway
(``sim run --processes N``: radio i listens on ``air_port + i`` and carries watch i), and N
gateways ``gw-00``, ``gw-01``, ... each paired with its own patient's watch. The gateways
are registered at one site in the fleet registry before the cloud starts, so a rollout
cohort is exactly this fleet. With ``models`` on, a model-signing key is made with
``cardiogate models keygen`` and every gateway's updater trusts it and talks to the
cloud's Rollout service over mTLS with the gateway's enrolled identity.

Logs go to ``<workdir>/<part>.log`` (gateways as JSON lines, so tests can read events);
:meth:`FleetStack.stop` ends every part (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardiogate.app.stack import Patient, free_port, free_port_run, to_toml, wait_for_text
from cardiogate.core.settings import merge_tables


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a part started with ``--log-format json`` (anything else is skipped)."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    events.append(doc)
    return events


@dataclass
class FleetStack:
    """Gateway i (``gateway_ids[i]``) wears ``patients[i]``'s watch, on radio i of the simulator."""

    workdir: Path
    patients: list[Patient]
    site: str = "ward-a"
    gateway_prefix: str = "gw-"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    models: bool = True  # updaters on, with a fresh signing key the gateways trust
    kafka_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    enroll_port: int = field(default_factory=free_port)
    air_port: int = 0  # first of len(patients) consecutive ports; 0: found at construction
    cloud_extra: dict[str, Any] = field(default_factory=dict)    # merged into the cloud config
    gateway_extra: dict[str, Any] = field(default_factory=dict)  # merged into every gateway config
    sim_extra: dict[str, Any] = field(default_factory=dict)      # merged into the simulator config
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.patients:
            raise ValueError("a fleet needs at least one gateway (one patient each)")
        if not self.air_port:
            self.air_port = free_port_run(len(self.patients))

    # -- layout -------------------------------------------------------------------------------
    @property
    def gateway_ids(self) -> list[str]:
        return [f"{self.gateway_prefix}{i:02d}" for i in range(len(self.patients))]

    @property
    def cloud_config(self) -> Path:
        return self.workdir / "cloud.toml"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir / 'cloud.sqlite3'}"

    @property
    def signing_key(self) -> Path:
        return self.workdir / "keys" / "model-signing.key"

    @property
    def trusted_keys(self) -> Path:
        return self.workdir / "trusted-keys.json"

    def gateway_dir(self, gateway_id: str) -> Path:
        return self.workdir / gateway_id

    def log_path(self, name: str) -> Path:
        """A part's log: ``cloud``, ``sim``, ``tansu`` or a gateway id."""
        return self.workdir / f"{name}.log"

    def events(self, gateway_id: str) -> list[dict[str, Any]]:
        """The gateway's log events so far."""
        return read_events(self.log_path(gateway_id))

    # -- configuration ------------------------------------------------------------------------
    def _cloud(self) -> dict[str, Any]:
        pki = self.workdir / "pki"
        cloud: dict[str, Any] = {
            "listen": f"127.0.0.1:{self.grpc_port}", "database": str(self.workdir / "cloud.sqlite3"),
            "kafka": {"bootstrap": f"127.0.0.1:{self.kafka_port}"},
            "pki": {"ca_cert": str(pki / "ca.crt"), "ca_key": str(pki / "ca.key"),
                    "server_cert": str(pki / "server.crt"), "server_key": str(pki / "server.key")},
            "enrollment": {"listen": f"127.0.0.1:{self.enroll_port}"},
            "models": {"artifact_root": str(self.workdir / "model-artifacts"), "signing_key": str(self.signing_key)},
            "metrics": {"listen": "127.0.0.1:0"}}  # any free port: many processes share this host
        return merge_tables(cloud, self.cloud_extra)

    def _sim(self) -> dict[str, Any]:
        # Round-robin dealing over len(patients) processes puts watch i on process (radio) i.
        sim = {"listen": f"127.0.0.1:{self.air_port}",
               "watches": [{"name": f"cg-{p.pseudonym}"[:29], "address": p.address, "seed": p.seed,
                            "heart_rate": [list(k) for k in p.heart_rate], "malformed_hr_at_s": p.malformed_hr_at_s,
                            **p.watch_extra} for p in self.patients]}
        return merge_tables(sim, self.sim_extra)

    def _gateway(self, i: int) -> dict[str, Any]:
        gateway_id, patient = self.gateway_ids[i], self.patients[i]
        home = self.gateway_dir(gateway_id)
        identity = home / "identity"
        gateway: dict[str, Any] = {
            "gateway_id": gateway_id, "site": self.site,
            "devices": [{"address": patient.address, "patient": patient.pseudonym}],
            "ble": {"adapters": [{"name": "virtual0", "max_connections": 4,
                                  "bumble_transport": f"tcp-client:127.0.0.1:{self.air_port + i}"}],
                    "scan_timeout_s": 5.0, "backoff_max_s": 5.0, "connect_timeout_s": 5.0, "sighting_max_age_s": 1.5},
            "mqtt": {"host": self.mqtt_host, "port": self.mqtt_port},
            "uplink": {"target": f"127.0.0.1:{self.grpc_port}", "backoff_max_s": 5.0, "server_name": "localhost",
                       "identity_dir": str(identity)},
            "outbox": {"path": str(home / "outbox.sqlite3")},
            "state": {"pairings_path": str(home / "pairings.json")},
            "metrics": {"listen": "127.0.0.1:0"}}  # ten gateways on one host: each takes a free port
        if self.models:
            # The rollout channel is mTLS with the same enrolled identity as the uplink.
            gateway["updater"] = {"enabled": True, "models_dir": str(home / "models"),
                                  "trusted_keys": str(self.trusted_keys), "identity_dir": str(identity)}
        return merge_tables(gateway, self.gateway_extra)

    def write_configs(self) -> dict[str, Path]:
        """``cloud.toml``, ``sim.toml`` and ``<gateway id>.toml`` for every gateway, by name."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        docs = {"cloud": self._cloud(), "sim": self._sim()}
        docs.update((gw, self._gateway(i)) for i, gw in enumerate(self.gateway_ids))
        paths = {}
        for name, data in docs.items():
            path = self.workdir / f"{name}.toml"
            path.write_text(to_toml(data), encoding="utf-8")
            paths[name] = path
        return paths

    # -- operator commands --------------------------------------------------------------------
    def models_cli(self, action: str, *args: str, timeout_s: float = 120.0) -> str:
        """Run ``cardiogate models ACTION ARGS --config cloud.toml`` as an operator would; its stdout.

        ``args`` must start with a positional (cardiogate passes what follows ACTION on from
        there). Raises RuntimeError, with the command's output, if it fails."""
        argv = [sys.executable, "-m", "cardiogate", "models", action, *args, "--config", str(self.cloud_config)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=self.workdir, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`cardiogate models {action} {' '.join(args)}` exited {done.returncode}:\n"
                               f"{done.stdout}\n{done.stderr}")
        return done.stdout

    def _make_signing_key(self) -> None:
        """The fleet's model-signing key (``models keygen``) and the gateways' trusted-keys file."""
        self.models_cli("keygen", str(self.signing_key))
        self.trusted_keys.write_text(self.models_cli("trusted-keys", f"{self.signing_key}.pub"), encoding="utf-8")

    def _provision(self, paths: dict[str, Path]) -> dict[str, str]:
        """PKI, each gateway's patient assignment and one-time token, and the fleet registry's site."""
        from cardiogate.cloud.admin import provision_local
        from cardiogate.cloud.registry.fleet import FleetRegistry
        from cardiogate.cloud.registry.migrate import open_database
        from cardiogate.cloud.settings import load_cloud_settings

        settings = load_cloud_settings(paths["cloud"])
        tokens = {gw: provision_local(settings, gw, [p.pseudonym])
                  for gw, p in zip(self.gateway_ids, self.patients, strict=True)}
        engine = open_database(self.database_url)
        try:
            fleet = FleetRegistry(engine)
            fleet.add_site(self.site)
            for gw in self.gateway_ids:
                fleet.add_gateway(gw, self.site)
        finally:
            engine.dispose()
        return tokens

    # -- lifecycle ----------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        with self.log_path(name).open("ab") as log:
            self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                                cwd=self.workdir)

    def start(self, ready_timeout_s: float = 60.0) -> None:
        """Start every part (gateways last, once each is enrolled); raises RuntimeError if one fails to come up."""
        from cardiogate.cloud.tansu import start_tansu, wait_for_port
        from cardiogate.edge.enrollment import enroll

        paths = self.write_configs()
        if self.models:
            self._make_signing_key()  # before the cloud starts: it loads the key to sign rollback orders
        tokens = self._provision(paths)
        self.procs["tansu"] = start_tansu(self.kafka_port, log_path=self.log_path("tansu"))
        py = [sys.executable, "-m", "cardiogate"]
        n = len(self.patients)
        try:
            self._spawn("cloud", [*py, "cloud", "run", "--config", str(paths["cloud"])])
            self._spawn("sim", [*py, "sim", "run", "--config", str(paths["sim"]), "--processes", str(n)])
            wait_for_port("127.0.0.1", self.grpc_port, ready_timeout_s)
            wait_for_port("127.0.0.1", self.enroll_port, ready_timeout_s)
            for gw in self.gateway_ids:
                enroll(f"127.0.0.1:{self.enroll_port}", gw, tokens[gw], self.gateway_dir(gw) / "identity",
                       self.workdir / "pki" / "ca.crt", server_name="localhost")
            # Not a port probe: a virtual radio serves one client, and a probe could detach its gateway.
            wait_for_text(self.log_path("sim"), "simulator: ", ready_timeout_s, count=n)
        except BaseException as exc:  # nothing may outlive a failed start
            self.stop()
            if isinstance(exc, TimeoutError):
                raise RuntimeError(f"the fleet did not come up ({exc}); see the logs in {self.workdir}") from None
            raise
        for gw in self.gateway_ids:
            self._spawn(gw, [*py, "--log-format", "json", "gateway", "run", "--config", str(paths[gw])])

    def check_alive(self) -> list[str]:
        """Names of parts that have exited."""
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self, grace_s: float = 10.0) -> None:
        """Gateways first (so they flush and their updaters close cleanly), then simulator, cloud, broker."""
        for group in (self.gateway_ids, ["sim"], ["cloud"], ["tansu"]):
            running = [self.procs[n] for n in group if n in self.procs and self.procs[n].poll() is None]
            for proc in running:  # the whole group at once: ten gateways stopping one by one take ten times as long
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while any(p.poll() is None for p in running) and time.monotonic() < deadline:
                time.sleep(0.05)
            for proc in running:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
