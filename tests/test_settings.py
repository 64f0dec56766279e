"""Settings: TOML plus FLEETCARE_<SECTION>_<KEY> overrides, and errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.settings import SettingsError, describe, load_settings

GOOD = """
[agent]
id = "agent-1"
customer = "acme"
site = "hq"
interval = 15

[mqtt]
url = "mqtts://broker.example:8883"
username = "agent"
topic_prefix = "lab"

[host]
enabled = false

[[simulate.devices]]
name = "sw-1"
kind = "switch"

[[simulate.devices]]
name = "ups-1"
kind = "ups"
"""

IDENTITY = '[agent]\nid = "agent-1"\ncustomer = "acme"\nsite = "hq"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> AgentConfig:
    return load_settings(AgentConfig, write(tmp_path, text), environ=environ or {})


def load_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, text, environ)
    return str(info.value)


# ---------------------------------------------------------------- loading

def test_load_from_toml(tmp_path: Path) -> None:
    cfg = load(tmp_path, GOOD)

    assert (cfg.agent.id, cfg.agent.customer, cfg.agent.site) == ("agent-1", "acme", "hq")
    assert cfg.agent.interval == 15.0 and isinstance(cfg.agent.interval, float)
    assert cfg.mqtt.url == "mqtts://broker.example:8883"
    assert cfg.mqtt.username == "agent"
    assert cfg.mqtt.password is None
    assert cfg.mqtt.topic_prefix == "lab"
    assert cfg.mqtt.keepalive == 30  # untouched defaults stay
    assert cfg.host.enabled is False
    assert [(d.name, d.kind) for d in cfg.simulate.devices] == [("sw-1", "switch"), ("ups-1", "ups")]
    assert cfg.origin.agent == "agent-1"


def test_env_overrides_toml(tmp_path: Path) -> None:
    cfg = load(tmp_path, GOOD, {"FLEETCARE_AGENT_INTERVAL": "30",
                                "FLEETCARE_MQTT_URL": "mqtt://10.0.0.5:1884",
                                "FLEETCARE_MQTT_KEEPALIVE": "60",
                                "FLEETCARE_MQTT_USERNAME": "",
                                "FLEETCARE_UNRELATED_THING": "ignored"})

    assert cfg.agent.interval == 30.0
    assert cfg.mqtt.url == "mqtt://10.0.0.5:1884"
    assert cfg.mqtt.keepalive == 60
    assert cfg.mqtt.username is None  # an empty variable clears an optional setting
    assert cfg.agent.id == "agent-1"  # the rest of the file still applies


def test_env_read_from_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETCARE_AGENT_INTERVAL", "30")
    monkeypatch.setenv("FLEETCARE_MQTT_URL", "mqtt://broker.internal:1883")

    cfg = load_settings(AgentConfig, write(tmp_path, GOOD))

    assert cfg.agent.interval == 30.0
    assert cfg.mqtt.url == "mqtt://broker.internal:1883"


def test_env_alone_without_a_file() -> None:
    cfg = load_settings(AgentConfig, None, environ={"FLEETCARE_AGENT_ID": "a", "FLEETCARE_AGENT_CUSTOMER": "c",
                                                    "FLEETCARE_AGENT_SITE": "s"})
    assert cfg.origin.agent == "a"
    assert cfg.mqtt.url == "mqtt://127.0.0.1:1883"


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("YES", True), (" on ", True),
                                           ("0", False), ("false", False), ("No", False), ("off", False)])
def test_boolean_env(tmp_path: Path, raw: str, expected: bool) -> None:
    cfg = load(tmp_path, IDENTITY, {"FLEETCARE_HOST_ENABLED": raw})
    assert cfg.host.enabled is expected


def test_bad_boolean_env_names_the_variable(tmp_path: Path) -> None:
    message = load_error(tmp_path, IDENTITY, {"FLEETCARE_HOST_ENABLED": "maybe"})
    assert "FLEETCARE_HOST_ENABLED" in message and "maybe" in message


def test_bad_number_env_names_the_variable(tmp_path: Path) -> None:
    message = load_error(tmp_path, IDENTITY, {"FLEETCARE_AGENT_INTERVAL": "soon"})
    assert "FLEETCARE_AGENT_INTERVAL" in message and "soon" in message


# ---------------------------------------------------------------- errors name the field

@pytest.mark.parametrize("text, field", [
    (IDENTITY + 'interval = "fast"\n', "agent.interval"),
    ('[mqtt]\nkeepalive = 2.5\n', "mqtt.keepalive"),
    ('[mqtt]\nkeepalive = true\n', "mqtt.keepalive"),
    ('[mqtt]\nurl = 1883\n', "mqtt.url"),
    ('[host]\nenabled = "yes"\n', "host.enabled"),
    ('[host]\nignore_fstypes = "tmpfs"\n', "host.ignore_fstypes"),
    ('[[simulate.devices]]\nname = 5\nkind = "ups"\n', "simulate.devices[0].name"),
])
def test_wrong_type_names_the_dotted_field(tmp_path: Path, text: str, field: str) -> None:
    if not text.startswith("[agent]"):
        text = IDENTITY + text
    message = load_error(tmp_path, text)
    assert field in message
    assert str(tmp_path / "agent.toml") in message


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    message = load_error(tmp_path, 'mqtt = "mqtt://x"\n' + IDENTITY)
    assert "mqtt" in message and "table" in message


@pytest.mark.parametrize("text, name", [
    (IDENTITY + "intervall = 5\n", "agent.intervall"),
    (IDENTITY + "[mqtt]\nhost = \"x\"\n", "mqtt.host"),
    (IDENTITY + "[metrics]\nx = 1\n", "metrics"),
    (IDENTITY + '[[simulate.devices]]\nname = "a"\nkind = "ups"\nport = 1\n', "simulate.devices[0].port"),
])
def test_unknown_key_is_named(tmp_path: Path, text: str, name: str) -> None:
    message = load_error(tmp_path, text)
    assert f"unknown setting {name}" in message


def test_invalid_toml(tmp_path: Path) -> None:
    message = load_error(tmp_path, "[agent\nid = ")
    assert "not valid TOML" in message and "agent.toml" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(SettingsError) as info:
        load_settings(AgentConfig, path, environ={})
    assert str(path) in str(info.value) and "not found" in str(info.value)


# ---------------------------------------------------------------- AgentConfig validation

@pytest.mark.parametrize("text, expected", [
    ('[agent]\ncustomer = "acme"\nsite = "hq"\n', "agent.id is required"),
    ('[agent]\nid = "agent 1!"\ncustomer = "acme"\nsite = "hq"\n', "agent.id 'agent 1!'"),
    ('[agent]\nid = "-agent"\ncustomer = "acme"\nsite = "hq"\n', "agent.id '-agent'"),
    ('[agent]\nid = "a"\nsite = "hq"\n', "agent.customer is required"),
    (IDENTITY + "interval = 0\n", "agent.interval 0"),
    (IDENTITY + "interval = 7200\n", "agent.interval 7200"),
    (IDENTITY + '[mqtt]\nurl = "http://broker:1883"\n', "mqtt.url 'http://broker:1883'"),
    (IDENTITY + '[mqtt]\nurl = "mqtt://broker:port"\n', "mqtt.url 'mqtt://broker:port'"),
    (IDENTITY + '[mqtt]\ntopic_prefix = "fleet/#"\n', "mqtt.topic_prefix"),
    (IDENTITY + '[mqtt]\nmax_inflight = 0\n', "mqtt.max_inflight"),
    (IDENTITY + '[[simulate.devices]]\nname = "bad name"\nkind = "ups"\n', "simulate.devices[0].name 'bad name'"),
    (IDENTITY + '[[simulate.devices]]\nname = "ups-1"\n', "simulate.devices[0].kind is required"),
    (IDENTITY + '[[simulate.devices]]\nname = "sw"\nkind = "switch"\n[[simulate.devices]]\nname = "sw"\nkind = "ups"\n',
     "device name 'sw' is used twice"),
    (IDENTITY + '[[simulate.devices]]\nname = "host"\nkind = "ups"\n', "device name 'host' is used twice"),
])
def test_validation_errors_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'agent.toml'}: ")
    assert message.removeprefix(f"{tmp_path / 'agent.toml'}: ").startswith(expected), message


def test_simulated_device_named_host_is_fine_without_the_host_probe(tmp_path: Path) -> None:
    cfg = load(tmp_path, IDENTITY + '[host]\nenabled = false\n[[simulate.devices]]\nname = "host"\nkind = "ups"\n')
    assert [d.name for d in cfg.simulate.devices] == ["host"]


def test_env_value_is_validated_too(tmp_path: Path) -> None:
    message = load_error(tmp_path, IDENTITY, {"FLEETCARE_AGENT_INTERVAL": "0"})
    assert "agent.interval 0" in message


# ---------------------------------------------------------------- describe

@dataclass
class _Inner:
    port: int = 1883
    name: str | None = None
    tags: list[str] = field(default_factory=lambda: ["a"])


@dataclass
class _Outer:
    first: _Inner = field(default_factory=_Inner)
    flag: bool = False


def test_describe_lists_every_field_with_type_and_default() -> None:
    rows = describe(_Outer)
    assert [(name, default) for name, _, default in rows] == [
        ("first.port", 1883), ("first.name", None), ("first.tags", ["a"]), ("flag", False)]
    types = dict((name, kind) for name, kind, _ in rows)
    assert types["first.port"] == "int" and types["flag"] == "bool"


def test_describe_agent_config_covers_the_fixed_keys_with_their_defaults() -> None:
    rows = {name: default for name, _, default in describe(AgentConfig)}
    for fixed in ("agent.id", "agent.customer", "agent.site", "agent.interval", "agent.data_dir",
                  "mqtt.url", "mqtt.username", "mqtt.password", "mqtt.topic_prefix", "mqtt.keepalive",
                  "mqtt.max_inflight", "mqtt.ca_file", "host.enabled", "host.ignore_fstypes",
                  "host.ignore_interfaces", "simulate.devices", "snmp.targets"):
        assert fixed in rows, fixed
    defaults = AgentConfig()
    for name, default in rows.items():
        section, key = name.split(".")
        assert getattr(getattr(defaults, section), key) == default, name


def test_every_described_setting_can_be_set_in_toml(tmp_path: Path) -> None:
    """describe() and the loader agree on names: setting every scalar to its default loads cleanly."""
    sections: dict[str, list[str]] = {}
    for name, kind, default in describe(AgentConfig):
        section, key = name.split(".")
        if default is None or isinstance(default, list):
            continue
        literal = {"bool": str(default).lower(), "str": f'"{default}"'}.get(kind, repr(default))
        if section == "agent" and key in ("id", "customer", "site"):
            literal = '"x"'
        sections.setdefault(section, []).append(f"{key} = {literal}")
    text = "\n".join(f"[{s}]\n" + "\n".join(lines) for s, lines in sections.items()) + "\n"

    cfg = load(tmp_path, text)

    assert cfg.mqtt == AgentConfig().mqtt
    assert cfg.host == AgentConfig().host


@pytest.mark.parametrize("user, message", [
    ('user = "t"\nauth_protocol = "SHA1"\nauth_key = "12345678"', "auth_protocol 'SHA1' must be one of"),
    ('user = "t"\nauth_key = "short"', "auth_key must be at least 8 characters"),
    ('user = "t"\nauth_protocol = ""\npriv_protocol = "AES"\npriv_key = "12345678"', "privacy without authentication"),
    ('user = "t"\nauth_key = "12345678"\nengine_id = "xyz"', "engine_id must be hex"),
    ('auth_key = "12345678"', "user is required"),
])
def test_trap_users_are_checked_at_load(tmp_path: Path, user: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(IDENTITY + "[[snmp.trap_users]]\n" + user + "\n")
    with pytest.raises(SettingsError, match=message):
        load_settings(AgentConfig, path)
