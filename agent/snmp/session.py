"""pysnmp 7 behind one small seam: GET, multi-column GETBULK walks, and errors as plain states.

Everything above this module sees OIDs as dotted strings and values as ``Value`` (plain Python
numbers and strings with their SNMP type), so the poller is tested with fakes and this module
against real agents. MIBs are never loaded (``lookupMib=False``): profiles carry numeric OIDs.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5, USM_AUTH_HMAC96_SHA, USM_AUTH_HMAC128_SHA224, USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384, USM_AUTH_HMAC384_SHA512, USM_AUTH_NONE, USM_PRIV_CBC56_DES,
    USM_PRIV_CBC168_3DES, USM_PRIV_CFB128_AES, USM_PRIV_CFB192_AES, USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES, USM_PRIV_CFB256_AES_BLUMENTHAL, USM_PRIV_NONE,
    CommunityData, ContextData, SnmpEngine, Udp6TransportTarget, UdpTransportTarget, UsmUserData,
)
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind
from pysnmp.proto.rfc1902 import Null, ObjectName

AUTH_PROTOCOLS = {"MD5": USM_AUTH_HMAC96_MD5, "SHA": USM_AUTH_HMAC96_SHA, "SHA224": USM_AUTH_HMAC128_SHA224,
                  "SHA256": USM_AUTH_HMAC192_SHA256, "SHA384": USM_AUTH_HMAC256_SHA384,
                  "SHA512": USM_AUTH_HMAC384_SHA512}
# AES192/AES256 follow net-snmp (Blumenthal key extension); the *C variants are the Cisco
# ("Reeder") key extension some vendors use instead. The two do not interoperate.
PRIV_PROTOCOLS = {"DES": USM_PRIV_CBC56_DES, "3DES": USM_PRIV_CBC168_3DES, "AES": USM_PRIV_CFB128_AES,
                  "AES192": USM_PRIV_CFB192_AES_BLUMENTHAL, "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL,
                  "AES192C": USM_PRIV_CFB192_AES, "AES256C": USM_PRIV_CFB256_AES}

# Counter types and their width, for wrap arithmetic.
COUNTER_BITS = {"Counter32": 32, "Counter64": 64}
_MISSING = {"NoSuchObject", "NoSuchInstance", "EndOfMibView", "Null"}


@dataclass(frozen=True)
class Credentials:
    version: str                    # "1", "2c" or "3"
    community: str = "public"
    user: str = ""
    auth_protocol: str = ""         # "" = noAuth
    auth_key: str = ""
    priv_protocol: str = ""         # "" = noPriv
    priv_key: str = ""
    context: str = ""


@dataclass(frozen=True)
class Value:
    """A value as the device sent it: ``type`` is the SNMP type name (Counter64, OctetString, …)."""

    type: str
    value: int | float | str

    @property
    def number(self) -> float | None:
        """The value as a finite number, or None (text, "NaN", "inf")."""
        try:
            number = float(self.value)  # some agents send numbers as strings (laLoad, sensors)
        except (TypeError, ValueError, OverflowError):
            return None
        return number if math.isfinite(number) else None

    @property
    def counter_bits(self) -> int | None:
        return COUNTER_BITS.get(self.type)


class SnmpError(Exception):
    """The device could not be read. ``state`` is what the API shows; ``detail`` says why."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(f"{state}: {detail}")
        self.state = state
        self.detail = detail


# pysnmp's error indications (REPORT PDUs for SNMPv3) → a state and words an engineer acts on.
_AUTH_FAILURES = {
    errind.UnknownUserName: "unknown user name (usmStatsUnknownUserNames): check the v3 user",
    errind.WrongDigest: "wrong digest (usmStatsWrongDigests): check auth_key and auth_protocol",
    errind.UnsupportedSecurityLevel: "unsupported security level (usmStatsUnsupportedSecLevels): "
                                     "the user is not configured for this auth/priv level",
    errind.DecryptionError: "decryption error (usmStatsDecryptionErrors): check priv_key and priv_protocol",
    errind.AuthenticationError: "authentication error: check auth_key and auth_protocol",
    errind.AuthenticationFailure: "authentication failure: check the credentials",
    errind.UnknownSecurityName: "unknown security name: check the v3 user",
    errind.NotInTimeWindow: "not in time window (usmStatsNotInTimeWindows): engine boots/time mismatch",
    errind.UnknownEngineID: "unknown engine ID (usmStatsUnknownEngineIDs)",
    errind.UnsupportedAuthProtocol: "authentication protocol not supported by this agent",
    errind.UnsupportedPrivProtocol: "privacy protocol not supported by this agent",
}


def classify(indication: Any, version: str) -> SnmpError:
    """Turn a pysnmp error indication into a state: auth_failure, no_response or error."""
    for cls, words in _AUTH_FAILURES.items():
        if isinstance(indication, cls):
            return SnmpError("auth_failure", words)
    if isinstance(indication, errind.RequestTimedOut):
        if version == "3":
            return SnmpError("no_response", "no response — unreachable, SNMP not enabled, or a wrong priv_key or privacy protocol (a device drops what it cannot decrypt)")
        return SnmpError("no_response", "no response — unreachable or wrong community")
    return SnmpError("error", str(indication))


def _convert(val: Any) -> Value | None:
    kind = type(val).__name__
    if kind in _MISSING:
        return None
    if kind in ("Integer", "Integer32", "Unsigned32", "Gauge32", "Counter32", "Counter64", "TimeTicks"):
        return Value(kind, int(val))
    if kind == "OctetString":
        raw = bytes(val)
        try:
            # NUL padding ("eth0\0\0…") and line breaks (multi-line sysDescr) are still text
            text = raw.decode("utf-8").rstrip("\x00")
            if text.replace("\r", "").replace("\n", "").replace("\t", "").isprintable():
                return Value(kind, text)
        except UnicodeDecodeError:
            pass
        return Value(kind, raw.hex(":"))
    return Value(kind, val.prettyPrint())  # ObjectIdentifier, IpAddress, Opaque, Bits


# The command generators of RFC 3413, used directly rather than through hlapi's get_cmd/bulk_cmd:
# those resolve every request OID through the MIB view (even with lookupMib=False), which was
# the largest CPU cost per varbind in bench/snmp_poll.py.
_GET, _NEXT, _BULK = cmdgen.GetCommandGenerator(), cmdgen.NextCommandGenerator(), cmdgen.BulkCommandGenerator()
_NULL = Null("")
_NAMES: dict[str, ObjectName] = {}


def _name(oid: str) -> ObjectName:
    name = _NAMES.get(oid)
    if name is None:
        name = ObjectName(oid)
        if len(_NAMES) < 100_000:  # profile OIDs repeat every poll; walk positions mostly do not
            _NAMES[oid] = name
    return name


class Session:
    """One device's connection parameters; all sessions share one SNMP engine (one socket)."""

    def __init__(self, engine: SnmpEngine, host: str, port: int, creds: Credentials,
                 timeout: float = 2.0, retries: int = 1, max_repetitions: int = 25) -> None:
        self.engine = _engine_for(engine, creds)
        self.host, self.port = host, port
        self.creds = creds
        self.timeout, self.retries = timeout, retries
        self.max_repetitions = max_repetitions
        self._target: UdpTransportTarget | None = None
        self._addr: Any = None
        self._rows: dict[tuple[str, ...], int] = {}  # rows each walk found last time
        self.varbinds = 0  # values received, for the poll-cost benchmark
        self._auth = self._auth_data(creds)
        self._context = ContextData(contextName=creds.context) if creds.context else ContextData()

    @staticmethod
    def _auth_data(c: Credentials) -> CommunityData | UsmUserData:
        if c.version in ("1", "2c"):
            return CommunityData(c.community, mpModel=0 if c.version == "1" else 1)
        return UsmUserData(
            c.user, authKey=c.auth_key or None, privKey=c.priv_key or None,
            authProtocol=AUTH_PROTOCOLS[c.auth_protocol] if c.auth_protocol else USM_AUTH_NONE,
            privProtocol=PRIV_PROTOCOLS[c.priv_protocol] if c.priv_protocol else USM_PRIV_NONE)

    async def _request(self, kind: str, oids: list[str], repetitions: int = 0) -> tuple[Any, Any, Any, Any]:
        """One GET, GETNEXT or GETBULK; returns pysnmp's (indication, status, index, varbinds)."""
        target = await self._transport()
        if self._addr is None:
            self._addr, _ = LCD.configure(self.engine, self._auth, target, self._context.contextName)
        future = asyncio.get_running_loop().create_future()

        def done(engine: Any, handle: Any, indication: Any, status: Any, index: Any, binds: Any, ctx: Any) -> None:
            if not future.done():
                future.set_result((indication, status, index, binds))

        binds = [(_name(o), _NULL) for o in oids]
        engine_id, context = self._context.contextEngineId, self._context.contextName
        if kind == "get":
            _GET.send_varbinds(self.engine, self._addr, engine_id, context, binds, done)
        elif kind == "next":
            _NEXT.send_varbinds(self.engine, self._addr, engine_id, context, binds, done)
        else:
            _BULK.send_varbinds(self.engine, self._addr, engine_id, context, 0, repetitions, binds, done)
        return await future

    async def _transport(self) -> UdpTransportTarget:
        if self._target is None:
            try:
                kind = Udp6TransportTarget if ":" in self.host else UdpTransportTarget
                self._target = await kind.create((self.host, self.port), timeout=self.timeout,
                                                 retries=self.retries)
            except Exception as exc:  # name resolution failures and the like
                raise SnmpError("no_response", f"cannot reach {self.host}:{self.port}: {exc}") from None
        return self._target

    def _check(self, indication: Any, status: Any, index: Any) -> None:
        if indication:
            raise classify(indication, self.creds.version)
        if status and int(status) != 0 and status.prettyPrint() not in ("noSuchName",):
            raise SnmpError("error", f"agent answered {status.prettyPrint()} at varbind {int(index)}")

    async def get(self, oids: list[str]) -> dict[str, Value | None]:
        """GET several OIDs; a missing one maps to None (noSuchObject/noSuchInstance, or noSuchName
        in v1, where the other OIDs are then asked again one by one)."""
        if not oids:
            return {}
        out: dict[str, Value | None] = {}
        for start in range(0, len(oids), 40):  # stay well under typical PDU size limits
            chunk = oids[start:start + 40]
            ind, status, index, binds = await self._request("get", chunk)
            if not ind and status and status.prettyPrint() == "noSuchName":
                for oid in chunk:
                    out.update(await self._get_one(oid))
                continue
            self._check(ind, status, index)
            self.varbinds += len(binds)
            for oid, val in binds:
                out[str(oid)] = _convert(val)
        return out

    async def _get_one(self, oid: str) -> dict[str, Value | None]:
        ind, status, index, binds = await self._request("get", [oid])
        if not ind and status and int(status) != 0:
            return {oid: None}
        self._check(ind, status, index)
        return {str(o): _convert(v) for o, v in binds}

    async def next(self, oids: list[str]) -> dict[str, tuple[str, Value | None]]:
        """GETNEXT: for each OID, the next OID the agent has and its value."""
        ind, status, index, binds = await self._request("next", oids)
        if not ind and status and status.prettyPrint() == "noSuchName":
            # v1: one OID past the end of the agent's MIB fails the whole request; ask one by one
            if len(oids) == 1:
                return {oids[0]: ("", None)}
            out: dict[str, tuple[str, Value | None]] = {}
            for oid in oids:
                out.update(await self.next([oid]))
            return out
        self._check(ind, status, index)
        self.varbinds += len(binds)
        return {asked: (str(oid), _convert(val)) for asked, (oid, val) in zip(oids, binds)}

    async def walk(self, columns: list[str]) -> dict[str, dict[str, Value]]:
        """Walk table columns together (GETBULK; GETNEXT on v1) → {column: {index: value}}."""
        result: dict[str, dict[str, Value]] = {c: {} for c in columns}
        position = {c: c for c in columns}
        active = list(columns)
        key = tuple(columns)
        rounds = 0
        while active:
            rounds += 1
            if rounds > 10_000:
                raise SnmpError("error", "walk did not end (agent returns OIDs that do not increase)")
            asked = [position[c] for c in active]
            if self.creds.version == "1":  # no GETBULK: GETNEXT, column by column where v1 needs it
                got = await self.next(asked)
                done: set[str] = set()
                for column in active:
                    oid_s, value = got.get(position[column], ("", None))
                    if not oid_s.startswith(column + ".") or oid_s == position[column]:
                        done.add(column)
                        continue
                    position[column] = oid_s
                    if value is not None:
                        result[column][oid_s[len(column) + 1:]] = value
                active = [c for c in active if c not in done]
                continue
            else:
                # enough repetitions to finish in one round when the table is as long as last time,
                # within a budget of varbinds per request
                known = self._rows.get(key, self.max_repetitions)
                reps = max(1, min(known + 1, self.max_repetitions * 2 // len(active)))
                ind, status, index, binds = await self._request("bulk", asked, reps)
            self._check(ind, status, index)
            if not binds:
                break
            self.varbinds += len(binds)
            finished: set[str] = set()
            width = len(active)
            for i, (oid, val) in enumerate(binds):
                column = active[i % width]
                if column in finished:
                    continue
                oid_s = str(oid)
                kind = type(val).__name__
                if kind == "EndOfMibView" or not oid_s.startswith(column + "."):
                    finished.add(column)
                    continue
                if oid_s == position[column]:
                    finished.add(column)  # not increasing: stop rather than loop (and a round cap)
                    continue
                position[column] = oid_s
                converted = _convert(val)
                if converted is not None:
                    result[column][oid_s[len(column) + 1:]] = converted
            active = [c for c in active if c not in finished]
        self._rows[key] = max((len(v) for v in result.values()), default=0)
        return result


_V3_ENGINES = "fleetcare_v3_engines"


def _engine_for(engine: SnmpEngine, creds: Credentials) -> SnmpEngine:
    """The engine a session sends through: the shared one, except for a v3 user name already used
    there with other keys or protocols. pysnmp keeps one USM entry per user name in an engine and
    replaces its keys when another target brings different ones, so two devices with the same
    user name and different keys would each be sent the other's (one fails with a wrong digest,
    or a wrong key passes): each further set of credentials for a user name gets its own engine."""
    if creds.version != "3":
        return engine
    registry = engine.get_user_context(_V3_ENGINES)
    if registry is None:
        registry = {}
        engine.set_user_context(**{_V3_ENGINES: registry})
    users = registry.setdefault(creds.user, {})
    key = (creds.auth_protocol, creds.auth_key, creds.priv_protocol, creds.priv_key)
    if key not in users:
        users[key] = SnmpEngine() if users else engine
    return users[key]


def new_engine() -> SnmpEngine:
    return SnmpEngine()


async def close(engine: SnmpEngine) -> None:
    """Release the engine's sockets (pysnmp 7: close_dispatcher), and those of the engines its v3
    sessions needed of their own."""
    registry = engine.get_user_context(_V3_ENGINES) or {}
    extra = [e for users in registry.values() for e in users.values() if e is not engine]
    for each in [*extra, engine]:
        try:
            each.close_dispatcher()
        except Exception:
            pass
    await asyncio.sleep(0)
