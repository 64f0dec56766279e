"""Sending diagnostics commands to agents: one MQTT publisher per API process, connected lazily."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from agent import mqtt

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    pass


class Commander:
    """Publishes QoS 1 and waits for the broker's acknowledgement, so 'sent' means the broker has it."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None) -> None:
        self.url = url
        self._address = mqtt.BrokerAddress.parse(url)
        self._creds = (username, password, ca_file)
        self._client = None
        self._lock = threading.Lock()
        self._connected = threading.Event()

    def _ensure(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            username, password, ca_file = self._creds
            client = mqtt.new_client(f"fleetcare-api-{uuid.uuid4().hex[:8]}", mqtt.MQTTv311, username=username,
                                     password=password, tls=self._address.tls, ca_file=ca_file)
            client.on_connect = lambda c, u, f, rc, p: self._connected.set() if not rc.is_failure else None
            client.on_disconnect = lambda c, u, f, rc, p: self._connected.clear()
            client.connect_async(self._address.host, self._address.port, keepalive=30)
            client.loop_start()
            self._client = client

    def _publish(self, topic: str, payload: bytes) -> None:
        self._ensure()
        if not self._connected.wait(5):
            raise BrokerUnavailable(f"broker {self._address} unreachable")
        info = self._client.publish(topic, payload, qos=1)
        try:
            if info.rc != 0:
                raise RuntimeError(f"publish failed with code {info.rc}")
            info.wait_for_publish(timeout=5)
        except (RuntimeError, ValueError) as exc:  # the connection dropped in between
            raise BrokerUnavailable(f"broker {self._address}: {exc}") from None
        if not info.is_published():
            raise BrokerUnavailable(f"broker {self._address} did not acknowledge the command")

    async def publish(self, topic: str, payload: bytes) -> None:
        await asyncio.to_thread(self._publish, topic, payload)

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
