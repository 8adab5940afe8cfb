"""Settings: TOML, environment and command-line flags in that order of strength, and one-line ConfigErrors
naming the file and field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cardiogate.core.settings import ConfigError
from cardiogate.edge.settings import GatewaySettings, load_gateway_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CARDIOGATE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_gateway_settings(path)
    return str(info.value)


GOOD = """
gateway_id = "gw-ward7"
site = "site-file"
ecg_block_samples = 500

[[devices]]
address = "c0:00:00:00:00:01"
patient = "pt-0001"

[[devices]]
address = " C0:00:00:00:00:02 "
patient = "pt-0002"
name = "bed 2"

[uplink]
target = "ingest.example:443"
batch_max_records = 50

[alarms.conditions.hr_high]
medium = 125
onset_delay_s = 8

[alarms.patients.pt-0002.spo2_low]
medium = 88
high = 84
"""


def test_good_file_loads(tmp_path: Path) -> None:
    s = load_gateway_settings(write(tmp_path, GOOD))
    assert isinstance(s, GatewaySettings)
    assert (s.gateway_id, s.site, s.ecg_block_samples) == ("gw-ward7", "site-file", 500)
    assert [(d.address, d.patient, d.name) for d in s.devices] == [
        ("C0:00:00:00:00:01", "pt-0001", None), ("C0:00:00:00:00:02", "pt-0002", "bed 2")]
    assert (s.uplink.target, s.uplink.batch_max_records) == ("ingest.example:443", 50)
    assert s.uplink.max_in_flight == 4  # untouched fields keep defaults
    assert (s.alarms.conditions["hr_high"].medium, s.alarms.conditions["hr_high"].onset_delay_s) == (125.0, 8.0)
    assert s.alarms.patients["pt-0002"]["spo2_low"].high == 84.0


def test_no_file_gives_defaults() -> None:
    s = load_gateway_settings(None)
    assert (s.gateway_id, s.site, s.devices, s.uplink.batch_max_records) == ("gateway-1", "site-1", [], 200)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[uplink]\nbatch_max_records = "lots"\n', "uplink.batch_max_records"),
        ("[uplink]\nbatch_max_records = 0\n", "uplink.batch_max_records"),
        ("[uplink]\nbatch_max_records = 5001\n", "uplink.batch_max_records"),
        ('[[devices]]\naddress = "nonsense"\npatient = "pt-1"\n', "devices.0.address"),
        ('[[devices]]\naddress = "C0:00:00:00:00:01"\npatient = "pt-0001"\n'
         '[[devices]]\naddress = "C0:00:00:00:00:0"\npatient = "pt-0002"\n', "devices.1.address"),
        ('[[devices]]\naddress = "C0:00:00:00:00:01"\npatient = "John Smith"\n', "devices.0.patient"),
        ('[[devices]]\npatient = "pt-0001"\n', "devices.0.address"),
        ('site = "site one"\n', "site"),
        ("ecg_block_samples = 8\n", "ecg_block_samples"),
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("[alarms.conditions.hr_high]\nmedium = 120\nurgent = 5\n", "alarms.conditions.hr_high.urgent"),
        ("[alarms.conditions.hr_high]\nonset_delay_s = -1\n", "alarms.conditions.hr_high.onset_delay_s"),
        ("[ble]\nconnect_timeout_s = -1\n", "ble.connect_timeout_s"),
    ],
)
def test_bad_field_is_one_line_naming_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    msg = config_error(path)
    assert "\n" not in msg
    assert str(path) in msg
    assert f"'{field}'" in msg


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("bogus = 1\n", "bogus"),
        ("[uplink]\nbatch_max_record = 10\n", "uplink.batch_max_record"),
        ('[[devices]]\naddress = "C0:00:00:00:00:01"\npatient = "pt-0001"\npatient_name = "x"\n',
         "devices.0.patient_name"),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ],
)
def test_unknown_key_is_an_error(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    msg = config_error(path)
    assert "\n" not in msg
    assert str(path) in msg
    assert f"'{field}'" in msg


def test_one_line_per_problem(tmp_path: Path) -> None:
    path = write(tmp_path, 'bogus = 1\n[uplink]\nbatch_max_records = "lots"\n')
    lines = config_error(path).split("\n")
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert sorted("'bogus'" in line for line in lines) == [False, True]


@pytest.mark.parametrize("text", ["site = \n", "[uplink\nx = 1\n", 'site = "a"\nsite = "b"\n', "= 3\n",
                                  'gateway_id = "unterminated\n'])
def test_invalid_toml_is_one_line(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    msg = config_error(path)
    assert "\n" not in msg
    assert str(path) in msg
    assert "TOML" in msg


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    msg = config_error(path)
    assert "\n" not in msg
    assert str(path) in msg


def test_env_overrides_file_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("CARDIOGATE_GATEWAY__SITE", "site-env")
    s = load_gateway_settings(path)
    assert s.site == "site-env"
    assert s.gateway_id == "gw-ward7"  # the rest still comes from the file


def test_env_nested_field_merges_with_file_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("CARDIOGATE_GATEWAY__UPLINK__MAX_IN_FLIGHT", "9")
    s = load_gateway_settings(path)
    assert s.uplink.max_in_flight == 9
    assert s.uplink.batch_max_records == 50
    assert s.uplink.target == "ingest.example:443"


def test_env_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOGATE_GATEWAY__SITE", "site-env")
    assert load_gateway_settings(None).site == "site-env"


def test_bad_env_value_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOGATE_GATEWAY__SITE", "site env")
    msg = config_error(write(tmp_path, GOOD))
    assert "\n" not in msg
    assert "'site'" in msg


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_gateway_settings(write(tmp_path, GOOD))
    with pytest.raises(ValueError):
        s.site = "other"
    with pytest.raises(ValueError):
        s.uplink.batch_max_records = 1


def test_unparsable_env_json_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOGATE_GATEWAY__DEVICES", "not json")
    config_error(write(tmp_path, GOOD))


# -- precedence: command-line flag > environment > file > default ------------------------------------

@pytest.mark.parametrize(
    ("in_file", "in_env", "flag", "expected"),
    [
        (False, False, False, "127.0.0.1:18900"),  # the default
        (True, False, False, "127.0.0.1:1111"),    # file over default
        (True, True, False, "127.0.0.1:2222"),     # environment over file
        (False, True, False, "127.0.0.1:2222"),
        (True, True, True, "127.0.0.1:3333"),      # flag over environment and file
        (True, False, True, "127.0.0.1:3333"),
        (False, True, True, "127.0.0.1:3333"),
        (False, False, True, "127.0.0.1:3333"),
    ],
)
def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         in_file: bool, in_env: bool, flag: bool,
                                                         expected: str) -> None:
    from cardiogate.sim.scenario import load_sim_settings

    path = tmp_path / "sim.toml"
    path.write_text('listen = "127.0.0.1:1111"\n' if in_file else "", encoding="utf-8")
    if in_env:
        monkeypatch.setenv("CARDIOGATE_SIM__LISTEN", "127.0.0.1:2222")
    flags = {"listen": "127.0.0.1:3333"} if flag else {}
    assert load_sim_settings(path, **flags).listen == expected


def test_layers_merge_field_by_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag for one nested field, a variable for another and the file for the rest all count."""
    monkeypatch.setenv("CARDIOGATE_GATEWAY__UPLINK__MAX_IN_FLIGHT", "9")
    monkeypatch.setenv("CARDIOGATE_GATEWAY__UPLINK__TARGET", "env.example:1")
    s = load_gateway_settings(write(tmp_path, GOOD), uplink={"target": "flag.example:2"}, site="site-flag")
    assert (s.uplink.target, s.uplink.max_in_flight, s.uplink.batch_max_records) == ("flag.example:2", 9, 50)
    assert (s.site, s.gateway_id) == ("site-flag", "gw-ward7")


def test_flags_last_only_for_their_own_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOGATE_GATEWAY__SITE", "site-env")
    path = write(tmp_path, GOOD)
    assert load_gateway_settings(path, site="site-flag").site == "site-flag"
    assert load_gateway_settings(path).site == "site-env"
    assert GatewaySettings().site == "site-env"  # built directly: environment over defaults, no leftover flag


def test_a_bad_flag_value_is_a_config_error_naming_the_field(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOGATE_GATEWAY__UPLINK__MAX_IN_FLIGHT", "4")
    with pytest.raises(ConfigError) as info:
        load_gateway_settings(write(tmp_path, GOOD), uplink={"max_in_flight": "lots"})
    assert "\n" not in str(info.value) and "'uplink.max_in_flight'" in str(info.value)
