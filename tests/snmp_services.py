"""SNMP services for tests: Debian's real net-snmp daemon, and snmpsim serving device recordings.

A pytest plugin (conftest.py lists it in ``pytest_plugins``). Fixtures:

``snmpd`` (session)
    ``/usr/sbin/snmpd`` on 127.0.0.1 and a free UDP port, with a generated config: a v2c read-only
    community and SNMPv3 users (see ``USER_SPECS``). Yields an ``SnmpdAgent``. Skipped when the
    binary is missing (Debian packages ``snmpd`` and ``snmp``; ``.ci/run`` installs them).
``snmpd_factory`` (function)
    ``start(host="127.0.0.2", port=None, ...) -> SnmpdAgent``: more daemons of the same shape on
    any loopback address (the whole 127.0.0.0/8 is local on Linux), e.g. across 127.0.0.0/29 for
    discovery tests. All stopped at teardown.
``snmpsim`` (session)
    ``snmpsim-command-responder`` serving a temp copy of shared/snmp/devices. The v2c community of
    a device is its file name without ``.snmprec``. Yields an ``Snmpsim``. Skipped without snmpsim.
``snmpsim_factory`` (function)
    ``start(data_dir=None, host="127.0.0.1", port=None) -> Snmpsim``: a responder of a test's own.
    snmpsim reads its data dir once, at start: to serve extra files, put them in a directory first
    (``copy_recordings(dest)`` helps), then start a responder on it. To serve a recording under
    another community, copy or hard-link it: snmpsim 1.2 names a symlink's community after the
    link's target, so a symlink beside its target is ignored as a duplicate.

Helpers: ``free_udp_port``, ``send_trap`` (runs ``/usr/bin/snmptrap``), ``snmpget`` (runs
``/usr/bin/snmpget``), ``usm_user_data`` (a ``V3User`` as pysnmp's ``UsmUserData``).

Protocol names in ``V3User`` use one vocabulary: auth "SHA" (SHA-1), "SHA256", "SHA512", "MD5";
priv "AES" (AES-128), "AES256", "DES". net-snmp's "AES-256" is the Blumenthal key extension
(pysnmp ``usmAesBlumenthalCfb256Protocol``); its "AES-256-C" (Cisco/Reeder, pysnmp
``usmAesCfb256Protocol``) is a different key, and answers nothing to the other (checked with
SHA-1 auth). With SHA512 auth both derive the same key, so only ``sha_aes256`` tells them apart.

Recordings' quirks (shared/snmp/README.md): fortinet_fortigate1500d_firewall ends a walk early at
its first ``<private>`` IpAddress (461 of 635 rows); fortinet_fortigate60f_firewall has an empty
sysDescr; mikrotik_rb952_router's sysDescr is "router".
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT.parent / "shared" / "snmp" / "devices"

SNMPD = "/usr/sbin/snmpd"
SNMPGET = "/usr/bin/snmpget"
SNMPTRAP = "/usr/bin/snmptrap"

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SNMPSIM_PROBE_COMMUNITY = "mikrotik_rb952_router"
COMMUNITY = "fleetcare-ro"
# The engine ID send_trap gives snmptrap for v3 unless told otherwise (a receiver's USM needs it).
TRAP_ENGINE_ID = "8000000001020304"

AUTH_PROTOCOLS = ("SHA", "SHA256", "SHA512", "MD5")
PRIV_PROTOCOLS = ("AES", "AES256", "DES")
# Our vocabulary -> net-snmp's spelling (snmpd.conf createUser, and the -a/-x options of the tools).
_NETSNMP_AUTH = {"SHA": "SHA", "SHA256": "SHA-256", "SHA512": "SHA-512", "MD5": "MD5"}
_NETSNMP_PRIV = {"AES": "AES", "AES256": "AES-256", "DES": "DES"}

_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 10.0


# ---------------------------------------------------------------- data

@dataclass(frozen=True)
class V3User:
    user: str
    auth_protocol: str | None  # "SHA", "SHA256", "SHA512", "MD5"; None: noAuthNoPriv
    auth_key: str | None
    priv_protocol: str | None  # "AES", "AES256", "DES"; None: no privacy
    priv_key: str | None

    @property
    def level(self) -> str:
        """The net-snmp security level: authPriv, authNoPriv or noAuthNoPriv."""
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"


@dataclass(frozen=True)
class UserSpec:
    """A v3 user snmpd is configured with. ``fallback`` (auth, priv): the user to serve instead
    when this snmpd refuses the first choice; ``required`` users fail the fixture instead."""
    name: str
    auth: str
    priv: str | None
    required: bool = False
    fallback: tuple[str, str | None] | None = None

    @property
    def fallback_name(self) -> str | None:
        if not self.fallback:
            return None
        auth, priv = self.fallback
        return f"{auth}_{priv}".lower() if priv else f"{auth.lower()}_auth"


USER_SPECS: tuple[UserSpec, ...] = (
    UserSpec("sha_aes", "SHA", "AES", required=True),
    UserSpec("sha256_aes", "SHA256", "AES"),
    UserSpec("sha512_aes256", "SHA512", "AES256"),
    UserSpec("sha_aes256", "SHA", "AES256"),
    UserSpec("md5_des", "MD5", "DES", fallback=("MD5", "AES")),
    UserSpec("sha_auth", "SHA", None, required=True),
)


@dataclass(frozen=True)
class SnmpdAgent:
    host: str
    port: int
    community: str
    users: Mapping[str, V3User] = field(hash=False)  # key == V3User.user
    pid: int
    engine_id: str = ""  # hex, no 0x: snmpEngineID (exactEngineID in the config)
    sys_descr: str = ""
    sys_name: str = ""
    log_path: Path | None = None
    # Users of USER_SPECS this snmpd would not serve, with why (and the fallback user, if any).
    unsupported: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Snmpsim:
    host: str
    port: int
    data_dir: Path
    pid: int = 0
    log_path: Path | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def communities(self) -> list[str]:
        """One v2c community per recording: the file name without .snmprec."""
        return sorted(p.name.removesuffix(".snmprec") for p in self.data_dir.glob("*.snmprec"))


# ---------------------------------------------------------------- helpers

def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free on ``host`` a moment ago (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _client_env(directory: str) -> dict[str, str]:
    # The net-snmp tools read ~/.snmp and /etc/snmp for defaults, and keep engine boots and
    # cert indexes in /var/lib/snmp: point both at a scratch directory, so the machine's
    # settings never change what a test sends and the tests write nothing outside temp dirs.
    return {**os.environ, "SNMPCONFPATH": directory, "SNMP_PERSISTENT_DIR": directory}


def _netsnmp_security(user: V3User) -> list[str]:
    args = ["-u", user.user, "-l", user.level]
    if user.auth_protocol:
        args += ["-a", _NETSNMP_AUTH[user.auth_protocol], "-A", user.auth_key or ""]
    if user.priv_protocol:
        args += ["-x", _NETSNMP_PRIV[user.priv_protocol], "-X", user.priv_key or ""]
    return args


def snmpget(host: str, port: int, oid: str = SYS_DESCR, *, community: str | None = None,
            user: V3User | None = None, timeout: float = 1.0, retries: int = 0) -> str | None:
    """The value of ``oid`` as ``snmpget -Oqv`` prints it, a string without its quotes (numeric
    OIDs only), or None when the agent does not answer or answers with an error. v3 when ``user``
    is given, else v2c."""
    security = ["-v", "3", *_netsnmp_security(user)] if user else ["-v", "2c", "-c", community or COMMUNITY]
    with tempfile.TemporaryDirectory(prefix="snmpget-") as scratch:
        proc = subprocess.run(
            [SNMPGET, "-m", "", "-On", "-Oqv", "-t", str(timeout), "-r", str(retries), *security,
             f"udp:{host}:{port}", oid],
            capture_output=True, text=True, env=_client_env(scratch), timeout=timeout * (retries + 1) + 10)
    # A fresh SNMP_PERSISTENT_DIR makes the tools say "Created directory: ...": not an error.
    errors = [line for line in proc.stderr.splitlines()
              if line.strip() and not line.startswith("Created directory")]
    if proc.returncode != 0 or errors:
        return None
    out = proc.stdout.rstrip("\n")
    if len(out) >= 2 and out[0] == out[-1] == '"':  # strings print quoted
        out = out[1:-1]
    return out


def send_trap(host: str, port: int, oid: str, *varbinds: tuple[str, str, str],
              community: str = "public", user: V3User | None = None,
              engine_id: str = TRAP_ENGINE_ID, uptime: str = "", timeout: float = 10.0) -> None:
    """Send an SNMPv2c trap (or an SNMPv3 one when ``user`` is given) with ``/usr/bin/snmptrap``.

    ``oid`` is the snmpTrapOID, numeric; each varbind is net-snmp's triplet (OID, TYPE, VALUE),
    e.g. ("1.3.6.1.2.1.1.5.0", "s", "rack-2"); TYPE is one of i u t a o s x d n U I F D b c C.
    ``uptime`` "" lets snmptrap send its own sysUpTime. For v3 the trap sender is the
    authoritative engine: ``engine_id`` (hex, with or without 0x) is what a receiver's USM must
    be configured with. Raises RuntimeError with snmptrap's stderr when it fails.
    """
    if not Path(SNMPTRAP).exists():
        raise RuntimeError(f"{SNMPTRAP} is missing: apt-get install snmp")
    if user:
        engine = engine_id if engine_id.lower().startswith("0x") else f"0x{engine_id}"
        security = ["-v", "3", "-e", engine, *_netsnmp_security(user)]
    else:
        security = ["-v", "2c", "-c", community]
    bindings = [part for varbind in varbinds for part in varbind]
    command = [SNMPTRAP, "-m", "", *security, f"udp:{host}:{port}", uptime, oid, *bindings]
    with tempfile.TemporaryDirectory(prefix="snmptrap-") as scratch:
        proc = subprocess.run(command, capture_output=True, text=True, env=_client_env(scratch),
                              timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"snmptrap failed (exit {proc.returncode}): {proc.stderr.strip()}\n"
                           f"command: {' '.join(command)}")


def usm_user_data(user: V3User) -> Any:
    """``user`` as pysnmp's ``UsmUserData`` (AES256 is net-snmp's: Blumenthal)."""
    from pysnmp.hlapi.v3arch import asyncio as hl

    auth = {None: hl.usmNoAuthProtocol, "SHA": hl.usmHMACSHAAuthProtocol,
            "SHA256": hl.usmHMAC192SHA256AuthProtocol, "SHA512": hl.usmHMAC384SHA512AuthProtocol,
            "MD5": hl.usmHMACMD5AuthProtocol}[user.auth_protocol]
    priv = {None: hl.usmNoPrivProtocol, "AES": hl.usmAesCfb128Protocol,
            "AES256": hl.usmAesBlumenthalCfb256Protocol, "DES": hl.usmDESPrivProtocol}[user.priv_protocol]
    return hl.UsmUserData(user.user, user.auth_key, user.priv_key, authProtocol=auth, privProtocol=priv)


def copy_recordings(dest: Path, source: Path = RECORDINGS) -> Path:
    """Copy the *.snmprec recordings into ``dest`` (created) and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.snmprec")):
        shutil.copy2(path, dest / path.name)
    return dest


class _Process:
    """A service subprocess in its own session; stop() always leaves nothing behind."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str],
                 cwd: Path) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:  # the whole session: nothing it started may outlive it
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


def _wait_ready(process: _Process, probe: Callable[[], object], what: str,
                timeout: float = _START_TIMEOUT) -> bool:
    """True once ``probe()`` is truthy; False if the process exits first; raise after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            return False
        if probe():
            return True
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s; log {process.log_path}:\n"
                       f"{process.log()[-4000:]}")


# ---------------------------------------------------------------- snmpd

def _engine_id() -> str:
    # RFC 3411 format 5 (octets) under net-snmp's enterprise number 8072.
    return "80001f8805" + secrets.token_hex(8)


def _snmpd_config(host: str, port: int, community: str, users: Sequence[V3User], engine_id: str,
                  sys_descr: str, sys_name: str, sys_object_id: str | None, extra: str) -> str:
    lines = [
        "# generated by tests/snmp_services.py",
        f"agentAddress udp:{host}:{port}",
        f"exactEngineID 0x{engine_id}",
        f"rocommunity {community}",
        f"sysDescr {sys_descr}",
        f"sysName {sys_name}",
        "sysLocation fleetcare test rack",
        "sysContact tests@fleetcare.invalid",
        "sysServices 72",
    ]
    if sys_object_id:
        lines.append(f"sysObjectID {sys_object_id}")
    for user in users:
        auth = f" {_NETSNMP_AUTH[user.auth_protocol]} {user.auth_key}" if user.auth_protocol else ""
        priv = f" {_NETSNMP_PRIV[user.priv_protocol]} {user.priv_key}" if user.priv_protocol else ""
        lines.append(f"createUser {user.user}{auth}{priv}")
        lines.append(f"rouser {user.user} {'priv' if user.priv_protocol else 'auth'}")
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


def _make_user(spec: UserSpec, auth: str, priv: str | None) -> V3User:
    return V3User(spec.name, auth, f"{spec.name}-auth-{secrets.token_hex(4)}",
                  priv, f"{spec.name}-priv-{secrets.token_hex(4)}" if priv else None)


def start_snmpd(directory: Path, host: str = "127.0.0.1", port: int | None = None, *,
                community: str = COMMUNITY, sys_descr: str | None = None, sys_name: str | None = None,
                sys_object_id: str | None = None, extra_config: str = "",
                specs: Sequence[UserSpec] = USER_SPECS) -> tuple[SnmpdAgent, _Process]:
    """Start snmpd in ``directory`` (config, persistent state, log); ready when it returns.

    Every user is probed with snmpget once the daemon answers. A user whose protocols this snmpd
    refuses is left out; one with a ``fallback`` is replaced by a user of those protocols, named
    after them (md5_des -> md5_aes), and snmpd restarted once. ``unsupported`` says which and why.
    """
    if not Path(SNMPD).exists():
        raise FileNotFoundError(SNMPD)
    directory.mkdir(parents=True, exist_ok=True)
    sys_descr = sys_descr or f"fleetcare test snmpd on {host}"
    sys_name = sys_name or f"fc-snmpd-{host.replace('.', '-')}"
    current = list(specs)
    unsupported: dict[str, str] = {}
    for round_ in range(2):
        users = {spec.name: _make_user(spec, spec.auth, spec.priv) for spec in current}
        agent, process = _launch_snmpd(directory, host, port, community, list(users.values()),
                                       sys_descr, sys_name, sys_object_id, extra_config)
        failed = [spec for spec in current
                  if snmpget(host, agent.port, SYS_DESCR, user=users[spec.name], timeout=2) != sys_descr]
        required = [spec.name for spec in failed if spec.required]
        if required:
            process.stop()
            raise RuntimeError(f"snmpd at {host}:{agent.port} refused required v3 users {required}; "
                               f"log {process.log_path}:\n{process.log()[-4000:]}")
        retry = False
        for spec in failed:
            refused = f"{spec.auth}/{spec.priv or '-'} refused by this snmpd"
            index = current.index(spec)
            if round_ == 0 and spec.fallback:
                auth, priv = spec.fallback
                name = spec.fallback_name
                unsupported[spec.name] = f"{refused}; user {name} ({auth}/{priv or '-'}) instead"
                current[index] = UserSpec(name, auth, priv, spec.required)
                retry = True
            else:
                unsupported[spec.name] = refused
                del current[index]
        if retry:
            process.stop()
            continue
        served = {spec.name: users[spec.name] for spec in current}
        return (SnmpdAgent(host, agent.port, community, served, process.pid, agent.engine_id,
                           sys_descr, sys_name, process.log_path, dict(unsupported)), process)
    raise AssertionError("unreachable")


def _launch_snmpd(directory: Path, host: str, port: int | None, community: str, users: list[V3User],
                  sys_descr: str, sys_name: str, sys_object_id: str | None,
                  extra: str) -> tuple[SnmpdAgent, _Process]:
    attempts = 1 if port else 3  # a port picked for us may be taken before snmpd binds it
    for _ in range(attempts):
        chosen_port = port or free_udp_port(host)
        engine_id = _engine_id()
        state = directory / f"state-{chosen_port}"
        if state.exists():
            shutil.rmtree(state)
        state.mkdir()
        conf = directory / f"snmpd-{chosen_port}.conf"
        conf.write_text(_snmpd_config(host, chosen_port, community, users, engine_id, sys_descr,
                                      sys_name, sys_object_id, extra))
        # -f foreground, -Lo log to stdout (our log file), -C only our config, -m "" load no MIB
        # files (Debian ships snmpd without the IETF MIBs: loading them only logs hundreds of
        # "Cannot find module"). Root needs nothing special: without -u/-g snmpd stays root.
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(state), "SNMPCONFPATH": str(state)}
        process = _Process("snmpd", [SNMPD, "-f", "-Lo", "-C", "-m", "", "-c", str(conf)],
                           directory / f"snmpd-{chosen_port}.log", env, directory)
        if _wait_ready(process, lambda: snmpget(host, chosen_port, SYS_DESCR, community=community,
                                                timeout=0.5) == sys_descr,
                       f"snmpd on {host}:{chosen_port}"):
            agent = SnmpdAgent(host, chosen_port, community, {}, process.pid, engine_id)
            return agent, process
        process.stop()
    raise RuntimeError(f"snmpd on {host} exited before answering; log {process.log_path}:\n"
                       f"{process.log()[-4000:]}")


def _require_snmpd() -> None:
    missing = [path for path in (SNMPD, SNMPGET) if not Path(path).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: install Debian's snmpd and snmp packages "
                    "(.ci/run does)")


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdAgent]:
    """Real net-snmp snmpd on 127.0.0.1: v2c community ``COMMUNITY`` and the v3 users of USER_SPECS."""
    _require_snmpd()
    agent, process = start_snmpd(tmp_path_factory.mktemp("snmpd"))
    try:
        yield agent
    finally:
        process.stop()


@pytest.fixture
def snmpd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SnmpdAgent]]:
    """``start(host="127.0.0.2", port=None, *, community=..., sys_descr=..., sys_name=...,
    sys_object_id=..., extra_config="")`` starts one more snmpd; all are stopped at teardown."""
    _require_snmpd()
    processes: list[_Process] = []

    def start(host: str = "127.0.0.2", port: int | None = None, **options: Any) -> SnmpdAgent:
        agent, process = start_snmpd(tmp_path_factory.mktemp(f"snmpd-{host}"), host, port, **options)
        processes.append(process)
        return agent

    try:
        yield start
    finally:
        for process in processes:
            process.stop()


# ---------------------------------------------------------------- snmpsim

def start_snmpsim(data_dir: Path, work_dir: Path, host: str = "127.0.0.1",
                  port: int | None = None) -> tuple[Snmpsim, _Process]:
    """Start snmpsim-command-responder on ``data_dir``; ready when it returns."""
    work_dir.mkdir(parents=True, exist_ok=True)
    communities = sorted(p.name.removesuffix(".snmprec") for p in data_dir.glob("*.snmprec"))
    if not communities:
        raise RuntimeError(f"no *.snmprec in {data_dir}")
    probe = SNMPSIM_PROBE_COMMUNITY if SNMPSIM_PROBE_COMMUNITY in communities else communities[0]
    attempts = 1 if port else 3
    for _ in range(attempts):
        chosen_port = port or free_udp_port(host)
        log_path = work_dir / f"snmpsim-{chosen_port}.log"
        # The module, not the console script: it is where sys.executable is, venv or not.
        command = [sys.executable, "-m", "snmpsim.commands.responder",
                   f"--data-dir={data_dir}", f"--cache-dir={work_dir / 'cache'}",
                   f"--agent-udpv4-endpoint={host}:{chosen_port}",
                   f"--logging-method=file:{log_path}"]
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        process = _Process("snmpsim", command, work_dir / f"snmpsim-{chosen_port}.out", env, work_dir)
        process.log_path = log_path  # its own log; stdout (.out) holds only start-up failures
        if _wait_ready(process, lambda: snmpget(host, chosen_port, SYS_DESCR, community=probe,
                                                timeout=0.5) is not None,
                       f"snmpsim on {host}:{chosen_port}", timeout=60):
            return Snmpsim(host, chosen_port, data_dir, process.pid, log_path), process
        process.stop()
    out = (work_dir / f"snmpsim-{chosen_port}.out").read_text(errors="replace")
    raise RuntimeError(f"snmpsim on {host} exited before answering:\n{out[-4000:]}\n{process.log()[-4000:]}")


def _require_snmpsim() -> None:
    if importlib.util.find_spec("snmpsim") is None:
        pytest.skip("snmpsim is not installed: pip install -e '.[test]' (snmpsim, pysmi)")
    if not Path(SNMPGET).exists():
        pytest.skip(f"{SNMPGET} missing: install Debian's snmp package (.ci/run does)")
    if not RECORDINGS.is_dir():
        pytest.skip(f"no SNMP recordings at {RECORDINGS}")


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpsim]:
    """snmpsim serving a copy of shared/snmp/devices; community = recording file name's stem."""
    _require_snmpsim()
    work = tmp_path_factory.mktemp("snmpsim")
    sim, process = start_snmpsim(copy_recordings(work / "data"), work)
    try:
        yield sim
    finally:
        process.stop()


@pytest.fixture
def snmpsim_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Snmpsim]]:
    """``start(data_dir=None, host="127.0.0.1", port=None)``: a responder of the test's own, on
    ``data_dir`` (prepared beforehand) or a fresh copy of the recordings. Stopped at teardown."""
    _require_snmpsim()
    processes: list[_Process] = []

    def start(data_dir: Path | None = None, host: str = "127.0.0.1", port: int | None = None) -> Snmpsim:
        work = tmp_path_factory.mktemp("snmpsim")
        sim, process = start_snmpsim(data_dir or copy_recordings(work / "data"), work, host, port)
        processes.append(process)
        return sim

    try:
        yield start
    finally:
        for process in processes:
            process.stop()
