"""The fleet gauges the alert rules read: heartbeat age per gateway, and the newest valid, unrevoked
client certificate per gateway (a revoked or expired one never hides an expiry)."""

from __future__ import annotations

from pathlib import Path

from cardiogate.cloud.db import certificates, revoked_certificates
from cardiogate.cloud.fleet_metrics import HEARTBEAT_AGE, publish, snapshot
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.schema import gateways

S = 10**9
NOW = 1_800_000_000 * S


def test_snapshot_ages_and_expiries(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(gateways.insert(), [
            {"gateway_id": "gw-1", "site_id": None, "created_ns": NOW - 900 * S, "last_seen_ns": NOW - 30 * S},
            {"gateway_id": "gw-2", "site_id": None, "created_ns": NOW - 900 * S, "last_seen_ns": NOW - 600 * S},
            {"gateway_id": "gw-new", "site_id": None, "created_ns": NOW, "last_seen_ns": None}])
        conn.execute(certificates.insert(), [
            # gw-1 renewed: the newer certificate counts
            {"serial": "a1", "gateway_id": "gw-1", "not_before_ns": 0, "not_after_ns": NOW + 5 * 86400 * S,
             "issued_ns": 0},
            {"serial": "a2", "gateway_id": "gw-1", "not_before_ns": 0, "not_after_ns": NOW + 300 * 86400 * S,
             "issued_ns": 0},
            # gw-2's later certificate is revoked and its other one expired: nothing valid is left
            {"serial": "b1", "gateway_id": "gw-2", "not_before_ns": 0, "not_after_ns": NOW + 300 * 86400 * S,
             "issued_ns": 0},
            {"serial": "b2", "gateway_id": "gw-2", "not_before_ns": 0, "not_after_ns": NOW - S, "issued_ns": 0}])
        conn.execute(revoked_certificates.insert(), [{"serial": "b1", "gateway_id": "gw-2", "revoked_ns": NOW}])
    snap = snapshot(engine, NOW)
    assert snap.heartbeat_age_s == {("gw-1", ""): 30.0, ("gw-2", ""): 600.0}
    assert snap.client_cert_expiry_s == {"gw-1": (NOW + 300 * 86400 * S) / 1e9}
    publish(snap, 3)
    assert HEARTBEAT_AGE.labels(gateway="gw-2", site="")._value.get() == 600.0
    engine.dispose()
