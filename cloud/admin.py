"""Administration of identities and assignments, callable from a command line.

``python -m cardiogate.cloud.admin --config cloud.toml COMMAND ...`` (and ``cardiogate cloud admin``):
create the local CA and server certificate, issue enrollment tokens, assign patients
to gateways, revoke certificates. Every change is a database row, so running ingest
replicas pick it up without a restart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from cardiogate.cloud.authz import assign, list_assignments, unassign
from cardiogate.cloud.db import ANY_DEVICE, certificates, make_engine, revoked_certificates
from cardiogate.cloud.identity import issue_token, revoke_gateway, revoke_serial
from cardiogate.cloud.pki import ensure_local_pki
from cardiogate.cloud.settings import CloudSettings, load_cloud_settings
from cardiogate.core.settings import ConfigError


def provision_local(settings: CloudSettings, gateway_id: str, patients: Iterable[str],
                    hosts: Iterable[str] = ("localhost", "127.0.0.1")) -> str:
    """For local stacks and tests: the CA and server certificate, the gateway's assignments, and a
    fresh enrollment token for it (returned)."""
    pki = settings.pki
    ensure_local_pki(pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key, hosts)
    engine = make_engine(settings.db_url)
    try:
        for patient in patients:
            assign(engine, gateway_id, patient)
        return issue_token(engine, gateway_id, settings.enrollment.token_ttl_s)
    finally:
        engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cardiogate cloud admin", description=__doc__)
    parser.add_argument("--config", type=Path, default=None, help="cloud TOML settings file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("init-pki", help="create the CA and the ingest's server certificate where missing")
    p.add_argument("--host", action="append", default=None,
                   help="DNS name or IP the gateways connect to (repeatable; default localhost, 127.0.0.1)")
    p = sub.add_parser("token", help="issue a one-time enrollment token for a gateway (printed once)")
    p.add_argument("gateway")
    p.add_argument("--ttl", type=float, default=None, help="seconds it stays valid (default from settings)")
    p = sub.add_parser("assign", help="allow a gateway to send data for a patient")
    p.add_argument("gateway")
    p.add_argument("patient")
    p.add_argument("--device", default=ANY_DEVICE, help="only from this device (default: any)")
    p = sub.add_parser("unassign", help="withdraw a patient from a gateway")
    p.add_argument("gateway")
    p.add_argument("patient")
    p.add_argument("--device", default=None, help="only this device's assignment (default: all)")
    p = sub.add_parser("assignments", help="list assignments")
    p.add_argument("--gateway", default=None)
    p = sub.add_parser("revoke", help="revoke a gateway's certificates, or one certificate by serial")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--gateway")
    who.add_argument("--serial")
    p.add_argument("--reason", default="")
    p = sub.add_parser("certificates", help="list issued certificates and whether they are revoked")
    p.add_argument("--gateway", default=None)
    return parser


def run(ns: argparse.Namespace, settings: CloudSettings) -> int:
    if ns.command == "init-pki":
        pki = settings.pki
        ensure_local_pki(pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key,
                         ns.host or ["localhost", "127.0.0.1"])
        print(f"CA certificate (give this to gateways): {pki.ca_cert}")
        return 0
    engine = make_engine(settings.db_url)
    try:
        if ns.command == "token":
            ttl = ns.ttl if ns.ttl is not None else settings.enrollment.token_ttl_s
            print(issue_token(engine, ns.gateway, ttl))
        elif ns.command == "assign":
            added = assign(engine, ns.gateway, ns.patient, ns.device)
            print("assigned" if added else "already assigned")
        elif ns.command == "unassign":
            print(f"removed {unassign(engine, ns.gateway, ns.patient, ns.device)} assignment(s)")
        elif ns.command == "assignments":
            for gateway, patient, device in list_assignments(engine, ns.gateway):
                print(f"{gateway}\t{patient}\t{device}")
        elif ns.command == "revoke":
            if ns.gateway:
                serials = revoke_gateway(engine, ns.gateway, ns.reason)
                print(f"revoked {len(serials)} certificate(s) of {ns.gateway}")
            else:
                known = revoke_serial(engine, ns.serial, ns.reason)
                print("revoked" if known else "revoked (serial not issued by enrollment)")
        elif ns.command == "certificates":
            stmt = (select(certificates.c.serial, certificates.c.gateway_id, certificates.c.not_after_ns,
                           revoked_certificates.c.revoked_ns)
                    .outerjoin(revoked_certificates, revoked_certificates.c.serial == certificates.c.serial)
                    .order_by(certificates.c.gateway_id, certificates.c.issued_ns))
            if ns.gateway:
                stmt = stmt.where(certificates.c.gateway_id == ns.gateway)
            with engine.connect() as conn:
                for serial, gateway, not_after, revoked in conn.execute(stmt):
                    print(f"{gateway}\t{serial}\tnot_after_ns={not_after}\t{'REVOKED' if revoked else 'valid'}")
    finally:
        engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return run(ns, load_cloud_settings(ns.config))
    except (ConfigError, ValueError) as exc:
        print(f"cardiogate cloud admin: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
