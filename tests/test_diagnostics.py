"""Remote diagnostics: signed commands from the API reach a real agent over the broker; refusals
say why; results come back and are stored with who asked."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import psycopg
import pytest
from tests.api_support import api_client
from fastapi.testclient import TestClient

from agent import wire
from agent.config import AgentConfig
from agent.diagnostics import Diagnostics, masked
from collector.config import ServerConfig
from collector.registry import enrol
from tests.conftest import Broker, Processes, wait_until, write_agent_config
from tests.test_end_to_end import collector_env

ORIGIN = wire.Origin("acme", "hq", "diag-gw")


def agent_with_secret(tmp_path: Path, broker: Broker, prefix: str, secret: str) -> Path:
    conf = write_agent_config(tmp_path / "agent.toml", agent=ORIGIN.agent, customer=ORIGIN.customer,
                              site=ORIGIN.site, mqtt_url=broker.url, prefix=prefix, interval=1.0, host=False,
                              devices=[("ups1", "ups")])
    text = conf.read_text().replace("[agent]\n", f'[agent]\ndiagnostics_secret = "{secret}"\n', 1)
    conf.write_text(text)
    return conf


def agent_id(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id FROM agents WHERE key = %s", (ORIGIN.agent,)).fetchone()[0]


def finished(client: TestClient, agent: int, request_id: str) -> dict | None:
    body = client.get(f"/api/v1/agents/{agent}/diagnostics/{request_id}").json()
    return body if body["status"] != "sent" else None


def test_diagnostics_round_trip(tmp_path: Path, processes: Processes, server_config: ServerConfig,
                                broker: Broker, prefix: str) -> None:
    with psycopg.connect(server_config.database.url) as conn:
        secret = enrol(conn, ORIGIN)
    processes.fleetcare("collector", "collector", env=collector_env(server_config))
    processes.fleetcare("agent", "agent", "--config", str(agent_with_secret(tmp_path, broker, prefix, secret)))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with api_client(server_config.database.url, mqtt=server_config.mqtt) as client:
        agent = agent_id(server_config.database.url)
        wait_until(lambda: client.get(f"/api/v1/agents/{agent}").json()["state"] == "online", timeout=30,
                   message="agent online")
        time.sleep(0.5)  # its command subscription is made right after it says online

        r = client.post(f"/api/v1/agents/{agent}/diagnostics", json={"action": "status", "requested_by": "eng-li"})
        assert r.status_code == 202, r.text
        sent = r.json()
        assert sent["status"] == "sent" and sent["requested_by"] == f"eng-li via {client.username}"
        done = wait_until(lambda: finished(client, agent, sent["request_id"]), timeout=20, message="status result")
        assert done["status"] == "done", done
        assert done["result"]["counters"]["seq"] >= 1
        assert done["result"]["config"]["agent"]["diagnostics_secret"] == "***"  # secrets never leave the site

        r = client.post(f"/api/v1/agents/{agent}/diagnostics",
                        json={"action": "ping", "args": {"host": "127.0.0.1", "port": port, "count": 2}})
        ping = wait_until(lambda: finished(client, agent, r.json()["request_id"]), timeout=20, message="ping")
        assert ping["status"] == "done" and ping["result"]["reachable"] is True
        assert len(ping["result"]["rtt_ms"]) == 2

        r = client.post(f"/api/v1/agents/{agent}/diagnostics", json={"action": "log_tail", "args": {"lines": 5}})
        tail = wait_until(lambda: finished(client, agent, r.json()["request_id"]), timeout=20, message="log tail")
        assert 1 <= len(tail["result"]["lines"]) <= 5

        r = client.post(f"/api/v1/agents/{agent}/diagnostics", json={"action": "snmp_get",
                                                                     "args": {"target": "nope", "oids": ["1.3.6.1.2.1.1.3.0"]}})
        failed = wait_until(lambda: finished(client, agent, r.json()["request_id"]), timeout=20, message="snmp_get")
        assert failed["status"] == "failed" and "no SNMP target named 'nope'" in failed["error"]

        history = client.get(f"/api/v1/agents/{agent}/diagnostics").json()
        assert {d["action"] for d in history} == {"status", "ping", "log_tail", "snmp_get"}
    listener.close()


def test_api_refuses_what_it_cannot_send(server_config: ServerConfig, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO customers (key, name) VALUES ('acme', 'acme')")
        conn.execute("INSERT INTO sites (customer_id, key, name) SELECT id, 'hq', 'hq' FROM customers")
        unenrolled = conn.execute("INSERT INTO agents (site_id, key) SELECT id, 'plain' FROM sites RETURNING id").fetchone()[0]
    with api_client(db_url, mqtt=server_config.mqtt) as client:
        r = client.post(f"/api/v1/agents/{unenrolled}/diagnostics", json={"action": "rm", "args": {}})
        assert r.status_code == 400 and "unknown action 'rm'" in r.json()["detail"]
        r = client.post(f"/api/v1/agents/{unenrolled}/diagnostics", json={"action": "ping", "args": {"host": "a; rm -rf /"}})
        assert r.status_code == 400 and "not a host name" in r.json()["detail"]
        r = client.post(f"/api/v1/agents/{unenrolled}/diagnostics", json={"action": "status"})
        assert r.status_code == 409 and "fleetcare enrol" in r.json()["detail"]
        assert client.post("/api/v1/agents/999999/diagnostics", json={"action": "status"}).status_code == 404
        assert client.get(f"/api/v1/agents/{unenrolled}/diagnostics/nope").status_code == 404


# ---------------------------------------------------------------- the agent's checks, one by one

@pytest.fixture
def diag(tmp_path: Path) -> tuple[Diagnostics, list[tuple[str, bool, str | None]]]:
    cfg = AgentConfig()
    cfg.agent.id, cfg.agent.customer, cfg.agent.site = ORIGIN.agent, ORIGIN.customer, ORIGIN.site
    cfg.agent.data_dir = str(tmp_path)
    cfg.agent.diagnostics_secret = "s3cret-s3cret"
    answers: list[tuple[str, bool, str | None]] = []
    d = Diagnostics(cfg, lambda rid, ok, err, out: answers.append((rid, ok, err)), lambda: {})
    return d, answers


def command(secret: str, request_id: str = "r1", action: str = "status", args: dict | None = None,
            expires: float | None = None, nonce: str = "n1") -> bytes:
    return wire.encode_command(ORIGIN, secret, request_id, action, args or {},
                               time.time() + 60 if expires is None else expires, nonce)


def test_agent_refuses_bad_signature_expired_replayed_and_unlisted(diag) -> None:  # noqa: ANN001
    d, answers = diag
    d.receive(command("wrong-secret", "r1"))
    d.receive(command("s3cret-s3cret", "r2", expires=time.time() - 30, nonce="n2"))
    d.receive(command("s3cret-s3cret", "r3", nonce="n3"))
    d.receive(command("s3cret-s3cret", "r4", nonce="n3"))  # the same nonce again: a replay
    body = json.loads(command("s3cret-s3cret", "r5", nonce="n5"))
    body["action"] = "shell"  # tampered after signing
    d.receive(json.dumps(body).encode())
    refusals = {rid: err for rid, ok, err in answers if not ok}
    assert "bad signature" in refusals["r1"]
    assert "expired" in refusals["r2"]
    assert "replayed" in refusals["r4"]
    assert "bad signature" in refusals["r5"]
    assert "r3" not in refusals  # queued to run


def test_agent_without_secret_refuses_everything(tmp_path: Path) -> None:
    cfg = AgentConfig()
    cfg.agent.id, cfg.agent.customer, cfg.agent.site = ORIGIN.agent, ORIGIN.customer, ORIGIN.site
    answers: list[tuple[str, bool, str | None]] = []
    d = Diagnostics(cfg, lambda rid, ok, err, out: answers.append((rid, ok, err)), lambda: {})
    d.receive(command("anything"))
    assert answers and "not enabled" in answers[0][2]


def test_masking_hides_every_secret() -> None:
    cfg = {"mqtt": {"password": "p", "username": "u"}, "agent": {"diagnostics_secret": "s"},
           "snmp": {"targets": [{"community": "c", "auth_key": "k", "priv_key": "", "host": "h"}],
                    "trap_communities": ["s3cr3t"]}}
    assert masked(cfg) == {"mqtt": {"password": "***", "username": "u"}, "agent": {"diagnostics_secret": "***"},
                           "snmp": {"targets": [{"community": "***", "auth_key": "***", "priv_key": "", "host": "h"}],
                                    "trap_communities": ["***"]}}
