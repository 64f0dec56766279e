"""A rig for the fault tests: a Mosquitto and a PostgreSQL of the test's own (both can be stopped and
started again on the same data), real agent and collector processes, and the agent's audit record
to compare the database against.

The audit file (``spool.audit_path``) holds every message the agent produced, written before the
message is spooled; the samples it lists are exactly what must end up in ``samples``.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from tests.api_support import api_client

from collector.migrate import migrate
from fleetcare import embedded
from tests.conftest import Processes, wait_until, write_agent_config

#: (device, series key, ts in epoch milliseconds, value)
Sample = tuple[str, str, int, float]

STORED_SQL = """
SELECT d.key, s.key, round(extract(epoch FROM x.time) * 1000)::bigint, x.value
FROM samples x JOIN devices d ON d.id = x.device_id JOIN series s ON s.id = x.series_id
"""


def with_params(url: str, **params: str) -> str:
    """``url`` with extra query parameters (e.g. application_name, to tell backends apart)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="/"), parts.fragment))


def read_audit(path: Path) -> list[Sample]:
    """Every sample in the telemetry messages of the audit file, in order (duplicates kept)."""
    samples: list[Sample] = []
    if not path.exists():
        return samples
    for n, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path}:{n}: not a complete JSON line (an agent died while writing it?): "
                                 f"{line[:200]!r}") from None
        if record["kind"] != "telemetry":
            continue
        for point in record["payload"]["points"]:
            ts = round(point["ts"] * 1000)
            samples.extend((point["device"], key, ts, float(value)) for key, value in point["metrics"].items())
    return samples


@dataclass
class Rig:
    tmp_path: Path
    processes: Processes
    prefix: str = field(default_factory=lambda: f"fcfault-{uuid.uuid4().hex[:8]}")
    broker: embedded.PrivateMosquitto | None = None
    pg: embedded.EmbeddedPostgres | None = None
    pg_root: Path | None = None
    db_url: str = ""
    agent_proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------ services

    def start_services(self) -> None:
        self.broker = embedded.PrivateMosquitto(self.tmp_path / "mosquitto")
        self.broker.start()
        # Not under tmp_path: PostgreSQL runs as another user when the tests run as root, and a
        # concurrent pytest session resets /tmp/pytest-of-<user> to mode 0700 — pg_ctl would then
        # fail to reach its data directory on a restart. A directory of our own keeps its mode.
        self.pg_root = Path(tempfile.mkdtemp(prefix="fcfault-pg-"))
        self.pg = embedded.EmbeddedPostgres(self.pg_root / "data", database="fleetcare")
        self.db_url = self.pg.start()
        migrate(self.db_url)

    def stop_broker(self) -> None:
        assert self.broker is not None
        self.broker.stop()

    def start_broker(self) -> None:
        """A new Mosquitto on the same data directory (sessions, queued messages) and port."""
        assert self.broker is not None
        self.broker = embedded.PrivateMosquitto(self.broker.data_dir, port=self.broker.port)
        self.broker.start()

    @property
    def mqtt_url(self) -> str:
        assert self.broker is not None
        return self.broker.url

    def teardown(self) -> None:
        self.processes.stop_all()
        for service in (self.broker, self.pg):
            if service is not None:
                try:
                    service.stop()
                except Exception:  # tearing down anyway
                    pass
        if self.pg_root is not None:
            shutil.rmtree(self.pg_root, ignore_errors=True)

    # ------------------------------------------------------------ processes

    def collector_env(self, client_id: str, **extra: str) -> dict[str, str]:
        env = {"FLEETCARE_DATABASE_URL": with_params(self.db_url, application_name=client_id),
               "FLEETCARE_MQTT_URL": self.mqtt_url, "FLEETCARE_MQTT_TOPIC_PREFIX": self.prefix,
               "FLEETCARE_MQTT_CLIENT_ID": client_id, "FLEETCARE_MQTT_SHARE_GROUP": f"g-{self.prefix}",
               "FLEETCARE_MQTT_SESSION_EXPIRY_S": "600", "FLEETCARE_COLLECTOR_BATCH_MS": "50"}
        env.update({f"FLEETCARE_{k.upper()}": v for k, v in extra.items()})
        return env

    def start_collector(self, log_name: str, client_id: str = "", *, wait: bool = True,
                        **extra: str) -> subprocess.Popen[bytes]:
        """A ``fleetcare collector`` process; returns once it is connected and subscribed (``wait``)."""
        client_id = client_id or f"col-{self.prefix}"
        before = self.processes.log(log_name).count("collector connected to")
        proc = self.processes.fleetcare(log_name, "collector", env=self.collector_env(client_id, **extra))
        if not wait:
            return proc
        try:
            wait_until(lambda: proc.poll() is not None
                       or self.processes.log(log_name).count("collector connected to") > before,
                       timeout=30, message=f"{log_name} connected")
        except AssertionError:
            raise AssertionError(f"{log_name} did not connect:\n{self.processes.log(log_name)}") from None
        assert proc.poll() is None, f"{log_name} exited:\n{self.processes.log(log_name)}"
        time.sleep(0.5)  # let the SUBSCRIBE settle before anything is published
        return proc

    @property
    def agent_data(self) -> Path:
        return self.tmp_path / "gw1"

    @property
    def audit_path(self) -> Path:
        return self.tmp_path / "audit.jsonl"

    @property
    def spool_path(self) -> Path:
        return self.agent_data / "spool.sqlite"

    def write_agent_config(self, devices: list[tuple[str, str]]) -> Path:
        conf = write_agent_config(self.tmp_path / "agent.toml", agent="gw1", customer="acme", site="hq",
                                  mqtt_url=self.mqtt_url, prefix=self.prefix, interval=1.0, host=False,
                                  devices=devices)
        with conf.open("a") as f:
            f.write("\n[spool]\ndisk = true\n"
                    f'audit_path = "{self.audit_path}"\n'
                    "backlog_rate = 1000\n")
        return conf

    def start_agent(self, devices: list[tuple[str, str]]) -> subprocess.Popen[bytes]:
        conf = self.write_agent_config(devices)
        self.agent_proc = self.processes.fleetcare("agent", "agent", "--config", str(conf))
        return self.agent_proc

    def spooled(self) -> int:
        """Messages waiting in the agent's disk spool (read beside the running agent: WAL allows it)."""
        if not self.spool_path.exists():
            return 0
        conn = sqlite3.connect(self.spool_path, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        except sqlite3.OperationalError:  # the table is not there yet
            return 0
        finally:
            conn.close()

    def stop_agent(self) -> None:
        """SIGTERM: the agent flushes what it holds, says goodbye and exits 0."""
        assert self.agent_proc is not None
        self.agent_proc.send_signal(signal.SIGTERM)
        assert self.agent_proc.wait(30) == 0, self.processes.log("agent")

    # ------------------------------------------------------------ the database

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def stored_count(self) -> int:
        return int(self.query("SELECT count(*) FROM samples")[0][0])

    def wait_stored(self, minimum: int, timeout: float, message: str) -> None:
        wait_until(lambda: self.stored_count() >= minimum, timeout=timeout, interval=0.25,
                   message=f"{message} ({minimum} samples)")

    def wait_settled(self, quiet: float = 1.5, timeout: float = 30.0) -> int:
        """Wait until the samples table has not grown for ``quiet`` seconds; returns its count."""
        last, since = -1, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.stored_count()
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return count
            time.sleep(0.1)
        raise AssertionError(f"samples kept growing for {timeout:.0f} s")

    def wait_caught_up(self, timeout: float = 90.0) -> None:
        """Everything the agent produced so far is in the database (its spool has drained)."""
        audited = set(read_audit(self.audit_path))
        try:
            wait_until(lambda: audited <= set(self.query(STORED_SQL)), timeout=timeout, interval=0.5,
                       message=f"the {len(audited)} samples audited so far stored")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def logs(self) -> str:
        names = sorted(p.stem for p in self.tmp_path.glob("*.log"))
        return "\n".join(f"----- {name}.log\n{self.processes.log(name)[-6000:]}" for name in names)

    def assert_exactly_audited(self, timeout: float = 60.0) -> int:
        """The samples table holds exactly the audited samples: none missing, none extra, none twice.
        Returns the number of samples."""
        audited_list = read_audit(self.audit_path)
        audited = set(audited_list)
        twice = [s for s, n in Counter((d, k, ts) for d, k, ts, _ in audited_list).items() if n > 1]
        assert not twice, f"the agent produced a sample twice (test premise broken): {twice[:5]}"
        assert len(audited) > 0, "the agent produced nothing"
        try:
            wait_until(lambda: self.stored_count() >= len(audited), timeout=timeout, interval=0.25,
                       message=f"all {len(audited)} audited samples stored")
        except AssertionError as exc:
            stored = set(self.query(STORED_SQL))
            missing = sorted(audited - stored)
            raise AssertionError(f"{exc}; {len(missing)} missing, e.g. {missing[:5]}\n{self.logs()}") from None
        time.sleep(1.0)  # anything extra (a late duplicate) would show up now
        total, distinct = self.query("SELECT count(*), count(DISTINCT (device_id, series_id, time)) FROM samples")[0]
        assert total == distinct, f"duplicate samples: {total} rows, {distinct} distinct"
        stored_list = self.query(STORED_SQL)
        stored = set(stored_list)
        assert len(stored_list) == len(stored) == total
        missing, extra = audited - stored, stored - audited
        assert not missing and not extra, (
            f"{len(missing)} audited samples missing (e.g. {sorted(missing)[:5]}), "
            f"{len(extra)} stored samples never audited (e.g. {sorted(extra)[:5]})")
        return total

    def assert_agent_clean(self) -> dict:
        """The API's view of the agent: no sequence gaps and nothing dropped from the spool."""
        with api_client(self.db_url) as client:
            resp = client.get("/api/v1/agents")
            assert resp.status_code == 200, resp.text
            agents = resp.json()
        assert len(agents) == 1, agents
        agent = agents[0]
        assert agent["gaps"] == 0, agent
        assert agent["dropped_messages"] == 0, agent
        return agent


def collector_stats(log: str) -> dict[str, int]:
    """The counters of the last 'collector stopped: …' line of a collector's log."""
    lines = [ln for ln in log.splitlines() if "collector stopped:" in ln]
    assert lines, f"no 'collector stopped' line in:\n{log[-3000:]}"
    stats = {}
    for word in lines[-1].split("collector stopped:", 1)[1].split():
        if "=" in word:
            key, _, value = word.partition("=")
            if value.rstrip(",").isdigit():
                stats[key] = int(value.rstrip(","))
    return stats


def require_mosquitto() -> None:
    if embedded.PrivateMosquitto.available() is None:
        pytest.skip("the fault tests need the mosquitto binary (a private broker they can stop and restart); "
                    "install mosquitto")
