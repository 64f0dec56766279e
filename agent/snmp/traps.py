"""The SNMP notification listener: traps and informs (v1, v2c, v3) become device events at once.

Known notifications (the ``[[traps]]`` of the profiles: linkDown/linkUp, cold/warm start,
authenticationFailure, UPS on battery…) get a name, a severity and words; any other is forwarded
raw with its variable bindings, never dropped. The sender is matched to a configured target by
address; a sender that is no target still gets its events, on a device named after its address.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto.api import v2c

from agent import wire
from agent.config import SnmpSection
from agent.snmp.profiles import Library
from agent.snmp.session import AUTH_PROTOCOLS, PRIV_PROTOCOLS, _convert

log = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1."
IF_DESCR = "1.3.6.1.2.1.2.2.1.2."
RECEIVE = "rfc3412.receiveMessage:request"


def sender_device(address: str) -> str:
    """A device id for a sender that is not a configured target: trap-192-0-2-7."""
    cleaned = "".join(c if c.isalnum() else "-" for c in address)
    return f"trap-{cleaned}"[:64]


class TrapListener:
    """Owns its own SNMP engine (a notification receiver is authoritative for informs)."""

    def __init__(self, config: SnmpSection, library: Library, device_for: Callable[[str], str | None],
                 emit: Callable[[list[wire.Event]], None], clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.library = library
        self.device_for = device_for
        self.emit = emit
        self.clock = clock
        self.received = 0
        self.engine: Any = None
        self._known = library.traps()

    def open(self) -> None:
        """Bind the UDP port and register communities and users; call inside the running loop."""
        eng = snmp_engine.SnmpEngine()
        address = (self.config.trap_address, self.config.trap_port)
        # Bind here, synchronously: pysnmp binds in the background, where a taken or privileged
        # port would fail unseen and leave the agent deaf to traps.
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen for SNMP traps on udp {address[0]}:{address[1]}: {exc.strerror}"
                          + (" (ports below 1024 need root or CAP_NET_BIND_SERVICE)" if address[1] < 1024 else ""))
        sock.setblocking(False)
        snmp_config.add_transport(eng, udp.DOMAIN_NAME, udp.UdpTransport().open_server_mode(sock=sock))
        for i, community in enumerate(self.config.trap_communities):
            snmp_config.add_v1_system(eng, f"fleetcare-trap-{i}", community)
        for u in self.config.trap_users:
            auth = (u.auth_protocol or "").upper()
            priv = (u.priv_protocol or "").upper()
            # informs: we are the authoritative engine (our own engine ID); traps: the sender is,
            # so its engine ID must be known too
            engine_ids = [None] + ([v2c.OctetString(hexValue=u.engine_id)] if u.engine_id else [])
            for engine_id in engine_ids:
                snmp_config.add_v3_user(
                    eng, u.user,
                    AUTH_PROTOCOLS[auth] if auth else snmp_config.USM_AUTH_NONE, u.auth_key or None,
                    PRIV_PROTOCOLS[priv] if priv else snmp_config.USM_PRIV_NONE, u.priv_key or None,
                    securityEngineId=engine_id)
        eng.observer.register_observer(lambda *args: None, RECEIVE)  # keeps the sender's address
        ntfrcv.NotificationReceiver(eng, self._on_notification)
        self.engine = eng
        log.info("listening for SNMP traps and informs on udp %s:%d", *address)

    def close(self) -> None:
        if self.engine is not None:
            try:
                self.engine.close_dispatcher()
            except Exception:
                pass
            self.engine = None

    def _on_notification(self, eng: Any, state_reference: Any, context_engine_id: Any, context_name: Any,
                         var_binds: Any, cb_ctx: Any) -> None:
        try:
            context = eng.observer.get_execution_context(RECEIVE)
            host = str(context["transportAddress"][0])
            security = str(context.get("securityName", ""))
            version = {0: "1", 1: "2c", 3: "3"}.get(int(context.get("messageProcessingModel", 1)), "?")
        except Exception:
            host, security, version = "unknown", "", "?"
        self.received += 1
        self.emit([self.event(host, version, security, [(str(oid), val) for oid, val in var_binds])])

    def event(self, host: str, version: str, security: str, binds: list[tuple[str, Any]]) -> wire.Event:
        """The event a notification becomes (public for tests)."""
        values: dict[str, str] = {}
        trap_oid = ""
        if_index = if_descr = None
        for oid, raw in binds:
            converted = _convert(raw) if not isinstance(raw, (str, int, float)) else None
            text = str(converted.value) if converted is not None else str(raw)
            if oid == SNMP_TRAP_OID:
                trap_oid = text
                continue
            if oid.startswith(IF_INDEX):
                if_index = text
            elif oid.startswith(IF_DESCR):
                if_descr = text
            if len(values) < 50:
                values[oid] = text[:500]
        device = self.device_for(host) or sender_device(host)
        detail: dict[str, Any] = {"trap_oid": trap_oid, "from": host, "snmp_version": version,
                                  "varbinds": values}
        if security:  # the v3 user, or for v1/v2c the community's security name
            detail["security_name"] = security
        known = self._known.get(trap_oid)
        if known is not None:
            profile, trap = known
            detail["trap"] = trap.name
            detail["profile"] = profile.name
            where = f" on {if_descr or 'interface ' + if_index}" if if_index or if_descr else ""
            text = f"{trap.text}{where}"
            severity = trap.severity
        else:
            text = f"Notification {trap_oid or '(no snmpTrapOID)'} from {host}"
            severity = "warning"
        if if_index is not None:
            detail["if_index"] = if_index
        if if_descr is not None:
            detail["if_descr"] = if_descr
        log.info("snmp trap from %s (%s): %s", host, device, text)
        return wire.Event(device, self.clock(), "trap", severity, text, detail)
