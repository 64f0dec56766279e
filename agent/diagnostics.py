"""Remote diagnostics on the site agent: a fixed whitelist of actions, never a shell.

A command arrives on the agent's own command topic, signed by the server (HMAC-SHA256 with the
per-agent secret from enrolment), with an expiry and a nonce. It is refused — and the result says
why — when diagnostics are not enabled, the signature is wrong, it has expired, its nonce was seen
before, or the action or its arguments are not on the list. Accepted commands run one at a time
on a worker thread, each with a deadline; the result goes back through the spool like telemetry.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import wire
from agent.config import AgentConfig

log = logging.getLogger(__name__)

SECRET_FIELDS = re.compile(r"(password|secret|key|communit)", re.I)  # communit: community, trap_communities
ACTION_DEADLINE = 30.0


class LogRing(logging.Handler):
    """The last lines the agent logged, for the log_tail action (no log file needed)."""

    def __init__(self, size: int = 2000) -> None:
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a log line must never break the agent
            pass


LOG_RING = LogRing()


class NonceStore:
    """Nonces seen, kept until their command expires (on disk: a restart does not reopen replay)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL)")
        self._lock = threading.Lock()

    def first_use(self, nonce: str, expires: float, now: float) -> bool:
        with self._lock:
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (now - 60,))
            try:
                self._db.execute("INSERT INTO nonces (nonce, expires) VALUES (?, ?)", (nonce, expires))
            except sqlite3.IntegrityError:
                return False
            return True


def masked(value: Any, key: str = "") -> Any:
    """A config value with its secrets replaced by '***'."""
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if SECRET_FIELDS.search(key) and value not in ("", None):
        return "***"
    return value


class Diagnostics:
    """Checks and runs commands for one agent; ``respond`` sends a result back."""

    def __init__(self, config: AgentConfig, respond: Callable[[str, bool, str | None, Any], None],
                 status: Callable[[], dict[str, Any]], snmp: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.secret = config.agent.diagnostics_secret
        self.respond = respond
        self.status = status
        self.snmp = snmp  # the SnmpPoller, when the agent polls SNMP
        self.clock = clock
        self.nonces = NonceStore(config.data_path / "nonces.sqlite") if self.secret else None
        self._queue: queue.Queue[wire.Command | None] = queue.Queue(maxsize=100)
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------ accepting

    def receive(self, payload: bytes) -> None:
        """A message on the command topic (paho's thread): check it, then queue or refuse it."""
        try:
            command = wire.parse_command(self.config.origin, payload)
        except wire.WireError as exc:
            log.warning("diagnostics: unreadable command refused: %s", exc)
            return  # no request id to answer to
        refusal = self.check(command, payload)
        if refusal:
            log.warning("diagnostics: refused %s %s: %s", command.action, command.request_id, refusal)
            self.respond(command.request_id, False, f"refused: {refusal}", None)
            return
        try:
            self._queue.put_nowait(command)
        except queue.Full:
            self.respond(command.request_id, False, "refused: too many diagnostics waiting", None)

    def check(self, command: wire.Command, payload: bytes) -> str | None:
        """Why a command must not run, or None."""
        if not self.secret or self.nonces is None:
            return "diagnostics are not enabled on this agent (no agent.diagnostics_secret)"
        if not wire.verify_command(command, payload, self.secret):
            return "bad signature (is the agent's diagnostics_secret the one the server enrolled?)"
        now = self.clock()
        if command.expires < now:
            return f"expired {now - command.expires:.0f} s ago"
        if command.expires > now + wire.MAX_COMMAND_TTL + 60:
            return "expiry too far in the future"
        try:
            wire.check_diagnostic(command.action, command.args)
        except ValueError as exc:
            return str(exc)
        if not self.nonces.first_use(command.nonce, command.expires, now):
            return "replayed (this nonce was used before)"
        return None

    # ------------------------------------------------------------ running

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="diagnostics", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(5)

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            if command is None:
                return
            started = self.clock()
            try:
                output = getattr(self, f"do_{command.action}")(**command.args)
                self.respond(command.request_id, True, None, output)
                log.info("diagnostics: %s %s done in %.1f s", command.action, command.request_id,
                         self.clock() - started)
            except Exception as exc:
                self.respond(command.request_id, False, f"{type(exc).__name__}: {exc}", None)

    def do_status(self) -> dict[str, Any]:
        from dataclasses import asdict
        return {**self.status(), "config": masked(asdict(self.config))}

    def do_ping(self, host: str, port: int | None = None, count: int = 3) -> dict[str, Any]:
        """TCP connect times to host:port, or ICMP echo through the system's ping."""
        if port is not None:
            times: list[float | None] = []
            errors: list[str] = []
            for _ in range(count):
                started = time.perf_counter()
                try:
                    with socket.create_connection((host, port), timeout=3):
                        times.append(round((time.perf_counter() - started) * 1000, 2))
                except OSError as exc:
                    times.append(None)
                    errors.append(str(exc))
            return {"method": "tcp", "host": host, "port": port, "rtt_ms": times, "errors": errors,
                    "reachable": any(t is not None for t in times)}
        ping = shutil.which("ping")
        if ping is None:
            raise RuntimeError("no ping program on this host; give a port for a TCP check")
        done = subprocess.run([ping, "-c", str(count), "-W", "2", "--", host], capture_output=True,
                              text=True, timeout=ACTION_DEADLINE)
        return {"method": "icmp", "host": host, "exit_code": done.returncode,
                "output": (done.stdout + done.stderr)[-4000:], "reachable": done.returncode == 0}

    def _target(self, name: str) -> Any:
        for t in self.config.snmp.targets:
            if t.name == name:
                return t
        raise ValueError(f"no SNMP target named {name!r} in this agent's configuration")

    def _snmp(self, coro_factory: Callable[[Any], Any]) -> Any:
        import asyncio  # only SNMP diagnostics need it; a host-only agent stays lighter

        from agent.snmp.session import new_engine
        from agent.snmp.poller import _session

        async def run() -> Any:
            engine = new_engine()
            try:
                return await coro_factory(lambda t: _session(engine, t))
            finally:
                try:
                    engine.close_dispatcher()
                except Exception:
                    pass
        return asyncio.run(asyncio.wait_for(run(), ACTION_DEADLINE))

    def do_snmp_get(self, target: str, oids: list[str]) -> dict[str, Any]:
        t = self._target(target)

        async def get(make: Callable[[Any], Any]) -> dict[str, Any]:
            got = await make(t).get(oids)
            return {oid: None if v is None else {"type": v.type, "value": v.value} for oid, v in got.items()}
        return {"target": target, "values": self._snmp(get)}

    def do_snmp_walk(self, target: str, oid: str, max_rows: int = 200) -> dict[str, Any]:
        t = self._target(target)

        async def walk(make: Callable[[Any], Any]) -> dict[str, Any]:
            got = await make(t).walk([oid])
            rows = list(got.get(oid, {}).items())
            return {"rows": {f"{oid}.{i}": {"type": v.type, "value": v.value} for i, v in rows[:max_rows]},
                    "truncated": len(rows) > max_rows}
        return {"target": target, "oid": oid, **self._snmp(walk)}

    def do_poll_now(self, target: str) -> dict[str, Any]:
        self._target(target)
        if self.snmp is None:
            raise RuntimeError("this agent runs no SNMP poller")
        return self.snmp.poll_now(target, timeout=ACTION_DEADLINE)

    def do_log_tail(self, lines: int = 100) -> dict[str, Any]:
        return {"lines": list(LOG_RING.lines)[-lines:], "pid": os.getpid()}
