"""The files in deploy/ stay in step with the code: sample configs, units, compose file, broker ACLs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent import config as agent_config
from agent import wire
from agent.config import AgentConfig
from agent.settings import describe
from collector import config as server_config
from collector.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

#: Settings the samples fill with example values instead of the default.
AGENT_EXAMPLES = {"agent.id", "agent.customer", "agent.site", "mqtt.url"}
SERVER_EXAMPLES = {"database.url", "mqtt.url"}


@pytest.fixture(autouse=True)
def _no_fleetcare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The samples are compared with the defaults, not with whatever this shell exports."""
    for name in list(os.environ):
        if name.startswith("FLEETCARE_"):
            monkeypatch.delenv(name)


def value_at(config: object, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def as_plain(value: Any) -> Any:
    """Dataclass lists (simulate.devices) compare as lists of dicts."""
    import dataclasses
    if isinstance(value, list):
        return [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    return value


def sample_keys(path: Path) -> dict[str, set[str]]:
    """section → keys written in the file, set or commented out (``# key = …``)."""
    keys: dict[str, set[str]] = {}
    current = ""
    for line in path.read_text("utf-8").splitlines():
        header = re.match(r"^\[([a-z_]+)\]\s*$", line)
        if header:
            current = header.group(1)
            keys.setdefault(current, set())
            continue
        item = re.match(r"^#?\s?([a-z_]+)\s*=", line)
        if item and current:
            keys[current].add(item.group(1))
    return keys


@pytest.mark.parametrize("cls, loader, sample, examples", [
    (AgentConfig, agent_config.load, "agent.toml", AGENT_EXAMPLES),
    (ServerConfig, server_config.load, "server.toml", SERVER_EXAMPLES),
], ids=["agent", "server"])
def test_sample_config_loads_and_holds_the_defaults(cls: type, loader: Any, sample: str, examples: set[str]) -> None:
    loaded = loader(DEPLOY / sample)
    rows = describe(cls)
    assert examples <= {name for name, _, _ in rows}
    for name, _, default in rows:
        value = as_plain(value_at(loaded, name))
        if name in examples:
            assert value and value != default, f"{sample}: {name} should carry an example value"
        else:
            assert value == default, f"{sample}: {name} = {value!r}, but the default is {default!r}"


@pytest.mark.parametrize("cls, sample", [(AgentConfig, "agent.toml"), (ServerConfig, "server.toml")],
                         ids=["agent", "server"])
def test_sample_config_mentions_every_setting(cls: type, sample: str) -> None:
    """Settings whose default is "not set" cannot be written in TOML, so they appear commented out."""
    keys = sample_keys(DEPLOY / sample)
    for name, _, default in describe(cls):
        section, key = name.split(".", 1)
        assert key in keys.get(section, set()), f"{sample}: [{section}] {key} is not in the sample"


def test_agent_sample_identity_is_a_valid_origin() -> None:
    loaded = agent_config.load(DEPLOY / "agent.toml")
    topic = wire.topic(loaded.mqtt.topic_prefix, loaded.origin, wire.TELEMETRY)
    assert wire.parse_topic(loaded.mqtt.topic_prefix, topic) == (loaded.origin, wire.TELEMETRY)


# ---------------------------------------------------------------- units, image, compose

def test_systemd_units_start_real_subcommands_with_the_deploy_configs() -> None:
    from fleetcare.cli import build_parser
    parser = build_parser()
    for unit, command in (("fleetcare-agent.service", "agent"), ("fleetcare-server.service", "server")):
        text = (DEPLOY / unit).read_text("utf-8")
        exec_start = re.search(r"^ExecStart=(\S+) (.+)$", text, re.M)
        assert exec_start and exec_start.group(1) == "/opt/fleetcare/venv/bin/fleetcare"
        args = parser.parse_args(exec_start.group(2).split())
        assert args.command == command
        assert str(args.config) == f"/etc/fleetcare/{command}.toml"
        for directive in ("User=fleetcare", "Restart=on-failure", f"EnvironmentFile=-/etc/fleetcare/{command}.env",
                          "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=fleetcare"):
            assert re.search(rf"^{re.escape(directive)}$", text, re.M), f"{unit}: {directive} missing"


def _fleetcare_variables(text: str) -> set[str]:
    return set(re.findall(r"\b(FLEETCARE_[A-Z_]+)\b", text))


def _known_variables() -> set[str]:
    names = {f"FLEETCARE_{n.replace('.', '_')}".upper() for n, _, _ in describe(AgentConfig) + describe(ServerConfig)}
    return names


def test_deploy_files_name_only_real_environment_variables() -> None:
    known = _known_variables()
    for name in ("compose.yaml", "Dockerfile", "fleetcare-agent.service", "fleetcare-server.service",
                 "agent.toml", "server.toml"):
        unknown = _fleetcare_variables((DEPLOY / name).read_text("utf-8")) - known
        assert not unknown, f"deploy/{name} names unknown settings {sorted(unknown)}"


def test_compose_file_is_valid_and_wires_the_server() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    services = compose["services"]
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    server = services["server"]
    assert server["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / server["build"]["context"] / server["build"]["dockerfile"]).exists()
    env = server["environment"]
    assert env["FLEETCARE_MQTT_URL"] == "mqtt://mosquitto:1883"
    assert "@timescaledb:5432/" in env["FLEETCARE_DATABASE_URL"]
    for mount in services["mosquitto"]["volumes"] + server["volumes"]:
        source = mount.split(":", 1)[0]
        if source.startswith("./") and source != "./passwd":  # passwd is created by the operator
            assert (DEPLOY / source).exists(), f"compose.yaml mounts missing {source}"


def test_dockerfile_copies_every_package() -> None:
    text = (DEPLOY / "Dockerfile").read_text("utf-8")
    for package in ("agent", "collector", "alerting", "api", "fleetcare"):
        assert re.search(rf"^COPY {package} ", text, re.M), f"Dockerfile does not copy {package}/"
    assert "'.[server]'" in text


# ---------------------------------------------------------------- broker files

def test_broker_files_match_the_default_topics_and_group() -> None:
    prefix = f"{wire.DEFAULT_PREFIX}/{wire.TOPIC_VERSION}/"
    group = ServerConfig().mqtt.share_group
    acl = (DEPLOY / "mosquitto.acl").read_text("utf-8")
    assert re.search(rf"^topic read {re.escape(prefix)}#$", acl, re.M)
    assert re.search(rf"^pattern write {re.escape(prefix)}\+/\+/%u/#$", acl, re.M)
    emqx = (DEPLOY / "emqx-acl.conf").read_text("utf-8")
    assert f'"{prefix}+/+/${{username}}/#"' in emqx
    assert f'"$share/{group}/{wire.subscription(wire.DEFAULT_PREFIX, wire.TELEMETRY)}"' in emqx
    conf = (DEPLOY / "mosquitto.conf").read_text("utf-8")
    for line in ("persistence true", "max_queued_messages 0", "max_inflight_messages 0",
                 "allow_anonymous false", "password_file /mosquitto/config/passwd",
                 "acl_file /mosquitto/config/mosquitto.acl"):
        assert re.search(rf"^{re.escape(line)}$", conf, re.M), f"mosquitto.conf: {line!r} missing"


@pytest.mark.skipif(not (shutil.which("mosquitto") or os.access("/usr/sbin/mosquitto", os.X_OK))
                    or not shutil.which("mosquitto_passwd"), reason="mosquitto not installed")
def test_mosquitto_acl_confines_agents_and_lets_the_collector_read(tmp_path: Path) -> None:
    """Run deploy/mosquitto.conf and deploy/mosquitto.acl for real (paths moved to tmp_path)."""
    import getpass

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from fleetcare.embedded import free_port, wait_for_port

    port = free_port()
    (tmp_path / "data").mkdir()
    conf = (DEPLOY / "mosquitto.conf").read_text("utf-8")
    conf = conf.replace("/mosquitto/config", str(tmp_path)).replace("/mosquitto/data", str(tmp_path / "data"))
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.M)
    conf += f"\nuser {getpass.getuser()}\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    shutil.copy(DEPLOY / "mosquitto.acl", tmp_path / "mosquitto.acl")
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    for user, password in (("fleetcare-collector", "c-secret"), ("acme-hq-gw", "a-secret")):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([binary, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    clients: list[paho.Client] = []

    def client(user: str, password: str) -> paho.Client:
        import threading
        connected = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}",
                        protocol=paho.MQTTv5)
        c.username_pw_set(user, password)
        c.on_connect = lambda *args: connected.set()
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients.append(c)
        assert connected.wait(10), f"{user} could not connect"
        return c

    def subscribe(c: paho.Client, topic: str) -> None:
        import threading
        acked = threading.Event()
        c.on_subscribe = lambda *args: acked.set()
        c.subscribe([(topic, 1)])
        assert acked.wait(10), f"no SUBACK for {topic}"

    try:
        wait_for_port("127.0.0.1", port)
        received: dict[str, list[bytes]] = {"collector": [], "agent": []}
        collector = client("fleetcare-collector", "c-secret")
        collector.on_message = lambda c, u, m: received["collector"].append(m.payload)
        subscribe(collector, f"$share/{ServerConfig().mqtt.share_group}/"
                             f"{wire.subscription(wire.DEFAULT_PREFIX, wire.TELEMETRY)}")
        snoop = client("acme-hq-gw", "a-secret")
        snoop.on_message = lambda c, u, m: received["agent"].append(m.payload)
        subscribe(snoop, f"{wire.DEFAULT_PREFIX}/#")  # acknowledged, but with a refusal code

        own = wire.topic(wire.DEFAULT_PREFIX, wire.Origin("acme", "hq", "acme-hq-gw"), wire.TELEMETRY)
        foreign = wire.topic(wire.DEFAULT_PREFIX, wire.Origin("acme", "hq", "other-gw"), wire.TELEMETRY)
        # Mosquitto acknowledges a refused publish, then closes that connection: use a client of its own.
        intruder = client("acme-hq-gw", "a-secret")
        intruder.reconnect_delay_set(30, 30)
        info = intruder.publish(foreign, b"foreign", qos=1)
        try:
            info.wait_for_publish(5)
        except RuntimeError:
            pass
        agent = client("acme-hq-gw", "a-secret")
        agent.publish(own, b"own", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while b"own" not in received["collector"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert received["collector"] == [b"own"], "the collector should get its agent's message, and only that"
        assert received["agent"] == [], "an agent login must not be able to read fleetcare topics"
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.terminate()
        broker.wait(10)


def test_example_contracts_are_valid_contracts() -> None:
    import tomllib

    from alerting.inspection_policy import default_policy
    from alerting.sla import load_rules
    from api.case_models import ContractIn
    files = sorted((ROOT / "deploy" / "contracts").glob("*.toml"))
    assert len(files) >= 2
    rules, policy = load_rules(), default_policy()
    for path in files:
        body = ContractIn(**tomllib.loads(path.read_text("utf-8")))
        rules.calendar(body.calendar or rules.policy(body.sla_policy).calendar)
        assert policy.months(body.inspection_cadence) and body.callback_plan in policy.callback_plans
