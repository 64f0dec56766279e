"""Shared fixtures: the real services when this machine runs them, embedded ones when it does not.

PostgreSQL: FLEETCARE_TEST_DATABASE_URL, else 127.0.0.1:5432, else an embedded server. Each test
that needs a database gets a fresh one, copied from a migrated template (fast, isolated).
MQTT: FLEETCARE_TEST_MQTT_URL, else 127.0.0.1:1883, else a private Mosquitto, else in-process amqtt.
Every test uses its own topic prefix, so tests never see each other's messages on a shared broker.

FLEETCARE_TEST_EMBEDDED=1 ignores the machine's services (a fresh machine, simulated);
FLEETCARE_TEST_EMBEDDED=amqtt also ignores the mosquitto binary (a machine without it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from agent import mqtt
from collector.config import ServerConfig
from collector.migrate import migrate
from fleetcare import embedded

pytest_plugins = ["tests.snmp_services"]
ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


EMBEDDED = os.environ.get("FLEETCARE_TEST_EMBEDDED", "")


def with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.1,
               message: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message} (last: {last!r})")


# ---------------------------------------------------------------- PostgreSQL

@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to a database we may CREATE DATABASE from."""
    candidates = [] if EMBEDDED else [os.environ.get("FLEETCARE_TEST_DATABASE_URL"),
                                      "postgresql://postgres@127.0.0.1:5432/postgres"]
    for url in filter(None, candidates):
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            yield url
            return
        except psycopg.OperationalError:
            continue
    server = embedded.EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", database="postgres")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A migrated database, copied for each test that needs one."""
    name = f"fc_tpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(pg_admin_url, name)
    migrate(url)
    try:
        yield name
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _scratch_database(admin_url: str, prefix: str, template: str | None = None) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    try:
        yield with_dbname(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    with _scratch_database(pg_admin_url, "fc_t", template_db) as url:
        yield url


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    with _scratch_database(pg_admin_url, "fc_e") as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Any]:
    """A Store (the collector's writer) on a fresh database."""
    from collector.migrate import backend_of
    from collector.store import Store
    conn = psycopg.connect(db_url)
    backend = backend_of(conn)
    conn.commit()
    yield Store(conn, backend)
    conn.close()


# ---------------------------------------------------------------- MQTT

@dataclass(frozen=True)
class Broker:
    url: str
    protocol: int
    kind: str

    @property
    def v5(self) -> bool:
        return self.protocol == mqtt.MQTTv5


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    candidates = [] if EMBEDDED else [os.environ.get("FLEETCARE_TEST_MQTT_URL"), "mqtt://127.0.0.1:1883"]
    for url in filter(None, candidates):
        try:
            yield Broker(url, mqtt.negotiate_protocol(url, timeout=2.0), "external")
            return
        except mqtt.BrokerUnavailable:
            continue
    directory = tmp_path_factory.mktemp("broker")
    service = embedded.InProcessAmqtt() if EMBEDDED == "amqtt" else embedded.broker(directory)
    url = service.start()
    try:
        yield Broker(url, mqtt.negotiate_protocol(url, timeout=10.0), service.kind)
    finally:
        service.stop()


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own."""
    return f"fctest-{uuid.uuid4().hex[:10]}"


def config_for(db_url: str, broker_url: str, prefix: str) -> ServerConfig:
    """A server configuration on this database and broker, under a topic prefix of its own."""
    cfg = ServerConfig()
    cfg.database.url = db_url
    cfg.mqtt.url = broker_url
    cfg.mqtt.topic_prefix = prefix
    cfg.mqtt.client_id = f"collector-{prefix}"
    cfg.mqtt.share_group = f"g-{prefix}"
    return cfg


@pytest.fixture
def server_config(db_url: str, broker: Broker, prefix: str) -> ServerConfig:
    cfg = config_for(db_url, broker.url, prefix)
    cfg.mqtt.session_expiry_s = 300
    cfg.collector.batch_ms = 50
    return cfg


class Publisher:
    """A raw MQTT publisher for tests: sends exactly the bytes it is given, QoS 1, and waits."""

    def __init__(self, broker: Broker) -> None:
        address = mqtt.BrokerAddress.parse(broker.url)
        self.client = mqtt.new_client(f"pub-{uuid.uuid4().hex[:8]}", broker.protocol)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=30)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    pub = Publisher(broker)
    yield pub
    pub.close()


@pytest.fixture
def run_collector(server_config: ServerConfig, broker: Broker) -> Iterator[Callable[..., object]]:
    """Start an in-process collector (call it to start); stopped at teardown."""
    from collector.ingest import Collector
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(cfg: ServerConfig | None = None) -> Collector:
        col = Collector(cfg or server_config, protocol=broker.protocol)
        stop = threading.Event()
        thread = threading.Thread(target=col.run, args=(stop,), daemon=True)
        thread.start()
        assert col.ready.wait(10), "collector did not connect"
        time.sleep(0.3)  # let the SUBSCRIBE reach the broker before tests publish
        started.append((stop, thread))
        return col

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(30)


# ---------------------------------------------------------------- processes

class Processes:
    """Subprocesses of a test, always reaped (killed if need be) at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def fleetcare(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "fleetcare.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True, cwd=ROOT)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def write_agent_config(path: Path, *, agent: str, customer: str, site: str, mqtt_url: str, prefix: str,
                       interval: float = 1.0, host: bool = True, devices: list[tuple[str, str]] = ()) -> Path:
    lines = ["[agent]", f'id = "{agent}"', f'customer = "{customer}"', f'site = "{site}"',
             f"interval = {interval}", f'data_dir = "{path.parent / agent}"', "",
             "[mqtt]", f'url = "{mqtt_url}"', f'topic_prefix = "{prefix}"', "",
             "[host]", f"enabled = {'true' if host else 'false'}", ""]
    for name, kind in devices:
        lines += ["[[simulate.devices]]", f'name = "{name}"', f'kind = "{kind}"', ""]
    path.write_text("\n".join(lines))
    return path


@dataclass
class SmtpInbox:
    """A real SMTP server (aiosmtpd) on a loopback port; `messages` holds (recipients, raw bytes)."""

    port: int
    messages: list[tuple[list[str], bytes]]


@pytest.fixture
def smtp_inbox() -> Iterator[SmtpInbox]:
    from aiosmtpd.controller import Controller

    inbox = SmtpInbox(embedded.free_port(), [])

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            inbox.messages.append((envelope.rcpt_tos, envelope.content))
            return "250 OK"

    ctl = Controller(Handler(), hostname="127.0.0.1", port=inbox.port)
    ctl.start()
    try:
        yield inbox
    finally:
        ctl.stop()
