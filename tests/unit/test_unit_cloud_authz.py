"""Assignments of patients/devices to gateways: the pure check, the cache, the admin functions."""

from __future__ import annotations

from pathlib import Path

from cardiogate.cloud.admin import main as admin_main
from cardiogate.cloud.admin import provision_local
from cardiogate.cloud.authz import (
    GrantCache,
    Grants,
    assign,
    first_unauthorized,
    list_assignments,
    load_grants,
    unassign,
)
from cardiogate.cloud.db import make_engine
from cardiogate.proto.v1 import telemetry_pb2 as pb


def rec(patient: str, device: str) -> pb.Record:
    return pb.Record(patient=patient, device_id=device)


def test_a_batch_is_authorized_only_if_every_record_is_covered() -> None:
    grants = Grants({"pt-1": frozenset({"*"}), "pt-2": frozenset({"D2"})})
    assert first_unauthorized([rec("pt-1", "D1"), rec("pt-1", "D9"), rec("pt-2", "D2")], grants) is None
    bad = rec("pt-2", "D3")
    assert first_unauthorized([rec("pt-1", "D1"), bad, rec("pt-3", "D1")], grants) is bad
    assert first_unauthorized([rec("pt-3", "D1")], Grants()) is not None


def test_cache_reuses_grants_for_the_ttl_only() -> None:
    now = [100.0]
    loads: list[str] = []

    def loader(gateway: str) -> Grants:
        loads.append(gateway)
        return Grants({"pt-1": frozenset({"*"})})

    cache = GrantCache(loader, ttl_s=2.0, clock=lambda: now[0])
    assert cache.cached("gw") is None
    cache.load("gw")
    now[0] += 1.9
    assert cache.cached("gw") is not None
    now[0] += 0.1
    assert cache.cached("gw") is None
    assert GrantCache(loader, ttl_s=0.0, clock=lambda: now[0]).cached("gw") is None
    assert loads == ["gw"]


def test_assign_unassign_and_list(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    assert assign(engine, "gw-1", "pt-1") is True
    assert assign(engine, "gw-1", "pt-1") is False
    assert assign(engine, "gw-1", "pt-2", "D2") is True
    assign(engine, "gw-2", "pt-1")
    assert load_grants(engine, "gw-1") == Grants({"pt-1": frozenset({"*"}), "pt-2": frozenset({"D2"})})
    assert list_assignments(engine, "gw-2") == [("gw-2", "pt-1", "*")]
    assert unassign(engine, "gw-1", "pt-1") == 1
    assert load_grants(engine, "gw-1") == Grants({"pt-2": frozenset({"D2"})})


def test_admin_command_line(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "cloud.toml"
    config.write_text(f'database = "{tmp_path / "c.sqlite3"}"\ntls = true\n[pki]\nca_cert = "{tmp_path / "ca.crt"}"\n'
                      f'ca_key = "{tmp_path / "ca.key"}"\nserver_cert = "{tmp_path / "s.crt"}"\n'
                      f'server_key = "{tmp_path / "s.key"}"\n', encoding="utf-8")
    base = ["--config", str(config)]
    assert admin_main([*base, "init-pki", "--host", "ingest.local"]) == 0
    assert (tmp_path / "ca.crt").exists() and (tmp_path / "s.key").exists()
    assert admin_main([*base, "assign", "gw-1", "pt-0001"]) == 0
    assert admin_main([*base, "token", "gw-1", "--ttl", "60"]) == 0
    assert admin_main([*base, "revoke", "--gateway", "gw-1"]) == 0
    assert admin_main([*base, "token", "not a gateway"]) == 2
    engine = make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    assert list_assignments(engine) == [("gw-1", "pt-0001", "*")]


def test_provision_local_prepares_a_gateway(tmp_path: Path) -> None:
    from cardiogate.cloud.identity import consume_token
    from cardiogate.cloud.settings import CloudSettings, PkiSettings

    settings = CloudSettings(database=tmp_path / "c.sqlite3", pki=PkiSettings(
        ca_cert=tmp_path / "ca.crt", ca_key=tmp_path / "ca.key", server_cert=tmp_path / "s.crt",
        server_key=tmp_path / "s.key"))
    token = provision_local(settings, "gw-demo-1", ["pt-1001", "pt-1002"])
    engine = make_engine(settings.db_url)
    assert list_assignments(engine) == [("gw-demo-1", "pt-1001", "*"), ("gw-demo-1", "pt-1002", "*")]
    consume_token(engine, "gw-demo-1", token)
    assert (tmp_path / "s.crt").exists()
