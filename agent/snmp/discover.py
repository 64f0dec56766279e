"""`fleetcare agent discover`: find SNMP devices in an address range and propose their config.

Every address is asked for sysObjectID, sysDescr and sysName at the same time (bounded
concurrency, short timeout); each responder is identified against the profiles and printed as a
``[[snmp.targets]]`` block ready to paste into the agent's configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import sys
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from agent.config import AUTH_PROTOCOLS, PRIV_PROTOCOLS
from agent.snmp.profiles import Library

if TYPE_CHECKING:  # pysnmp is imported only when discovery runs: the CLI stays quick
    from agent.snmp.session import Credentials

MAX_HOSTS = 4096


@dataclass
class Found:
    host: str
    sys_name: str
    sys_descr: str
    sys_object_id: str
    kind: str
    profile: str | None
    detected: list[str] = field(default_factory=list)


@dataclass
class Refused:
    host: str
    state: str
    detail: str


def addresses(spec: str, max_hosts: int = MAX_HOSTS) -> list[str]:
    """The host addresses of a CIDR range (or one address); refuses ranges larger than ``max_hosts``."""
    try:
        network = ipaddress.ip_network(spec, strict=False)
    except ValueError as exc:
        raise ValueError(f"--range {spec!r}: {exc}") from None
    if network.num_addresses > max_hosts:
        raise ValueError(f"--range {spec} has {network.num_addresses} addresses; the limit is {max_hosts} "
                         "(split the range, or raise --max-hosts)")
    hosts = [str(h) for h in network.hosts()] if network.num_addresses > 2 else [str(h) for h in network]
    return hosts


async def probe(hosts: list[str], creds: Credentials, port: int = 161, timeout: float = 1.0,
                retries: int = 0, concurrency: int = 128, library: Library | None = None
                ) -> tuple[list[Found], list[Refused]]:
    """Ask every host at once (bounded); returns the responders and those that refused us (v3)."""
    from agent.snmp.poller import SYS_DESCR, SYS_NAME, SYS_OBJECT_ID, device_kind
    from agent.snmp.session import Session, SnmpError, new_engine
    library = library or Library.load()
    engine = new_engine()
    limit = asyncio.Semaphore(concurrency)
    found: list[Found] = []
    refused: list[Refused] = []

    async def one(host: str) -> None:
        async with limit:
            session = Session(engine, host, port, creds, timeout=timeout, retries=retries)
            try:
                got = await session.get([SYS_OBJECT_ID, SYS_DESCR, SYS_NAME])
                if got.get(SYS_OBJECT_ID) is None and got.get(SYS_DESCR) is None:
                    return
                oid = str(got[SYS_OBJECT_ID].value) if got.get(SYS_OBJECT_ID) else ""
                descr = str(got[SYS_DESCR].value) if got.get(SYS_DESCR) else ""
                name = str(got[SYS_NAME].value) if got.get(SYS_NAME) else ""
                candidates = [p for p in library.detectable if p.detect]
                nexts = await session.next([p.detect for p in candidates]) if candidates else {}
            except SnmpError as exc:
                if exc.state != "no_response":  # silence is the normal answer of an empty address
                    refused.append(Refused(host, exc.state, exc.detail))
                return
            detected = [p for p in candidates if nexts.get(p.detect, ("", None))[0].startswith(p.detect + ".")]
            ident = library.identify(oid, descr)
            profiles = library.resolve(([ident.name] if ident else []) + [p.name for p in detected])
            kind = device_kind(ident, profiles)
            found.append(Found(host, name, descr, oid, kind, ident.name if ident else None,
                               [p.name for p in detected]))

    try:
        await asyncio.gather(*(one(h) for h in hosts))
    finally:
        try:
            engine.close_dispatcher()
        except Exception:
            pass
    key = lambda item: ipaddress.ip_address(item.host)  # noqa: E731
    return sorted(found, key=key), sorted(refused, key=key)


def device_name(found: Found, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", found.sys_name).strip("-.") if found.sys_name else ""
    if not base or base.lower() in ("private", "localhost") or not base[0].isalnum():
        base = f"{found.kind}-{found.host.replace('.', '-').replace(':', '-')}"
    name, n = base[:60], 2
    while name in taken:
        name, n = f"{base[:56]}-{n}", n + 1
    taken.add(name)
    return name


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_block(found: Found, name: str, creds: Credentials, port: int) -> str:
    lines = [f"# {found.sys_descr[:100]!s}".rstrip(),
             f"# sysObjectID {found.sys_object_id}; detected: {', '.join(found.detected) or 'none'}",
             "[[snmp.targets]]", f"name = {_q(name)}", f"host = {_q(found.host)}"]
    if port != 161:
        lines.append(f"port = {port}")
    lines.append(f"version = {_q(creds.version)}")
    if creds.version in ("1", "2c"):
        lines.append(f"community = {_q(creds.community)}")
    else:
        lines.append(f"user = {_q(creds.user)}")
        if creds.auth_protocol:
            lines += [f"auth_protocol = {_q(creds.auth_protocol)}", f"auth_key = {_q(creds.auth_key)}"]
        if creds.priv_protocol:
            lines += [f"priv_protocol = {_q(creds.priv_protocol)}", f"priv_key = {_q(creds.priv_key)}"]
        if creds.context:
            lines.append(f"context = {_q(creds.context)}")
    lines.append('profile = "auto"' + (f"  # identified as {found.profile} ({found.kind})" if found.profile
                                      else f"  # {found.kind}"))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--range", required=True, dest="cidr", help="addresses to probe, e.g. 192.0.2.0/24")
    parser.add_argument("--port", type=int, default=161)
    parser.add_argument("--community", default="public", help="v1/v2c community (default public)")
    parser.add_argument("--version", choices=("1", "2c", "3"), default=None,
                        help="SNMP version (default 2c, or 3 when --v3-user is given)")
    parser.add_argument("--v3-user", default="")
    parser.add_argument("--v3-auth-protocol", default="SHA", choices=[a for a in AUTH_PROTOCOLS if a])
    parser.add_argument("--v3-auth-key", default="")
    parser.add_argument("--v3-priv-protocol", default="", choices=list(PRIV_PROTOCOLS))
    parser.add_argument("--v3-priv-key", default="")
    parser.add_argument("--v3-context", default="")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per address (default 1)")
    parser.add_argument("--retries", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--max-hosts", type=int, default=MAX_HOSTS)


def run(args: argparse.Namespace) -> int:
    """Print the config blocks on stdout and a summary on stderr; exit 2 on bad arguments."""
    version = args.version or ("3" if args.v3_user else "2c")
    if version == "3" and not args.v3_user:
        print("discover: SNMPv3 needs --v3-user", file=sys.stderr)
        return 2
    try:
        hosts = addresses(args.cidr, args.max_hosts)
    except ValueError as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 2
    from agent.snmp.session import Credentials
    creds = Credentials(version, args.community, args.v3_user,
                        args.v3_auth_protocol if args.v3_auth_key else "", args.v3_auth_key,
                        args.v3_priv_protocol if args.v3_priv_key else "", args.v3_priv_key, args.v3_context)
    print(f"probing {len(hosts)} address(es) in {args.cidr} with SNMPv{version}…", file=sys.stderr)
    found, refused = asyncio.run(probe(hosts, creds, args.port, args.timeout, args.retries, args.concurrency))
    taken: set[str] = set()
    for f in found:
        print(config_block(f, device_name(f, taken), creds, args.port))
        print()
    for r in refused:
        print(f"{r.host}: answers but refused us: {r.state}: {r.detail}", file=sys.stderr)
    print(f"{len(found)} device(s) found, {len(refused)} refused, {len(hosts) - len(found) - len(refused)} "
          "silent", file=sys.stderr)
    return 0
