"""A locked local MQTT broker for the demo and the end-to-end tests, set up as a site would be.

:func:`prepare_site_mqtt` runs the same file generation as ``cardiogate gateway mqtt-setup``
for a stack's identities (the gateway, a nurse station, a clinician, the site admin and a
read-only monitor). :func:`start_mosquitto` runs Mosquitto from that config on its own port.
Without the ``mosquitto`` binary, cardiogate.app.embedded_mqtt serves the same files from an
in-process amqtt broker.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardiogate.edge.mqtt_auth import Role, gateway_command_topic, patient_command_topic
from cardiogate.edge.mqtt_setup import CA_CERT, IDENTITIES, MqttSetup, read_credential, write_setup

if TYPE_CHECKING:
    import aiomqtt

NURSE, CLINICIAN, ADMIN, MONITOR = "nurse-station-1", "clinician-1", "site-admin", "monitor"
PREFIX = "cardiogate"  # the gateway's default topic prefix


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class SiteMqtt:
    """Where the site's broker listens, its files, and how each identity connects to it."""

    directory: Path
    site: str
    port: int
    identities: dict[str, Role] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def ca_file(self) -> Path:
        return self.directory / CA_CERT

    @property
    def identities_file(self) -> Path:
        return self.directory / IDENTITIES

    @property
    def conf(self) -> Path:
        return self.directory / "mosquitto.conf"

    def password_file(self, identity: str) -> Path:
        return self.directory / "credentials" / f"{identity}.password"

    def connect_options(self, identity: str | None) -> dict[str, Any]:
        """aiomqtt.Client keyword arguments: TLS against the site CA, and the identity's login (None: anonymous)."""
        import ssl

        options: dict[str, Any] = {"tls_context": ssl.create_default_context(cafile=str(self.ca_file))}
        if identity is not None:
            options.update(username=identity, password=read_credential(self.password_file(identity)))
        return options

    def client(self, identity: str | None, identifier: str, **kwargs: Any) -> aiomqtt.Client:
        import aiomqtt

        return aiomqtt.Client(self.host, self.port, identifier=identifier, **self.connect_options(identity), **kwargs)

    def command_topic(self, patient: str, identity: str) -> str:
        return patient_command_topic(PREFIX, self.site, patient, identity)

    def gateway_command_topic(self, gateway_id: str, identity: str) -> str:
        return gateway_command_topic(PREFIX, self.site, gateway_id, identity)

    def gateway_settings(self, gateway_id: str) -> dict[str, Any]:
        """The gateway's ``[mqtt]`` table: TLS, its own identity, the password by file, the identity map."""
        return {"host": self.host, "port": self.port, "username": gateway_id,
                "password_file": str(self.password_file(gateway_id)), "identities_file": str(self.identities_file),
                "tls": {"ca_file": str(self.ca_file)}}


def stack_identities(gateway_id: str) -> dict[str, Role]:
    return {gateway_id: "gateway", NURSE: "nurse", CLINICIAN: "clinician", ADMIN: "admin", MONITOR: "viewer"}


def prepare_site_mqtt(directory: Path, site: str, gateway_id: str, port: int | None = None) -> SiteMqtt:
    """Write the broker's files (as ``mqtt-setup`` does) for a local stack, on a free port by default."""
    port = port or _free_port()
    identities = stack_identities(gateway_id)
    # Started by root, Mosquitto drops to the 'mosquitto' user, which could not read the 0600 files.
    run_as = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    write_setup(MqttSetup(site=site, identities=identities, out=directory, prefix=PREFIX, port=port, run_as=run_as))
    return SiteMqtt(directory, site, port, identities)


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                              if os.access(p, os.X_OK)), None)


def start_mosquitto(site: SiteMqtt, log_path: Path, timeout_s: float = 10.0) -> subprocess.Popen[bytes]:
    """Mosquitto from the generated config, in its own process group; waits until it accepts connections."""
    binary = mosquitto_binary()
    if binary is None:
        raise RuntimeError("the mosquitto binary is not installed")
    proc = subprocess.Popen([binary, "-c", str(site.conf)], stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode}; see {log_path}")
        try:
            socket.create_connection((site.host, site.port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"mosquitto did not listen on {site.port} within {timeout_s:.0f} s; see {log_path}")
