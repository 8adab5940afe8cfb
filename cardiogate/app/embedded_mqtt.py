"""The embedded MQTT broker (amqtt) for ``cardiogate demo`` where Mosquitto is not installed, locked the same way.

It serves the files :func:`cardiogate.app.site_mqtt.prepare_site_mqtt` wrote: a TLS listener with
the site's broker certificate, logins checked against the same Mosquitto ``$7$`` password file
(:class:`MosquittoPasswordFileAuth`), and amqtt's topic ACL plugin loaded with each identity's
publish and subscribe topics from the same rules as the Mosquitto ACL. amqtt (>= 0.12) enforces
both (tests/e2e/test_mqtt_security.py runs the same refusals against it as against Mosquitto);
the gateway judges every command by the identity in its topic either way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.plugins.base import BaseAuthPlugin

from cardiogate.app.site_mqtt import PREFIX, SiteMqtt
from cardiogate.edge.mqtt_setup import PASSWD, SERVER_CERT, SERVER_KEY, acl_rules, read_password_lines, verify_password


class MosquittoPasswordFileAuth(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt authentication against a Mosquitto ``$7$`` password file: the same file serves both brokers."""

    @dataclass
    class Config:
        password_file: str = ""

    async def authenticate(self, *, session: Any) -> bool | None:
        username, password = getattr(session, "username", None), getattr(session, "password", None)
        if not username or password is None:
            return False
        given = password.decode() if isinstance(password, bytes) else str(password)
        # Read at every login (a rotated file counts at once); the hash runs off the event loop.
        return await asyncio.to_thread(_check, Path(self.config.password_file), str(username), given)


def _check(path: Path, username: str, password: str) -> bool:
    encoded = read_password_lines(path.read_text(encoding="utf-8")).get(username)
    return encoded is not None and verify_password(password, encoded)


def embedded_broker_config(site: SiteMqtt) -> dict[str, Any]:
    """amqtt config with the site's TLS certificate, password file and per-identity ACL."""
    publish: dict[str, list[str]] = {}
    subscribe: dict[str, list[str]] = {}
    for identity, role in site.identities.items():
        rules = acl_rules(PREFIX, site.site, identity, role)
        publish[identity] = [topic for access, topic in rules if access == "write"]
        subscribe[identity] = [topic for access, topic in rules if access == "read"]
    return {"listeners": {"default": {"type": "tcp", "bind": f"{site.host}:{site.port}", "ssl": True,
                                      "certfile": str(site.directory / SERVER_CERT),
                                      "keyfile": str(site.directory / SERVER_KEY)}},
            "plugins": {f"{__name__}.MosquittoPasswordFileAuth": {"password_file": str(site.directory / PASSWD)},
                        "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {"publish_acl": publish,
                                                                                       "acl": subscribe}}}


async def start_embedded_broker(site: SiteMqtt) -> Any:
    """An in-process amqtt broker serving the site's files (the fallback when Mosquitto is not installed)."""
    from amqtt.broker import Broker

    broker = Broker(embedded_broker_config(site))
    await broker.start()
    return broker
