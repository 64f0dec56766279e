"""The whole pipeline with real processes: `fleetcare agent` → broker → `fleetcare collector` →
PostgreSQL → API. The host's metrics arrive, the device shows online, and a killed agent turns
offline through its Last Will."""

from __future__ import annotations

import signal
from pathlib import Path

from fastapi.testclient import TestClient

from collector.config import ServerConfig
from tests.conftest import Broker, Processes, wait_until, write_agent_config
from tests.api_support import api_client

HOST_KEYS = ("cpu_percent", "load1", "mem_used_percent", "uptime_seconds")


def collector_env(cfg: ServerConfig) -> dict[str, str]:
    return {"FLEETCARE_DATABASE_URL": cfg.database.url, "FLEETCARE_MQTT_URL": cfg.mqtt.url,
            "FLEETCARE_MQTT_TOPIC_PREFIX": cfg.mqtt.topic_prefix, "FLEETCARE_MQTT_CLIENT_ID": cfg.mqtt.client_id,
            "FLEETCARE_MQTT_SHARE_GROUP": cfg.mqtt.share_group, "FLEETCARE_COLLECTOR_BATCH_MS": "50"}


def devices(client: TestClient, **params: str) -> list[dict]:
    resp = client.get("/api/v1/devices", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def test_agent_to_api_and_last_will(tmp_path: Path, processes: Processes, server_config: ServerConfig,
                                    broker: Broker, prefix: str) -> None:
    processes.fleetcare("collector", "collector", env=collector_env(server_config))
    conf = write_agent_config(tmp_path / "agent.toml", agent="e2e-gw", customer="acme", site="hq",
                              mqtt_url=broker.url, prefix=prefix, interval=1.0,
                              devices=[("sw1", "switch"), ("ups1", "ups")])
    agent = processes.fleetcare("agent", "agent", "--config", str(conf))

    with api_client(server_config.database.url) as client:
        def all_online() -> list[dict] | None:
            items = devices(client)
            host = [d for d in items if d["kind"] == "host"]
            ready = (len(items) == 3 and all(d["status"] == "online" for d in items)
                     and host and all(k in host[0]["metrics"] for k in HOST_KEYS)
                     and any(k.startswith("disk_used_percent{mount=") for k in host[0]["metrics"]))
            return items if ready else None

        try:
            items = wait_until(all_online, timeout=30, message="three devices online with host metrics")
        except AssertionError:
            raise AssertionError(f"collector log:\n{processes.log('collector')}\nagent log:\n{processes.log('agent')}")
        by_kind = {d["kind"]: d for d in items}
        assert set(by_kind) == {"host", "switch", "ups"}
        assert {(d["customer"], d["site"], d["agent"]) for d in items} == {("acme", "hq", "e2e-gw")}
        assert by_kind["host"]["metrics"]["mem_used_percent"]["unit"] == "%"
        assert "battery_charge_percent" in by_kind["ups"]["metrics"]
        assert any(k.startswith("if_in_bps{if=") for k in by_kind["switch"]["metrics"])

        host_id = by_kind["host"]["id"]
        series = client.get(f"/api/v1/devices/{host_id}/metrics",
                            params={"metric": "mem_used_percent", "step": "1s"}).json()
        assert series["source"] == "raw" and len(series["points"]) >= 1

        agents = client.get("/api/v1/agents").json()
        assert agents[0]["state"] == "online" and agents[0]["messages"] >= 1

        agent.send_signal(signal.SIGKILL)  # no goodbye: only the broker's Last Will can tell
        agent.wait(10)
        wait_until(lambda: all(d["status"] == "offline" for d in devices(client)), timeout=20,
                   message="devices offline after the agent was killed")
        assert client.get("/api/v1/agents").json()[0]["state"] == "offline"


def test_agent_says_goodbye_on_sigterm(tmp_path: Path, processes: Processes, server_config: ServerConfig,
                                       broker: Broker, prefix: str) -> None:
    processes.fleetcare("collector", "collector", env=collector_env(server_config))
    conf = write_agent_config(tmp_path / "agent.toml", agent="bye-gw", customer="acme", site="hq",
                              mqtt_url=broker.url, prefix=prefix, host=False, devices=[("ups1", "ups")])
    agent = processes.fleetcare("agent", "agent", "--config", str(conf))
    with api_client(server_config.database.url) as client:
        wait_until(lambda: [d for d in devices(client) if d["status"] == "online"], timeout=30,
                   message="device online")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
        wait_until(lambda: all(d["status"] == "offline" for d in devices(client)), timeout=15,
                   message="device offline after a clean stop")
    assert "configuration error" not in processes.log("agent")


def test_bad_agent_config_exits_with_a_clear_message(tmp_path: Path, processes: Processes) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text('[agent]\nid = "gw 1"\ncustomer = "acme"\nsite = "hq"\n')
    proc = processes.fleetcare("agent", "agent", "--config", str(conf))
    assert proc.wait(30) == 2
    assert "agent.id 'gw 1'" in processes.log("agent")
