"""paho-mqtt behind one small seam: URL parsing, TLS, MQTT 5 with a 3.1.1 fallback, waiting at start.

Both the agent and the collector build their clients here, so connection behaviour (and its log
lines) is the same on both ends of the wire.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)

MQTTv5 = paho.MQTTv5
MQTTv311 = paho.MQTTv311


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"MQTT URL {url!r}: expected mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class BrokerUnavailable(ConnectionError):
    """The broker did not answer (or refused us) within the start-up deadline."""


def new_client(client_id: str, protocol: int, *, username: str | None = None,
               password: str | None = None, tls: bool = False, ca_file: str | None = None,
               manual_ack: bool = False) -> paho.Client:
    """A paho client with fleetcare's defaults (callback API v2, reconnect back-off 1–30 s)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                         manual_ack=manual_ack,
                         clean_session=None if protocol == MQTTv5 else False)
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def negotiate_protocol(url: str, *, username: str | None = None, password: str | None = None,
                       ca_file: str | None = None, timeout: float = 60.0,
                       stop: threading.Event | None = None) -> int:
    """Find the protocol to speak: MQTT 5, or 3.1.1 (with a warning) from a broker that refuses 5.

    Waits for the broker with back-off up to ``timeout`` seconds: a broker that is still starting is
    normal at boot; one that refuses our credentials is not, and fails at once.
    """
    address = BrokerAddress.parse(url)
    deadline = time.monotonic() + timeout
    delay = 0.25
    while True:
        outcome = _probe(address, MQTTv5, username, password, ca_file)
        if outcome == "unsupported":
            if _probe(address, MQTTv311, username, password, ca_file) == "ok":
                log.warning("broker %s refuses MQTT 5; using MQTT 3.1.1 (no shared subscriptions, "
                            "no session expiry)", address)
                return MQTTv311
            outcome = "unreachable"
        if outcome == "ok":
            return MQTTv5
        if outcome.startswith("refused"):
            raise BrokerUnavailable(f"broker {address} {outcome}")
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            raise BrokerUnavailable(f"broker {address} did not answer within {timeout:.0f} s")
        if delay >= 2.0:
            log.warning("broker %s does not answer yet; retrying in %.0f s", address, delay)
        (stop.wait if stop is not None else time.sleep)(delay)
        delay = min(delay * 2, 5.0)


def _probe(address: BrokerAddress, protocol: int, username: str | None, password: str | None,
           ca_file: str | None) -> str:
    done = threading.Event()
    result = {"outcome": "unreachable"}

    def on_connect(client, userdata, flags, reason_code, properties):  # noqa: ANN001
        if not reason_code.is_failure:
            result["outcome"] = "ok"
        elif reason_code.value in (1, 132):  # 3.1.1 "unacceptable protocol", 5 "unsupported protocol"
            result["outcome"] = "unsupported"
        else:
            result["outcome"] = f"refused the connection: {reason_code}"
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):  # noqa: ANN001
        if result["outcome"] == "unreachable" and protocol == MQTTv5:
            result["outcome"] = "unsupported"  # some 3.1.1 brokers just hang up on a v5 CONNECT
        done.set()

    client = new_client(f"fleetcare-probe-{time.monotonic_ns()}", protocol, username=username,
                        password=password, tls=address.tls, ca_file=ca_file)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError:
        return "unreachable"
    client.loop_start()
    done.wait(5.0)
    client.disconnect()
    client.loop_stop()
    return result["outcome"]
