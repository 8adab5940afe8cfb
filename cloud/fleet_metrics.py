"""Gauges of the fleet and the PKI, refreshed from the database by the ingest: what the alert rules need
to say "this gateway went silent" or "this certificate expires in a week" (deploy/monitoring).

Gateways sit in hospitals behind NAT and are not scraped by the cloud's Prometheus, so their silence
is seen here, from the heartbeats they stop sending. Expiry is exported as a timestamp (Prometheus
compares it with ``time()``), per gateway for client certificates: the latest valid, unrevoked one
counts, since a renewed gateway holds both for a while. Labels are gateway and site ids (bounded
by the fleet), never a patient.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select

from cardiogate.cloud.db import certificates, revoked_certificates
from cardiogate.cloud.registry.schema import gateways
from cardiogate.core import metrics as registry
from cardiogate.core.logs import get_logger

log = get_logger(__name__)

HEARTBEAT_AGE = registry.gauge("fleet_gateway_heartbeat_age_seconds",
                               "Seconds since each gateway's last heartbeat reached the cloud.", ("gateway", "site"))
GATEWAYS = registry.gauge("fleet_gateways", "Gateways registered with the fleet.")
CLIENT_CERT_EXPIRY = registry.gauge("pki_client_certificate_expiry_timestamp_seconds",
                                    "When each gateway's newest valid, unrevoked client certificate expires.",
                                    ("gateway",))
SERVER_CERT_EXPIRY = registry.gauge("pki_server_certificate_expiry_timestamp_seconds",
                                    "When the ingest's own TLS certificate expires.")


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    heartbeat_age_s: dict[tuple[str, str], float]  # (gateway, site) -> age; gateways never heard of are left out
    client_cert_expiry_s: dict[str, float]          # gateway -> epoch seconds


def snapshot(engine: Engine, now_ns: int) -> FleetSnapshot:
    """The fleet's heartbeat ages and certificate expiries as the database holds them now."""
    with engine.connect() as conn:
        seen = conn.execute(select(gateways.c.gateway_id, gateways.c.site_id, gateways.c.last_seen_ns)).all()
        revoked = select(revoked_certificates.c.serial)
        expiry = conn.execute(
            select(certificates.c.gateway_id, func.max(certificates.c.not_after_ns))
            .where(certificates.c.not_after_ns > now_ns, certificates.c.serial.not_in(revoked))
            .group_by(certificates.c.gateway_id)).all()
    ages = {(str(g), str(s or "")): max(0.0, (now_ns - int(t)) / 1e9) for g, s, t in seen if t is not None}
    return FleetSnapshot(ages, {str(g): int(t) / 1e9 for g, t in expiry})


def publish(snap: FleetSnapshot, gateway_count: int) -> None:
    HEARTBEAT_AGE.clear()
    for (gateway, site), age in snap.heartbeat_age_s.items():
        HEARTBEAT_AGE.labels(gateway=gateway, site=site).set(age)
    CLIENT_CERT_EXPIRY.clear()
    for gateway, expires in snap.client_cert_expiry_s.items():
        CLIENT_CERT_EXPIRY.labels(gateway=gateway).set(expires)
    GATEWAYS.set(gateway_count)


def server_certificate_expiry(path: Path) -> float | None:
    """The certificate's notAfter as epoch seconds, or None when there is no readable certificate."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc.timestamp()


async def run_fleet_gauges(engine: Engine, server_cert: Path | None, interval_s: float = 15.0) -> None:
    """Refresh the gauges every ``interval_s``; a database that is away leaves them as they were."""
    while True:
        if server_cert is not None and (expires := await asyncio.to_thread(server_certificate_expiry, server_cert)):
            SERVER_CERT_EXPIRY.set(expires)
        try:
            snap = await asyncio.to_thread(snapshot, engine, time.time_ns())
            publish(snap, len(snap.heartbeat_age_s))
        except Exception as exc:  # stale gauges are no reason to stop the ingest
            log.warning("fleet gauges not refreshed", error=repr(exc))
        await asyncio.sleep(interval_s)
