"""The locked MQTT plane without a broker: password lines, ACL, setup files and rotation, roles, and the
gateway judging commands by the identity in their topic rather than by the payload's ``by``."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cardiogate.edge.alarm_bridge import AlarmBridge
from cardiogate.edge.alarm_engine.commands import Acknowledge, SetLimits, authorize, parse_command
from cardiogate.edge.mqtt_auth import Identities, IdentityFile, parse_identities, sender, sender_of
from cardiogate.edge.mqtt_setup import (
    MqttSetup,
    acl_text,
    hash_password,
    parse_identity_args,
    read_credential,
    read_password_lines,
    verify_password,
    write_setup,
)
from cardiogate.edge.settings import AlarmSettings, ConditionOverride
from tests.conftest import REPO

S = 1_000_000_000
T0 = 1_800_000_000 * S
SITE = "ward-7"
ROLES: dict[str, Any] = {"gw-7": "gateway", "station-1": "nurse", "dr-1": "clinician", "adm-1": "admin",
                         "wall-1": "viewer"}


def test_password_lines_are_mosquittos_pbkdf2_sha512_format() -> None:
    line = hash_password("correct horse", iterations=1000, salt=b"0123456789ab")
    kind, iterations, salt, digest = line.split("$")[1:]
    assert (kind, iterations, base64.b64decode(salt)) == ("7", "1000", b"0123456789ab")
    assert len(base64.b64decode(digest)) == 64  # SHA-512
    assert verify_password("correct horse", line)
    assert not verify_password("correct horsf", line)
    assert not verify_password("correct horse", line.replace("$7$", "$6$"))
    assert hash_password("x") != hash_password("x"), "every hash needs its own salt"


def test_the_acl_lets_each_identity_publish_only_its_own_role_topics() -> None:
    acl = acl_text("cardiogate", SITE, ROLES)
    sections = {block.split("user ")[1].splitlines()[0]: block for block in acl.split("\n\n") if "user " in block}
    writes = {name: [line.split()[2] for line in block.splitlines() if line.startswith("topic write")]
              for name, block in sections.items()}
    assert writes["station-1"] == ["cardiogate/ward-7/+/commands/station-1"]
    assert writes["dr-1"] == ["cardiogate/ward-7/+/commands/dr-1"]
    assert writes["adm-1"] == ["cardiogate/ward-7/gateway/+/commands/adm-1"]
    assert writes["wall-1"] == []
    assert "cardiogate/ward-7/gateway/gw-7/events" in writes["gw-7"]
    assert not any("commands" in topic for topic in writes["gw-7"])
    assert "pattern" not in acl and not any("#" in t for ts in writes.values() for t in ts)


def test_setup_writes_locked_files_and_never_a_secret_outside_the_credentials(tmp_path: Path) -> None:
    result = write_setup(MqttSetup(SITE, ROLES, tmp_path / "mqtt", port=18883))
    out = result.out
    for private in ("passwd", "ca.key", "server.key", *(f"credentials/{n}.password" for n in ROLES)):
        assert stat.S_IMODE((out / private).stat().st_mode) == 0o600, private
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "listener 18883 127.0.0.1" in conf and "certfile" in conf
    hashes = read_password_lines((out / "passwd").read_text())
    assert sorted(hashes) == sorted(ROLES)
    secrets = {n: read_credential(p) for n, p in result.credentials.items()}
    assert all(verify_password(secrets[n], hashes[n]) for n in ROLES)
    public = "".join((out / f).read_text() for f in ("mosquitto.conf", "acl", "identities.json", "passwd"))
    assert not any(secret in public for secret in secrets.values())
    assert parse_identities((out / "identities.json").read_text()).roles == ROLES


def test_rerunning_setup_rotates_only_what_is_asked_and_drops_removed_identities(tmp_path: Path) -> None:
    first = write_setup(MqttSetup(SITE, ROLES, tmp_path))
    before = {n: read_credential(p) for n, p in first.credentials.items()}
    ca = (tmp_path / "ca.crt").read_bytes()
    kept_roles = {n: r for n, r in ROLES.items() if n != "wall-1"}
    second = write_setup(MqttSetup(SITE, kept_roles, tmp_path, rotate=frozenset({"station-1"})))
    after = {n: read_credential(p) for n, p in second.credentials.items()}
    assert second.issued == ["station-1"] and second.removed == ["wall-1"] and not second.new_ca
    assert after["station-1"] != before["station-1"]
    assert all(after[n] == before[n] for n in kept_roles if n != "station-1")
    assert not (tmp_path / "credentials" / "wall-1.password").exists()
    assert "wall-1" not in read_password_lines((tmp_path / "passwd").read_text())
    assert (tmp_path / "ca.crt").read_bytes() == ca, "the site CA survives a rotation"
    with pytest.raises(ValueError, match="not among the identities"):
        MqttSetup(SITE, kept_roles, tmp_path, rotate=frozenset({"nobody"}))


@pytest.mark.parametrize("bad", ["nurse-1", "a/b:nurse", "x:root", "+:viewer"])
def test_identity_arguments_are_name_colon_role(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_identity_args([bad])


def test_the_cli_prints_paths_but_no_password(tmp_path: Path) -> None:
    out = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "cardiogate", "gateway", "mqtt-setup", "--site", SITE, "--out",
                          str(out), "--identity", "gw-7:gateway", "--identity", "station-1:nurse"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert 'username = "gw-7"' in run.stdout and "password_file" in run.stdout
    for name in ("gw-7", "station-1"):
        assert read_credential(out / "credentials" / f"{name}.password") not in run.stdout + run.stderr


def test_roles_decide_and_a_topic_without_identity_decides_nothing() -> None:
    ids = Identities(SITE, ROLES)
    assert ids.refusal("station-1")("acknowledge") is None and ids.refusal("station-1")("silence") is None
    assert "may not set_limits" in str(ids.refusal("station-1")("set_limits"))
    assert ids.refusal("dr-1")("set_limits") is None
    assert ids.refusal("adm-1")("pair") is None and ids.refusal("station-1")("pair") is not None
    assert ids.refusal("gw-7")("acknowledge") is not None and ids.refusal("wall-1")("silence") is not None
    assert "not an identity" in str(ids.refusal("intruder")("acknowledge"))
    assert "only on" in str(ids.refusal(None)("acknowledge"))
    assert sender_of("cardiogate/ward-7/pt-1/commands/dr-1") == "dr-1"
    assert sender_of("cardiogate/ward-7/pt-1/commands") is None


def test_the_actor_is_the_authenticated_identity_whatever_by_claims() -> None:
    cmd = parse_command(json.dumps({"schema": 1, "command": "acknowledge", "patient": "pt-0001", "by": "dr-house",
                                    "condition": "hr_high"}))
    ids = Identities(SITE, ROLES)
    judged = authorize(cmd, "station-1", ids.refusal("station-1"))
    assert isinstance(judged, Acknowledge) and judged.by == "station-1" and "entered as dr-house" in judged.reason
    limits = parse_command(json.dumps({"schema": 1, "command": "set_limits", "patient": "pt-0001", "by": "dr-1",
                                       "condition": "hr_high", "limits": {"medium": 240, "high": 250}}))
    assert isinstance(limits, SetLimits)
    refused = authorize(limits, "station-1", ids.refusal("station-1"))
    assert not isinstance(refused, SetLimits) and refused.by == "station-1" and refused.command == "set_limits"


def _bridge() -> tuple[AlarmBridge, list[tuple[str, dict[str, Any]]]]:
    published: list[tuple[str, dict[str, Any]]] = []
    bridge = AlarmBridge(AlarmSettings(conditions={"hr_high": ConditionOverride(onset_delay_s=0)}), SITE,
                         lambda patient, leaf, payload, *_: published.append((leaf, payload)), lambda _r: None,
                         lambda p: p == "pt-0001")
    return bridge, published


def _limits(by: str) -> bytes:
    return json.dumps({"schema": 1, "command": "set_limits", "patient": "pt-0001", "by": by, "condition": "hr_high",
                       "limits": {"medium": 240, "high": 250}}).encode()


def test_a_nurse_or_an_anonymous_sender_cannot_silence_tachycardia_by_raising_limits(tmp_path: Path) -> None:
    path = tmp_path / "identities.json"
    path.write_text(Identities(SITE, ROLES).to_json())
    ids = IdentityFile(path)
    bridge, published = _bridge()
    for topic in ("cardiogate/ward-7/pt-0001/commands/station-1", "cardiogate/ward-7/pt-0001/commands",
                  "cardiogate/ward-7/pt-0001/commands/intruder"):
        bridge.handle_command("pt-0001", _limits("dr-1"), sender(ids, topic))
    audit = [p for leaf, p in published if leaf == "audit" and p.get("action") == "command.set_limits"]
    assert [(a["actor"], a["outcome"]) for a in audit] == [("station-1", "rejected"), ("anonymous", "rejected"),
                                                           ("intruder", "rejected")]
    assert bridge.commands_rejected == 3 and bridge.commands_applied == 0
    bridge.observe_vitals("pt-0001", "C0:00:00:00:00:01", T0, hr=165.0)
    raised = [p for leaf, p in published if leaf == "alarms" and p["state"] == "raised"]
    assert raised and raised[0]["condition"] == "hr_high" and raised[0]["limit"] <= 150
    # the clinician may, and is recorded as the actor
    bridge.handle_command("pt-0001", _limits("someone"), sender(ids, "cardiogate/ward-7/pt-0001/commands/dr-1"))
    applied = [p for leaf, p in published if leaf == "audit" and p.get("action") == "command.set_limits"][-1]
    assert (applied["actor"], applied["outcome"]) == ("dr-1", "applied")


def test_the_identity_file_is_reread_when_rotated_and_a_broken_rewrite_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "identities.json"
    path.write_text(Identities(SITE, {"station-1": "nurse"}).to_json())
    ids = IdentityFile(path)
    assert ids.current().refusal("dr-2")("set_limits") is not None
    path.write_text(Identities(SITE, {"station-1": "nurse", "dr-2": "clinician"}).to_json())
    assert ids.current().refusal("dr-2")("set_limits") is None
    path.write_text("{half")
    assert ids.current().refusal("dr-2")("set_limits") is None


@pytest.fixture
def locked_gateway(tmp_path: Path) -> Any:
    from cardiogate.edge.gateway import Gateway
    from cardiogate.edge.settings import GatewaySettings, PairedDevice

    setup = write_setup(MqttSetup(SITE, ROLES, tmp_path / "mqtt"))
    settings = GatewaySettings(
        gateway_id="gw-7", site=SITE, devices=[PairedDevice(address="C0:00:00:00:00:01", patient="pt-0001")],
        outbox={"path": tmp_path / "outbox.sqlite3"}, state={"pairings_path": tmp_path / "pairings.json"},
        uplink={"tls": False}, mqtt={"username": "gw-7", "password_file": setup.credentials["gw-7"],
                                     "identities_file": setup.identities_file,
                                     "tls": {"ca_file": setup.ca_cert}})
    gw = Gateway(settings)
    gw.sent = []
    gw.mqtt.publish = gw.sent.append
    yield gw
    gw.outbox.close()


def _events(gw: Any) -> list[dict[str, Any]]:
    return [m.payload for m in gw.sent if m.topic == "cardiogate/ward-7/gateway/gw-7/events"]


def test_a_locked_gateway_pairs_only_for_the_site_admin_and_ignores_by(locked_gateway: Any) -> None:
    gw = locked_gateway
    pair = json.dumps({"schema": 1, "command": "pair", "address": "C0:00:00:00:00:02", "patient": "pt-0002",
                       "by": "adm-1"}).encode()
    for topic in ("cardiogate/ward-7/gateway/gw-7/commands/station-1", "cardiogate/ward-7/gateway/gw-7/commands"):
        gw._on_gateway_command(topic, pair)
    assert [(e["outcome"], "refused" in e["error"]) for e in _events(gw)] == [("rejected", True)] * 2
    assert "C0:00:00:00:00:02" not in gw.devices.devices and gw.gateway_commands_rejected == 2
    gw._on_gateway_command("cardiogate/ward-7/gateway/gw-7/commands/adm-1", pair.replace(b'"adm-1"', b'"nurse"'))
    assert (_events(gw)[-1]["outcome"], _events(gw)[-1]["by"]) == ("applied", "adm-1")
    assert "C0:00:00:00:00:02" in gw.devices.devices


def test_a_locked_gateway_listens_on_identity_topics_and_refuses_the_old_one(locked_gateway: Any) -> None:
    gw = locked_gateway
    filters = [f for f, _ in gw.mqtt._subscriptions]
    assert "cardiogate/ward-7/+/commands/+" in filters and "cardiogate/ward-7/gateway/gw-7/commands/+" in filters
    gw._on_patient_command("cardiogate/ward-7/pt-0001/commands", _limits("dr-1"))
    audit = [m.payload for m in gw.sent if m.topic.endswith("/audit") and m.payload.get("action")]
    assert (audit[-1]["actor"], audit[-1]["outcome"]) == ("anonymous", "rejected")
    gw._on_patient_command("cardiogate/ward-7/pt-0001/commands/dr-1", _limits("dr-1"))
    audit = [m.payload for m in gw.sent if m.topic.endswith("/audit") and m.payload.get("action")]
    assert (audit[-1]["actor"], audit[-1]["outcome"]) == ("dr-1", "applied")


def test_mqtt_settings_take_the_password_from_a_file_or_the_environment_never_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cardiogate.core.settings import ConfigError
    from cardiogate.edge.settings import load_gateway_settings

    secret = tmp_path / "gw.password"
    secret.write_text("s3cret\n")
    ids = tmp_path / "identities.json"
    base = f'[mqtt]\nusername = "gw-7"\nidentities_file = "{ids}"\n[mqtt.tls]\nca_file = "{tmp_path / "ca.crt"}"\n'
    toml = tmp_path / "gateway.toml"
    toml.write_text(base.replace("[mqtt.tls]", f'password_file = "{secret}"\n[mqtt.tls]'))
    assert load_gateway_settings(toml).mqtt.read_password() == "s3cret"
    monkeypatch.setenv("CARDIOGATE_GATEWAY__MQTT__PASSWORD", "from-env")
    with pytest.raises(ConfigError, match="not both"):
        load_gateway_settings(toml)
    toml.write_text(base)
    loaded = load_gateway_settings(toml).mqtt
    assert loaded.read_password() == "from-env" and "from-env" not in repr(loaded)
    toml.write_text('[mqtt]\nusername = "gw-7"\n')
    with pytest.raises(ConfigError, match="identities_file"):
        load_gateway_settings(toml)


def test_a_gateway_whose_identity_is_not_its_gateway_id_does_not_start(tmp_path: Path) -> None:
    from cardiogate.core.settings import ConfigError
    from cardiogate.edge.mqtt_auth import open_identity_file

    setup = write_setup(MqttSetup(SITE, ROLES, tmp_path / "mqtt"))
    assert open_identity_file(setup.identities_file, "gw-7", "gw-7") is not None
    with pytest.raises(ConfigError, match="must be the gateway_id"):
        open_identity_file(setup.identities_file, "gw-7", "station-1")
    with pytest.raises(ConfigError, match="gateway role"):
        open_identity_file(setup.identities_file, "gw-8", None)
    with pytest.raises(ConfigError, match="identities_file"):
        open_identity_file(tmp_path / "missing.json", "gw-7", "gw-7")
