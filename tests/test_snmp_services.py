"""The SNMP test harness (tests/snmp_services.py) against the real daemons, through pysnmp 7's asyncio API."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_walk_cmd,
    get_cmd,
    usmAesCfb128Protocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import errind

from tests.snmp_services import (
    RECORDINGS,
    SYS_DESCR,
    SYS_NAME,
    SYS_OBJECT_ID,
    USER_SPECS,
    SnmpdAgent,
    Snmpsim,
    UserSpec,
    V3User,
    copy_recordings,
    free_udp_port,
    send_trap,
    usm_user_data,
)

IF_TABLE = "1.3.6.1.2.1.2.2"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"


async def _get(auth, address, *oids: str, timeout: float = 2, retries: int = 1):
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(address, timeout=timeout, retries=retries)
        return await get_cmd(engine, auth, target, ContextData(),
                             *[ObjectType(ObjectIdentity(oid)) for oid in oids or (SYS_DESCR,)])
    finally:
        engine.close_dispatcher()


def get(auth, address, *oids: str, **options):
    """(errorIndication, errorStatus, errorIndex, varBinds) of one GET."""
    return asyncio.run(_get(auth, address, *oids, **options))


def value(auth, address, oid: str = SYS_DESCR, **options) -> str:
    error_indication, error_status, _, var_binds = get(auth, address, oid, **options)
    assert error_indication is None, error_indication
    assert not error_status, error_status.prettyPrint()
    return str(var_binds[0][1])


# ---------------------------------------------------------------- snmpd

def test_snmpd_v2c_get_sys_descr(snmpd: SnmpdAgent) -> None:
    assert value(CommunityData(snmpd.community), snmpd.address) == snmpd.sys_descr
    assert os.path.exists(f"/proc/{snmpd.pid}")


@pytest.mark.parametrize("spec", USER_SPECS, ids=lambda spec: spec.name)
def test_snmpd_v3_user_get_sys_descr(snmpd: SnmpdAgent, spec: UserSpec) -> None:
    user = snmpd.users.get(spec.name) or snmpd.users.get(spec.fallback_name or "")
    if user is None:
        pytest.skip(f"{spec.name}: {snmpd.unsupported.get(spec.name, 'not configured')}")
    assert value(usm_user_data(user), snmpd.address) == snmpd.sys_descr


def test_snmpd_serves_the_users_the_harness_promises(snmpd: SnmpdAgent) -> None:
    # Checked on Debian's net-snmp 5.9.3: every combination is served, DES included.
    assert {"sha_aes", "sha_auth"} <= set(snmpd.users)
    assert {spec.name for spec in USER_SPECS} <= set(snmpd.users) | set(snmpd.unsupported)
    assert snmpd.users["sha_auth"].level == "authNoPriv"
    assert all(user.level == "authPriv" for name, user in snmpd.users.items() if name != "sha_auth")
    for user in snmpd.users.values():
        assert user.auth_protocol in ("SHA", "SHA256", "SHA512", "MD5")
        assert user.priv_protocol in (None, "AES", "AES256", "DES")


def _sha_aes(user: str, auth_key: str, priv_key: str) -> UsmUserData:
    return UsmUserData(user, auth_key, priv_key, authProtocol=usmHMACSHAAuthProtocol,
                       privProtocol=usmAesCfb128Protocol)


def test_snmpd_wrong_v3_auth_key_is_wrong_digest(snmpd: SnmpdAgent) -> None:
    user = snmpd.users["sha_aes"]
    error_indication, _, _, var_binds = get(_sha_aes(user.user, "not-the-auth-key", user.priv_key),
                                            snmpd.address, timeout=1, retries=0)
    # snmpd answers with a usmStatsWrongDigests report: pysnmp's errind.WrongDigest,
    # str "Wrong SNMP PDU digest". Quick: no timeout involved.
    assert isinstance(error_indication, errind.WrongDigest), repr(error_indication)
    assert str(error_indication) == "Wrong SNMP PDU digest"
    assert not var_binds


def test_snmpd_unknown_v3_user_is_unknown_user_name(snmpd: SnmpdAgent) -> None:
    user = snmpd.users["sha_aes"]
    error_indication, _, _, _ = get(_sha_aes("nobody", user.auth_key, user.priv_key), snmpd.address,
                                    timeout=1, retries=0)
    # A usmStatsUnknownUserNames report: errind.UnknownUserName, "Unknown USM user".
    assert isinstance(error_indication, errind.UnknownUserName), repr(error_indication)
    assert str(error_indication) == "Unknown USM user"


def test_snmpd_wrong_v3_priv_key_times_out(snmpd: SnmpdAgent) -> None:
    user = snmpd.users["sha_aes"]
    error_indication, _, _, _ = get(_sha_aes(user.user, user.auth_key, "not-the-priv-key"), snmpd.address,
                                    timeout=1, retries=0)
    # Authentic but undecryptable: snmpd drops it ("error parsing ScopedPDU" in its log) and
    # sends no report, so a wrong priv key looks like a dead agent, not like a wrong key.
    assert isinstance(error_indication, errind.RequestTimedOut), repr(error_indication)


def test_snmpd_priv_request_for_auth_only_user_is_unsupported_level(snmpd: SnmpdAgent) -> None:
    user = snmpd.users["sha_auth"]
    error_indication, _, _, _ = get(_sha_aes(user.user, user.auth_key, "some-priv-key"), snmpd.address,
                                    timeout=1, retries=0)
    # usmStatsUnsupportedSecLevels report: errind.UnsupportedSecurityLevel.
    assert isinstance(error_indication, errind.UnsupportedSecurityLevel), repr(error_indication)


def test_snmpd_wrong_community_times_out(snmpd: SnmpdAgent) -> None:
    error_indication, _, _, _ = get(CommunityData("wrong-community"), snmpd.address, timeout=1, retries=0)
    # v1/v2c has no error for a bad community: the agent stays silent.
    # errind.RequestTimedOut, "No SNMP response received before timeout".
    assert isinstance(error_indication, errind.RequestTimedOut), repr(error_indication)
    assert str(error_indication) == "No SNMP response received before timeout"


def test_snmpd_factory_serves_other_loopback_addresses(snmpd_factory) -> None:
    first = snmpd_factory("127.0.0.2")
    second = snmpd_factory("127.0.0.5", sys_name="second", sys_object_id="1.3.6.1.4.1.8072.3.2.255")
    assert (first.host, second.host) == ("127.0.0.2", "127.0.0.5")
    assert value(CommunityData(first.community), first.address) == "fleetcare test snmpd on 127.0.0.2"
    assert value(CommunityData(second.community), second.address, SYS_NAME) == "second"
    assert value(CommunityData(second.community), second.address, SYS_OBJECT_ID) == "1.3.6.1.4.1.8072.3.2.255"
    assert value(usm_user_data(second.users["sha_aes"]), second.address) == second.sys_descr
    assert first.engine_id != second.engine_id


# ---------------------------------------------------------------- snmpsim

def test_snmpsim_bulk_walk_mikrotik_iftable(snmpsim: Snmpsim) -> None:
    async def walk() -> list[tuple[str, str]]:
        engine = SnmpEngine()
        rows: list[tuple[str, str]] = []
        try:
            target = await UdpTransportTarget.create(snmpsim.address, timeout=2, retries=1)
            # lexicographicMode=False: stop at the end of ifTable instead of walking the whole MIB.
            async for error_indication, error_status, _, var_binds in bulk_walk_cmd(
                    engine, CommunityData("mikrotik_rb952_router"), target, ContextData(), 0, 25,
                    ObjectType(ObjectIdentity(IF_TABLE)), lexicographicMode=False):
                assert error_indication is None and not error_status, (error_indication, error_status)
                rows += [(str(oid), str(val)) for oid, val in var_binds]
        finally:
            engine.close_dispatcher()
        return rows

    rows = asyncio.run(walk())
    recorded = [line.split("|", 2) for line in
                (snmpsim.data_dir / "mikrotik_rb952_router.snmprec").read_text().splitlines()
                if line.startswith(IF_TABLE + ".")]
    assert len(rows) == len(recorded) > 0
    assert all(oid.startswith(IF_TABLE + ".") for oid, _ in rows)
    descriptions = {val for oid, val in rows if oid.startswith(IF_DESCR + ".")}
    assert descriptions == {val for oid, _, val in recorded if oid.startswith(IF_DESCR + ".")}


def test_snmpsim_serves_every_recording(snmpsim: Snmpsim) -> None:
    assert len(snmpsim.communities) == len(list(RECORDINGS.glob("*.snmprec")))

    async def sys_object_ids() -> dict[str, str]:
        engine = SnmpEngine()
        found = {}
        try:
            target = await UdpTransportTarget.create(snmpsim.address, timeout=2, retries=1)
            for community in snmpsim.communities:
                error_indication, error_status, _, var_binds = await get_cmd(
                    engine, CommunityData(community), target, ContextData(),
                    ObjectType(ObjectIdentity(SYS_OBJECT_ID)))
                assert error_indication is None and not error_status, (community, error_indication)
                found[community] = str(var_binds[0][1])
        finally:
            engine.close_dispatcher()
        return found

    found = asyncio.run(sys_object_ids())
    for community, oid in found.items():
        text = (snmpsim.data_dir / f"{community}.snmprec").read_text()
        assert f"{SYS_OBJECT_ID}|6|{oid}" in text, community


def test_snmpsim_factory_serves_extra_files(snmpsim_factory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = RECORDINGS / "linux_netsnmp_server.snmprec"
    (data / source.name).write_bytes(source.read_bytes())
    os.link(data / source.name, data / "site7_server.snmprec")  # a hard link or a copy: a new community
    (data / "site8_server.snmprec").symlink_to(source.name)  # a symlink: not one (see below)
    sim = snmpsim_factory(data)
    expected = value(CommunityData("linux_netsnmp_server"), sim.address)
    assert expected.startswith("Linux ")
    assert value(CommunityData("site7_server"), sim.address) == expected
    # snmpsim 1.2 names a symlinked file's community after the link's *target*, so a symlink to
    # a recording in the same folder is a duplicate it ignores ("ignoring duplicate Community").
    error_indication, _, _, _ = get(CommunityData("site8_server"), sim.address, timeout=1, retries=0)
    assert isinstance(error_indication, errind.RequestTimedOut)
    assert sorted(p.name for p in copy_recordings(tmp_path / "copy").iterdir()) == \
        sorted(p.name for p in RECORDINGS.glob("*.snmprec"))


# ---------------------------------------------------------------- traps

@pytest.fixture
def trap_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_send_trap_v2c_arrives(trap_socket: socket.socket) -> None:
    port = trap_socket.getsockname()[1]
    send_trap("127.0.0.1", port, "1.3.6.1.6.3.1.1.5.3", ("1.3.6.1.2.1.2.2.1.1.2", "i", "2"),
              ("1.3.6.1.2.1.1.5.0", "s", "rack-2"), community="trapcomm")
    data, _ = trap_socket.recvfrom(65535)
    assert data[:1] == b"\x30" and b"trapcomm" in data and b"rack-2" in data


def test_send_trap_v3_arrives(trap_socket: socket.socket, snmpd: SnmpdAgent) -> None:
    port = trap_socket.getsockname()[1]
    send_trap("127.0.0.1", port, "1.3.6.1.6.3.1.1.5.4", ("1.3.6.1.2.1.1.5.0", "s", "secret-name"),
              user=snmpd.users["sha_aes"])
    data, _ = trap_socket.recvfrom(65535)
    assert data[:1] == b"\x30"
    assert b"sha_aes" in data  # the USM user name travels in clear
    assert b"secret-name" not in data  # the PDU does not
    assert bytes.fromhex("8000000001020304") in data


def test_send_trap_reports_snmptrap_errors() -> None:
    user = V3User("x", "SHA", "short", "AES", "also-short")  # keys under 8 characters
    with pytest.raises(RuntimeError, match="snmptrap failed"):
        send_trap("127.0.0.1", free_udp_port(), "1.3.6.1.6.3.1.1.5.3", user=user)
