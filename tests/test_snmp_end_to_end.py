"""SNMP through the whole pipeline with real processes: `fleetcare agent` polls a real net-snmp
daemon (v2c, and v3 with good and bad keys) and listens for traps → broker → `fleetcare collector`
→ PostgreSQL → API. The answering devices show online with their identity and metrics, the device
whose key is wrong shows auth_failure and why, and a linkDown trap lands on its device's timeline."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from collector.config import ServerConfig
from tests.conftest import Broker, Processes, wait_until, write_agent_config
from tests.api_support import api_client
from tests.snmp_services import SnmpdAgent, free_udp_port, send_trap
from tests.test_end_to_end import collector_env, devices

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IDENTITY = ("sys_name", "sys_descr", "sys_object_id")


def snmp_config(snmpd: SnmpdAgent, trap_port: int) -> str:
    good, other = snmpd.users["sha_aes"], snmpd.users["sha_auth"]
    targets = [
        # first: the trap from 127.0.0.1 belongs to the first target on that address
        {"name": "snmp-v2c", "version": "2c", "community": snmpd.community},
        {"name": "snmp-v3", "version": "3", "user": good.user, "auth_protocol": good.auth_protocol,
         "auth_key": good.auth_key, "priv_protocol": good.priv_protocol, "priv_key": good.priv_key,
         "customer": "globex"},
        # a user snmpd knows, with a key it does not: a REPORT of usmStatsWrongDigests
        {"name": "snmp-badkey", "version": "3", "user": other.user, "auth_protocol": other.auth_protocol,
         "auth_key": "not-the-right-key-at-all"},
    ]
    lines = ["[snmp]", f"trap_port = {trap_port}", 'trap_address = "127.0.0.1"', 'trap_communities = ["public"]', ""]
    for target in targets:
        lines.append("[[snmp.targets]]")
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in target.items()]
        lines += [f'host = "{snmpd.host}"', f"port = {snmpd.port}", "interval = 5", "timeout = 1", "retries = 1", ""]
    return "\n".join(lines)


def events(client: TestClient, device_id: int, **params: str) -> list[dict]:
    resp = client.get(f"/api/v1/devices/{device_id}/events", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_snmp_devices_states_and_traps_through_collector_and_api(
        tmp_path: Path, processes: Processes, server_config: ServerConfig, broker: Broker, prefix: str,
        snmpd: SnmpdAgent) -> None:
    processes.fleetcare("collector", "collector", env=collector_env(server_config))
    trap_port = free_udp_port("127.0.0.1")
    conf = write_agent_config(tmp_path / "agent.toml", agent="snmp-gw", customer="acme", site="dc1",
                              mqtt_url=broker.url, prefix=prefix, interval=5.0, host=False)
    conf.write_text(conf.read_text() + "\n" + snmp_config(snmpd, trap_port))
    agent = processes.fleetcare("agent", "agent", "--config", str(conf))

    def logs() -> str:
        return f"collector log:\n{processes.log('collector')}\nagent log:\n{processes.log('agent')}"

    with api_client(server_config.database.url) as client:
        def settled() -> dict[str, dict] | None:
            by_key = {d["key"]: d for d in devices(client)}
            if set(by_key) != {"snmp-v2c", "snmp-v3", "snmp-badkey"}:
                return None
            up = [by_key["snmp-v2c"], by_key["snmp-v3"]]
            ready = (all(d["status"] == "online" and "uptime_seconds" in d["metrics"]
                         and all(d["attrs"].get(k) for k in IDENTITY) for d in up)
                     and by_key["snmp-badkey"]["status"] == "auth_failure"
                     and by_key["snmp-badkey"]["status_detail"])
            return by_key if ready else None

        try:
            by_key = wait_until(settled, timeout=30, interval=0.3,
                                message="v2c and v3 online with identity and uptime, bad key auth_failure")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None

        v2c, v3, bad = by_key["snmp-v2c"], by_key["snmp-v3"], by_key["snmp-badkey"]
        for d in (v2c, v3):
            assert d["attrs"]["sys_name"] == snmpd.sys_name
            assert d["attrs"]["sys_descr"] == snmpd.sys_descr
            assert d["attrs"]["sys_object_id"].startswith("1.3.6.1.4.1.")
            assert d["name"] == snmpd.sys_name
            assert d["metrics"]["uptime_seconds"]["value"] > 0 and d["metrics"]["uptime_seconds"]["unit"] == "s"
            assert d["metrics"]["snmp_up"]["value"] == 1.0
            assert (d["site"], d["agent"]) == ("dc1", "snmp-gw")
        assert v2c["attrs"]["snmp_version"] == "2c" and v3["attrs"]["snmp_version"] == "3"

        # the device's own customer, not the agent's
        assert (v2c["customer"], v3["customer"], bad["customer"]) == ("acme", "globex", "acme")
        assert [d["key"] for d in devices(client, customer="globex")] == ["snmp-v3"]
        assert sorted(d["key"] for d in devices(client, customer="acme")) == ["snmp-badkey", "snmp-v2c"]
        customers = {c["key"]: c["devices"] for c in client.get("/api/v1/customers").json()}
        assert customers == {"acme": 2, "globex": 1}

        # the bad key: why, in words, and on the timeline; never mistaken for a silent device
        detail = bad["status_detail"].lower()
        assert "wrong digest" in detail and "auth_key" in detail, bad["status_detail"]
        assert "uptime_seconds" not in bad["metrics"]
        states = events(client, bad["id"], kind="state")
        assert states and states[0]["detail"]["state"] == "auth_failure", states
        assert states[0]["severity"] == "critical" and "authentication failed" in states[0]["text"]
        assert all(e["kind"] != "offline" for e in events(client, bad["id"]))

        # a linkDown trap to the agent's listener lands on the v2c device's timeline
        send_trap("127.0.0.1", trap_port, LINK_DOWN, (f"{IF_INDEX}.2", "i", "2"),
                  (f"{IF_DESCR}.2", "s", "eth7"), community="public")

        def trap_event() -> list[dict]:
            return [e for e in events(client, v2c["id"], kind="trap") if "Interface went down" in e["text"]]

        try:
            trap = wait_until(trap_event, timeout=10, message="the linkDown trap on snmp-v2c's events")[0]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        assert trap["text"] == "Interface went down on eth7"
        assert trap["severity"] == "warning"
        assert trap["detail"]["trap_oid"] == LINK_DOWN and trap["detail"]["if_index"] == "2"
        assert trap["detail"]["from"] == "127.0.0.1" and trap["detail"]["snmp_version"] == "2c"

        # a poll later (and the births it brings), still as the agent reported; nothing went offline
        seen = datetime.fromisoformat(v2c["last_seen"])

        def polled_again() -> dict[str, dict] | None:
            now = {d["key"]: d for d in devices(client)}
            return now if datetime.fromisoformat(now["snmp-v2c"]["last_seen"]) > seen else None

        final = wait_until(polled_again, timeout=15, message="another poll of snmp-v2c")
        assert final["snmp-v2c"]["status"] == final["snmp-v3"]["status"] == "online"
        assert final["snmp-badkey"]["status"] == "auth_failure"
        assert "wrong digest" in final["snmp-badkey"]["status_detail"].lower()
        for d in final.values():
            assert all(e["kind"] != "offline" for e in events(client, d["id"])), d["key"]
        assert agent.poll() is None, logs()
