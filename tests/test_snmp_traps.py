"""SNMP notifications (agent/snmp/traps.py): real snmptrap and snmpinform into the listener that
SnmpPoller starts on a free UDP port of 127.0.0.1; events are read from a recording sink."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pysnmp.proto.rfc1902 import Integer, ObjectName, OctetString

from agent import wire
from agent.config import SnmpSection, SnmpTarget, TrapUser
from agent.snmp.poller import SnmpPoller
from agent.snmp.traps import SNMP_TRAP_OID, sender_device
from tests.snmp_services import (
    SNMPTRAP,
    TRAP_ENGINE_ID,
    V3User,
    _client_env,
    _netsnmp_security,
    free_udp_port,
    send_trap,
)

SNMPINFORM = "/usr/bin/snmpinform"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
UPS_ON_BATTERY = "1.3.6.1.2.1.33.2.0.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
ACME_TRAP = "1.3.6.1.4.1.99999.0.7"

pytestmark = pytest.mark.skipif(not Path(SNMPTRAP).exists(), reason=f"{SNMPTRAP} missing: apt-get install snmp")

TRAPPER = V3User("trapper", "SHA", "trapper-auth-key", "AES", "trapper-priv-key")
INFORMER = V3User("informer", "SHA512", "informer-auth-key", "AES256", "informer-priv-key")


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[wire.Event] = []
        self.points: list[wire.Point] = []
        self._cond = threading.Condition()

    def emit_points(self, points: list[wire.Point]) -> None:
        with self._cond:
            self.points.extend(points)

    def emit_events(self, events: list[wire.Event]) -> None:
        with self._cond:
            self.events.extend(events)
            self._cond.notify_all()

    def devices_changed(self) -> None:
        pass

    def traps(self) -> list[wire.Event]:
        with self._cond:
            return [e for e in self.events if e.kind == "trap"]

    def wait(self, match: Callable[[wire.Event], bool], timeout: float = 5.0) -> wire.Event:
        """The first trap event ``match`` accepts, waiting up to ``timeout`` for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if e.kind == "trap" and match(e)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such trap event; got {[e.text for e in self.traps()]}")
                self._cond.wait(left)


@dataclass
class Listener:
    port: int
    sink: RecordingSink
    poller: SnmpPoller


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    port = free_udp_port()
    config = SnmpSection(
        # a target on 127.0.0.1 (nothing answers its polls: it is here to own the traps)
        targets=[SnmpTarget(name="core-switch", host="127.0.0.1", port=free_udp_port(), interval=3600,
                            timeout=0.2, retries=0)],
        trap_port=port, trap_address="127.0.0.1", trap_communities=["public", "site-7"],
        trap_users=[
            # traps: the sender is the authoritative engine, so its engine ID is configured
            TrapUser(user=TRAPPER.user, auth_protocol="SHA", auth_key=TRAPPER.auth_key,
                     priv_protocol="AES", priv_key=TRAPPER.priv_key, engine_id=TRAP_ENGINE_ID),
            # informs: the receiver is, so no engine ID (AES256 = net-snmp's AES-256, Blumenthal)
            TrapUser(user=INFORMER.user, auth_protocol="SHA512", auth_key=INFORMER.auth_key,
                     priv_protocol="AES256", priv_key=INFORMER.priv_key),
        ])
    sink = RecordingSink()
    poller = SnmpPoller(config)
    poller.start(sink)
    try:
        yield Listener(port, sink, poller)
    finally:
        poller.stop()


def net_snmp(tool: str, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run a net-snmp tool with no MIBs and a scratch configuration directory."""
    with tempfile.TemporaryDirectory(prefix="snmp-tool-") as scratch:
        return subprocess.run([tool, "-m", "", *args], capture_output=True, text=True,
                              env=_client_env(scratch), timeout=timeout)


# ---------------------------------------------------------------- known notifications

def test_v2c_link_down_names_the_interface_and_the_target(listener: Listener) -> None:
    send_trap("127.0.0.1", listener.port, LINK_DOWN, (f"{IF_INDEX}.7", "i", "7"),
              (f"{IF_DESCR}.7", "s", "ge-0/0/7"))
    event = listener.sink.wait(lambda e: e.detail.get("if_index") == "7")
    assert event.kind == "trap" and event.severity == "warning"
    assert event.device == "core-switch"  # the target whose host is 127.0.0.1
    assert event.text == "Interface went down on ge-0/0/7"
    assert event.detail["trap"] == "link_down" and event.detail["profile"] == "if-mib"
    assert event.detail["trap_oid"] == LINK_DOWN and event.detail["if_descr"] == "ge-0/0/7"
    assert event.detail["from"] == "127.0.0.1" and event.detail["snmp_version"] == "2c"
    assert event.detail["varbinds"][f"{IF_DESCR}.7"] == "ge-0/0/7"
    assert abs(event.ts - time.time()) < 5


def test_ups_on_battery_is_critical(listener: Listener) -> None:
    send_trap("127.0.0.1", listener.port, UPS_ON_BATTERY, ("1.3.6.1.2.1.33.1.2.2.0", "i", "12"),
              community="site-7")
    event = listener.sink.wait(lambda e: e.detail.get("trap_oid") == UPS_ON_BATTERY)
    assert event.severity == "critical" and event.detail["trap"] == "ups_on_battery"
    assert event.detail["profile"] == "ups-mib" and event.device == "core-switch"
    assert event.text == "UPS switched to battery: mains power failed"
    assert event.detail["varbinds"]["1.3.6.1.2.1.33.1.2.2.0"] == "12"


def test_a_v1_link_down_trap_is_named_too(listener: Listener) -> None:
    # v1: enterprise, agent address, generic trap 2 (linkDown), specific 0, uptime
    result = net_snmp(SNMPTRAP, "-v", "1", "-c", "public", f"udp:127.0.0.1:{listener.port}",
                      "1.3.6.1.4.1.99999", "127.0.0.1", "2", "0", "", f"{IF_INDEX}.9", "i", "9")
    assert result.returncode == 0, result.stderr
    event = listener.sink.wait(lambda e: e.detail.get("if_index") == "9")
    assert event.detail["trap"] == "link_down" and event.detail["snmp_version"] == "1"
    assert event.text == "Interface went down on interface 9"


# ---------------------------------------------------------------- unknown notifications

def test_an_unknown_enterprise_trap_is_forwarded_raw(listener: Listener) -> None:
    send_trap("127.0.0.1", listener.port, ACME_TRAP,
              ("1.3.6.1.4.1.99999.1.1.0", "s", "door open"),
              ("1.3.6.1.4.1.99999.1.2.0", "i", "3"),
              ("1.3.6.1.4.1.99999.1.3.0", "x", "65746830000000"),         # "eth0" padded with NULs
              ("1.3.6.1.4.1.99999.1.4.0", "s", "line one\nline two"),
              ("1.3.6.1.4.1.99999.1.5.0", "x", "00ff10"))                  # binary: hex
    event = listener.sink.wait(lambda e: e.detail.get("trap_oid") == ACME_TRAP)
    assert event.device == "core-switch" and event.severity == "warning"
    assert event.text == f"Notification {ACME_TRAP} from 127.0.0.1"
    assert "trap" not in event.detail and "profile" not in event.detail
    varbinds = event.detail["varbinds"]
    assert varbinds["1.3.6.1.4.1.99999.1.1.0"] == "door open"
    assert varbinds["1.3.6.1.4.1.99999.1.2.0"] == "3"
    assert varbinds["1.3.6.1.4.1.99999.1.3.0"] == "eth0"
    assert varbinds["1.3.6.1.4.1.99999.1.4.0"] == "line one\nline two"
    assert varbinds["1.3.6.1.4.1.99999.1.5.0"] == "00:ff:10"
    assert "1.3.6.1.2.1.1.3.0" in varbinds  # sysUpTime.0 travels with every v2c notification


def test_a_trap_with_an_unknown_community_is_dropped(listener: Listener) -> None:
    send_trap("127.0.0.1", listener.port, ACME_TRAP, ("1.3.6.1.4.1.99999.9.1.0", "s", "intruder"),
              community="guessed")
    send_trap("127.0.0.1", listener.port, ACME_TRAP, ("1.3.6.1.4.1.99999.9.1.0", "s", "after"))
    listener.sink.wait(lambda e: e.detail["varbinds"].get("1.3.6.1.4.1.99999.9.1.0") == "after")
    assert not [e for e in listener.sink.traps()
                if e.detail["varbinds"].get("1.3.6.1.4.1.99999.9.1.0") == "intruder"]


# ---------------------------------------------------------------- SNMPv3

def test_a_v3_authpriv_trap_from_a_configured_user_is_received(listener: Listener) -> None:
    send_trap("127.0.0.1", listener.port, "1.3.6.1.6.3.1.1.5.4", (f"{IF_INDEX}.3", "i", "3"),
              (f"{IF_DESCR}.3", "s", "uplink-3"), user=TRAPPER, engine_id=TRAP_ENGINE_ID)
    event = listener.sink.wait(lambda e: e.detail.get("if_descr") == "uplink-3")
    assert event.detail["snmp_version"] == "3" and event.detail["security_name"] == "trapper"
    assert event.detail["trap"] == "link_up" and event.severity == "info"
    assert event.device == "core-switch"


def test_a_v3_trap_with_a_wrong_key_is_dropped(listener: Listener) -> None:
    wrong = V3User(TRAPPER.user, "SHA", "not-the-auth-key", "AES", TRAPPER.priv_key)
    send_trap("127.0.0.1", listener.port, ACME_TRAP, ("1.3.6.1.4.1.99999.9.2.0", "s", "forged"), user=wrong)
    send_trap("127.0.0.1", listener.port, ACME_TRAP, ("1.3.6.1.4.1.99999.9.2.0", "s", "genuine"), user=TRAPPER)
    listener.sink.wait(lambda e: e.detail["varbinds"].get("1.3.6.1.4.1.99999.9.2.0") == "genuine")
    assert not [e for e in listener.sink.traps()
                if e.detail["varbinds"].get("1.3.6.1.4.1.99999.9.2.0") == "forged"]


def test_a_v3_inform_is_received_and_acknowledged(listener: Listener) -> None:
    if not Path(SNMPINFORM).exists():
        pytest.skip(f"{SNMPINFORM} missing")
    # no -e: snmpinform discovers the listener's engine ID, as informs do
    result = net_snmp(SNMPINFORM, "-v", "3", *_netsnmp_security(INFORMER), "-t", "2", "-r", "1",
                      f"udp:127.0.0.1:{listener.port}", "", "1.3.6.1.6.3.1.1.5.1",
                      "1.3.6.1.2.1.1.5.0", "s", "rack-9-pdu")
    assert result.returncode == 0, result.stderr  # exit 0: the listener acknowledged it
    event = listener.sink.wait(lambda e: e.detail["varbinds"].get("1.3.6.1.2.1.1.5.0") == "rack-9-pdu")
    assert event.detail["trap"] == "cold_start" and event.detail["profile"] == "system"
    assert event.detail["snmp_version"] == "3" and event.detail["security_name"] == "informer"


def test_a_v2c_inform_is_acknowledged(listener: Listener) -> None:
    if not Path(SNMPINFORM).exists():
        pytest.skip(f"{SNMPINFORM} missing")
    result = net_snmp(SNMPINFORM, "-v", "2c", "-c", "public", "-t", "2", "-r", "0",
                      f"udp:127.0.0.1:{listener.port}", "", "1.3.6.1.6.3.1.1.5.2")
    assert result.returncode == 0, result.stderr
    event = listener.sink.wait(lambda e: e.detail.get("trap_oid") == "1.3.6.1.6.3.1.1.5.2")
    assert event.detail["trap"] == "warm_start"


# ---------------------------------------------------------------- senders that are no target

def test_a_trap_from_an_address_that_is_no_target_gets_a_device_of_its_own(listener: Listener) -> None:
    # snmptrap binds its source address with --clientaddr (the whole 127.0.0.0/8 is local)
    result = net_snmp(SNMPTRAP, "--clientaddr=127.0.0.3", "-v", "2c", "-c", "public",
                      f"udp:127.0.0.1:{listener.port}", "", LINK_DOWN, f"{IF_INDEX}.11", "i", "11")
    if result.returncode == 0:
        event = listener.sink.wait(lambda e: e.detail.get("if_index") == "11")
    else:  # this snmptrap cannot bind another source: ask the listener directly
        event = listener.poller.trap_listener.event(
            "127.0.0.3", "2c", "fleetcare-trap-0",
            [(SNMP_TRAP_OID, ObjectName(LINK_DOWN)), (f"{IF_INDEX}.11", Integer(11))])
    assert event.device == "trap-127-0-0-3"
    assert event.detail["from"] == "127.0.0.3" and event.detail["trap"] == "link_down"


def test_sender_device_names() -> None:
    assert sender_device("192.0.2.7") == "trap-192-0-2-7"
    assert sender_device("2001:db8::1") == "trap-2001-db8--1"
    assert wire.ID_RE.match(sender_device("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
    assert len(sender_device("a" * 100)) == 64


def test_event_of_raw_pysnmp_values(listener: Listener) -> None:
    event = listener.poller.trap_listener.event(
        "198.51.100.4", "2c", "",
        [(SNMP_TRAP_OID, ObjectName("1.3.6.1.4.1.99999.0.1")),
         ("1.3.6.1.4.1.99999.1.1.0", OctetString(b"Cisco IOS Software\r\nTechnical Support\x00\x00"))])
    assert event.device == "trap-198-51-100-4" and event.detail["trap_oid"] == "1.3.6.1.4.1.99999.0.1"
    assert event.detail["varbinds"] == {"1.3.6.1.4.1.99999.1.1.0": "Cisco IOS Software\r\nTechnical Support"}
    assert "security_name" not in event.detail
