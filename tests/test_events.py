"""Device events and states on a real database: state events set a device's status and say why,
reboots and traps land on its timeline, a device may belong to a customer of its own, and neither
the liveness sweep nor telemetry overrides what the agent said about a device. Also the events
message's rejections on the wire."""

from __future__ import annotations

import json
import time

import pytest
from tests.api_support import api_client

from agent import wire
from collector import maintenance
from collector.store import Batch, Store

ORIGIN = wire.Origin("acme", "hq", "gw1")
NOW = 1_700_000_000.0


def query(store: Store, sql: str, *params: object) -> list[tuple]:
    cur = store.conn.execute(sql, params)
    rows = cur.fetchall() if cur.description else []
    store.conn.commit()
    return rows


def birth(*devices: wire.DeviceInfo, boot: int = 1, interval: float = 10.0) -> wire.Birth:
    return wire.Birth(ORIGIN, boot, "1.0", interval, {}, list(devices), [])


def events(*items: wire.Event, seq: int = 1) -> wire.Events:
    return wire.Events(ORIGIN, 1, seq, list(items))


def state(device: str, name: str, reason: str = "", *, severity: str = "warning", ts: float | None = None,
          text: str | None = None) -> wire.Event:
    return wire.Event(device, time.time() if ts is None else ts, "state", severity,
                      text or f"{device} is {name}", {"state": name, "reason": reason})


def telemetry(device: str, ts: float, values: dict[str, float], seq: int = 1) -> wire.Telemetry:
    return wire.Telemetry(ORIGIN, 1, seq, [wire.Point(device, ts, values)])


def device_row(store: Store, key: str) -> tuple[str, str]:
    return query(store, "SELECT status, status_detail FROM devices WHERE key = %s", key)[0]


def event_rows(store: Store, key: str, kind: str | None = None) -> list[tuple]:
    return query(store, "SELECT e.kind, e.severity, e.text, e.detail FROM device_events e "
                        "JOIN devices d ON d.id = e.device_id WHERE d.key = %s "
                        "AND (%s::text IS NULL OR e.kind = %s) ORDER BY e.id", key, kind, kind)


# ---------------------------------------------------------------- state events

@pytest.mark.parametrize(("agent_state", "status"), [("auth_failure", "auth_failure"),
                                                     ("no_response", "no_response"),
                                                     ("partial", "partial"),
                                                     ("reachable", "online"),
                                                     ("error", "error")])
def test_state_event_sets_status_detail_and_one_event(store: Store, agent_state: str, status: str) -> None:
    reason = f"because {agent_state}"
    store.write(Batch(births=[birth(wire.DeviceInfo("sw1", "switch", "SW1", {}))],
                      events=[events(state("sw1", agent_state, reason, severity="critical",
                                           text=f"sw1 went {agent_state}"))]))
    assert device_row(store, "sw1") == (status, reason)
    rows = event_rows(store, "sw1")
    assert len(rows) == 1
    kind, severity, text, detail = rows[0]
    assert (kind, severity, text) == ("state", "critical", f"sw1 went {agent_state}")
    assert detail == {"state": agent_state, "reason": reason}


def test_same_state_again_records_nothing_unless_the_detail_changed(store: Store) -> None:
    wrong = "wrong digest (usmStatsWrongDigests): check auth_key and auth_protocol"
    first = state("sw1", "auth_failure", wrong, severity="critical")
    store.write(Batch(events=[events(first)]))
    assert device_row(store, "sw1") == ("auth_failure", wrong)
    since = query(store, "SELECT status_since FROM devices WHERE key = 'sw1'")[0][0]

    store.write(Batch(events=[events(first)]))  # a redelivery
    store.write(Batch(events=[events(state("sw1", "auth_failure", wrong), seq=2)]))  # said again
    assert len(event_rows(store, "sw1")) == 1

    unknown_user = "unknown user name (usmStatsUnknownUserNames): check the v3 user"
    store.write(Batch(events=[events(state("sw1", "auth_failure", unknown_user), seq=3)]))
    assert device_row(store, "sw1") == ("auth_failure", unknown_user)
    assert [r[3]["reason"] for r in event_rows(store, "sw1")] == [wrong, unknown_user]
    # the same state with other words: still in it since the first time
    assert query(store, "SELECT status_since FROM devices WHERE key = 'sw1'")[0][0] == since

    store.write(Batch(events=[events(state("sw1", "reachable", "", severity="info"), seq=4)]))
    assert device_row(store, "sw1") == ("online", "")
    assert len(event_rows(store, "sw1")) == 3


def test_reboot_and_trap_events_land_on_the_timeline(store: Store) -> None:
    reboot = wire.Event("ups1", NOW, "reboot", "warning", "ups1 rebooted: uptime went from 900 s to 3 s",
                        {"uptime_before_s": 900.0, "uptime_after_s": 3.0})
    trap = wire.Event("ups1", NOW + 1, "trap", "critical", "On battery",
                      {"trap_oid": "1.3.6.1.2.1.33.2.0.1", "from": "192.0.2.7", "varbinds": {}})
    store.write(Batch(events=[events(reboot, trap)]))
    rows = event_rows(store, "ups1")
    assert [(k, s, t) for k, s, t, _ in rows] == [
        ("reboot", "warning", "ups1 rebooted: uptime went from 900 s to 3 s"), ("trap", "critical", "On battery")]
    assert rows[0][3] == {"uptime_before_s": 900.0, "uptime_after_s": 3.0}
    assert rows[1][3]["trap_oid"] == "1.3.6.1.2.1.33.2.0.1"
    assert query(store, "SELECT extract(epoch FROM time)::float8 FROM device_events ORDER BY id") == [
        (NOW,), (NOW + 1,)]
    # neither says anything about reachability
    assert device_row(store, "ups1") == ("unknown", "")


def test_events_endpoint_lists_newest_first_and_filters_by_kind(db_url: str, store: Store) -> None:
    store.write(Batch(events=[events(
        wire.Event("sw1", NOW, "reboot", "warning", "rebooted", {}),
        wire.Event("sw1", NOW + 5, "trap", "warning", "Interface went down on ge-0/0/1", {"if_index": "1"}),
        state("sw1", "partial", "table if-mib: timeout", ts=NOW + 10))]))
    device = query(store, "SELECT id FROM devices WHERE key = 'sw1'")[0][0]
    with api_client(db_url) as client:
        body = client.get(f"/api/v1/devices/{device}/events").json()
        assert [e["kind"] for e in body] == ["state", "trap", "reboot"]
        assert body[1]["text"] == "Interface went down on ge-0/0/1" and body[1]["detail"] == {"if_index": "1"}
        traps = client.get(f"/api/v1/devices/{device}/events", params={"kind": "trap"}).json()
        assert [e["kind"] for e in traps] == ["trap"]
        assert client.get("/api/v1/devices/999999/events").status_code == 404
        one = client.get(f"/api/v1/devices/{device}").json()
        assert (one["status"], one["status_detail"]) == ("partial", "table if-mib: timeout")


# ---------------------------------------------------------------- births: owner and state

def test_device_with_a_customer_of_its_own_is_listed_under_it(db_url: str, store: Store) -> None:
    store.write(Batch(births=[birth(wire.DeviceInfo("host", "host", "gw1", {}),
                                    wire.DeviceInfo("fw1", "firewall", "FW1", {"customer": "globex"}),
                                    wire.DeviceInfo("odd", "snmp", "ODD", {"customer": "not a valid id"}))]))
    with api_client(db_url) as client:
        items = client.get("/api/v1/devices").json()["items"]
        assert {d["key"]: d["customer"] for d in items} == {"host": "acme", "fw1": "globex", "odd": "acme"}
        assert {d["key"]: (d["site"], d["agent"]) for d in items}["fw1"] == ("hq", "gw1")
        globex = client.get("/api/v1/devices", params={"customer": "globex"}).json()
        assert [d["key"] for d in globex["items"]] == ["fw1"] and globex["total"] == 1
        acme = client.get("/api/v1/devices", params={"customer": "acme"}).json()
        assert sorted(d["key"] for d in acme["items"]) == ["host", "odd"] and acme["total"] == 2
        customers = {c["key"]: (c["sites"], c["devices"]) for c in client.get("/api/v1/customers").json()}
        assert customers == {"acme": (1, 2), "globex": (0, 1)}

    # the agent stops naming an owner: the device is its agent's customer's again
    store.write(Batch(births=[birth(wire.DeviceInfo("fw1", "firewall", "FW1", {}), boot=2)]))
    with api_client(db_url) as client:
        items = client.get("/api/v1/devices", params={"customer": "globex"}).json()["items"]
        assert items == []


def test_birth_state_sets_the_status_after_a_reconnect(store: Store) -> None:
    wrong = "wrong digest (usmStatsWrongDigests): check auth_key and auth_protocol"
    now = time.time()
    dev = wire.DeviceInfo("r1", "router", "R1", {"host": "192.0.2.1", "state": "auth_failure"})
    store.write(Batch(births=[birth(dev)], events=[events(state("r1", "auth_failure", wrong))],
                      statuses=[wire.Status(ORIGIN, "online", now, 1)]))
    assert device_row(store, "r1") == ("auth_failure", wrong)

    store.write(Batch(statuses=[wire.Status(ORIGIN, "offline", now, 1)]))  # the agent vanished
    assert device_row(store, "r1")[0] == "offline"
    # it comes back: a new boot, a birth that tells the device's state (no new state event: for
    # the agent nothing changed), then the failing device's snmp_up 0
    store.write(Batch(births=[birth(dev, boot=2)], statuses=[wire.Status(ORIGIN, "online", now + 1, 2)],
                      telemetry=[telemetry("r1", now + 1, {"snmp_up": 0.0}, seq=2)]))
    status, detail = device_row(store, "r1")
    assert status == "auth_failure"

    # a birth that tells the detail too
    store.write(Batch(statuses=[wire.Status(ORIGIN, "offline", now + 2, 2)]))
    dev3 = wire.DeviceInfo("r1", "router", "R1", {"state": "no_response", "state_detail": "no response"})
    store.write(Batch(births=[birth(dev3, boot=3)], statuses=[wire.Status(ORIGIN, "online", now + 2, 3)]))
    assert device_row(store, "r1") == ("no_response", "no response")
    # "reachable" in a birth is no proof of data: telemetry says online, not the birth
    store.write(Batch(statuses=[wire.Status(ORIGIN, "offline", now + 3, 3)]))
    dev4 = wire.DeviceInfo("r1", "router", "R1", {"state": "reachable"})
    store.write(Batch(births=[birth(dev4, boot=4)], statuses=[wire.Status(ORIGIN, "online", now + 3, 4)]))
    assert device_row(store, "r1")[0] == "offline"


def test_birth_without_state_detail_keeps_the_reason_of_the_state_event(store: Store) -> None:
    """The poller announces a fresh birth after every state change, its attrs carrying the state
    but not the reason: that birth must not wipe the reason the state event gave."""
    wrong = "wrong digest (usmStatsWrongDigests): check auth_key and auth_protocol"
    dev = wire.DeviceInfo("r1", "router", "R1", {"state": "auth_failure"})
    store.write(Batch(events=[events(state("r1", "auth_failure", wrong))]))
    store.write(Batch(births=[birth(dev)]))  # the birth sent after the change, a batch later
    assert device_row(store, "r1") == ("auth_failure", wrong)
    assert len(event_rows(store, "r1")) == 1
    store.write(Batch(births=[birth(dev, boot=2)]))  # and again, when another device changed
    assert device_row(store, "r1") == ("auth_failure", wrong)
    assert len(event_rows(store, "r1")) == 1


@pytest.mark.parametrize("same_batch", [True, False])
def test_birth_ahead_of_its_state_event_leaves_one_event_in_the_agents_words(store: Store, same_batch: bool) -> None:
    """The agent publishes the birth ahead of the spooled state event: the timeline still holds
    one state event for the change, the agent's, with its severity and text."""
    wrong = "wrong digest (usmStatsWrongDigests): check auth_key and auth_protocol"
    dev = wire.DeviceInfo("r1", "router", "R1", {"state": "auth_failure"})
    event = state("r1", "auth_failure", wrong, severity="critical", text="r1 SNMPv3 authentication failed")
    if same_batch:
        store.write(Batch(births=[birth(dev)], events=[events(event)]))
    else:
        store.write(Batch(births=[birth(dev)]))
        assert device_row(store, "r1") == ("auth_failure", "")
        store.write(Batch(events=[events(event)]))
    assert device_row(store, "r1") == ("auth_failure", wrong)
    assert [(k, s, t) for k, s, t, _ in event_rows(store, "r1")] == [
        ("state", "critical", "r1 SNMPv3 authentication failed")]


# ---------------------------------------------------------------- liveness and telemetry

def test_liveness_does_not_turn_unreachable_devices_offline(store: Store) -> None:
    old = time.time() - 3600
    store.write(Batch(births=[birth(wire.DeviceInfo("a", "snmp", "A", {}), wire.DeviceInfo("n", "snmp", "N", {}),
                                    wire.DeviceInfo("p", "snmp", "P", {}), wire.DeviceInfo("o", "snmp", "O", {}))],
                      telemetry=[wire.Telemetry(ORIGIN, 1, 1, [wire.Point(k, old, {"snmp_up": 0.0})
                                                                for k in ("a", "n", "p", "o")])],
                      events=[events(state("a", "auth_failure", "wrong digest"),
                                     state("n", "no_response", "no response"),
                                     state("p", "partial", "table if-mib: timeout"),
                                     state("o", "reachable"))]))
    query(store, "UPDATE devices SET last_seen = now() - interval '1 hour'")
    maintenance.liveness(store.conn, 3.0)
    statuses = dict(query(store, "SELECT key, status FROM devices"))
    # a device the agent can not read says so itself: "no data" is expected, not news
    assert statuses["a"] == "auth_failure" and statuses["n"] == "no_response"
    # one that did send data and stopped is offline, whatever it was
    assert statuses["p"] == "offline" and statuses["o"] == "offline"
    assert event_rows(store, "a", "offline") == [] and event_rows(store, "n", "offline") == []


def test_telemetry_does_not_bring_a_failing_device_back_online(store: Store) -> None:
    now = time.time()
    store.write(Batch(events=[events(state("p", "partial", "table if-mib: timeout"),
                                     state("a", "auth_failure", "wrong digest"))]))
    for seq in (1, 2):
        store.write(Batch(telemetry=[wire.Telemetry(ORIGIN, 1, seq, [
            wire.Point("p", now + seq, {"snmp_up": 1.0, "uptime_seconds": 100.0 + seq}),
            wire.Point("a", now + seq, {"snmp_up": 0.0})])]))
    assert device_row(store, "p") == ("partial", "table if-mib: timeout")
    assert device_row(store, "a") == ("auth_failure", "wrong digest")
    assert event_rows(store, "p", "online") == [] and event_rows(store, "a", "online") == []
    # the agent says it recovered: online (and telemetry keeps it there)
    store.write(Batch(events=[events(state("p", "reachable"), seq=3)]))
    store.write(Batch(telemetry=[telemetry("p", now + 3, {"snmp_up": 1.0}, seq=3)]))
    assert device_row(store, "p") == ("online", "")


def test_state_event_in_the_same_batch_as_telemetry_wins(store: Store) -> None:
    """An agent spools the failing poll's snmp_up 0 right after its state event; one batch may
    carry both, in either order on the wire: the device ends in the state the agent reported."""
    now = time.time()
    store.write(Batch(telemetry=[telemetry("a", now, {"snmp_up": 0.0})],
                      events=[events(state("a", "auth_failure", "wrong digest"))]))
    assert device_row(store, "a") == ("auth_failure", "wrong digest")


# ---------------------------------------------------------------- the wire

def events_body(**overrides: object) -> dict:
    body = {"v": 1, "customer": "acme", "site": "hq", "agent": "gw1", "boot": 3, "seq": 9,
            "events": [{"device": "sw1", "ts": NOW, "kind": "state", "severity": "critical",
                        "text": "sw1 SNMPv3 authentication failed", "detail": {"state": "auth_failure"}}]}
    body.update(overrides)
    return body


def event_with(**overrides: object) -> bytes:
    event = dict(events_body()["events"][0])
    event.update(overrides)
    return json.dumps(events_body(events=[event])).encode()


def reject(payload: bytes, reason: str) -> wire.WireError:
    with pytest.raises(wire.WireError) as info:
        wire.parse_events(ORIGIN, payload, now=NOW)
    assert info.value.reason == reason, str(info.value)
    return info.value


def test_events_round_trip() -> None:
    items = [wire.Event("sw1", NOW + 0.5, "state", "critical", "sw1 auth failed",
                        {"state": "auth_failure", "reason": "wrong digest"}),
             wire.Event("sw1", NOW + 1, "trap", "warning", "Interface went down on eth0", {"if_index": "2"}),
             wire.Event("ups1", NOW + 2, "reboot", "info", "rebooted", {})]
    parsed = wire.parse_events(ORIGIN, wire.encode_events(ORIGIN, 3, 9, items), now=NOW)
    assert (parsed.origin, parsed.boot, parsed.seq) == (ORIGIN, 3, 9)
    assert parsed.events == items
    assert wire.parse_topic("fc", wire.topic("fc", ORIGIN, wire.EVENTS)) == (ORIGIN, "events")
    assert wire.EVENTS not in wire.RETAINED


def test_events_rejections() -> None:
    assert "kind" in reject(event_with(kind="alarm"), "bad_schema").detail
    assert "severity" in reject(event_with(severity="fatal"), "bad_schema").detail
    assert "detail.state" in reject(event_with(detail={}), "bad_schema").detail
    assert "detail.state" in reject(event_with(detail={"state": "online"}), "bad_schema").detail
    assert "'colour'" in reject(event_with(colour="red"), "unknown_field").detail
    assert "'tag'" in reject(json.dumps(events_body(tag=1)).encode(), "unknown_field").detail
    assert "'text'" in reject(json.dumps(events_body(events=[{"device": "sw1", "ts": NOW, "kind": "reboot",
                                                               "severity": "info", "detail": {}}])).encode(),
                              "bad_schema").detail
    reject(event_with(detail="down"), "bad_schema")
    reject(event_with(device="sw 1"), "bad_schema")
    reject(event_with(ts=NOW + 2 * wire.MAX_FUTURE_SECONDS), "bad_time")
    reject(event_with(ts="yesterday"), "bad_value")
    reject(json.dumps(events_body(events={"device": "sw1"})).encode(), "bad_schema")
    reject(json.dumps(events_body(agent="gw2")).encode(), "origin_mismatch")
    # only a state event needs a state
    wire.parse_events(ORIGIN, event_with(kind="trap", detail={}), now=NOW)
