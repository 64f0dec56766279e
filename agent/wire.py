"""The MQTT wire format, defined once: topics, payloads and their validation.

The agent builds messages with the ``encode_*`` functions; the collector checks every message it
receives with the ``parse_*`` functions and rejects, with a reason, anything that does not match.
docs/wire-format.md describes the same contract for people; tests/test_docs.py keeps them in step.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

WIRE_VERSION = 1
TOPIC_VERSION = f"v{WIRE_VERSION}"
DEFAULT_PREFIX = "fleetcare"
QOS = 1

#: Message kinds and their topic suffix. birth and status are retained.
TELEMETRY, BIRTH, STATUS, EVENTS = "telemetry", "birth", "status", "events"
#: Remote diagnostics: the server sends a signed command; the agent answers with a result.
CMD, RESULT = "cmd", "result"
KINDS = (TELEMETRY, BIRTH, STATUS, EVENTS, CMD, RESULT)
RETAINED = frozenset({BIRTH, STATUS})

#: A collector refuses larger payloads before parsing them (bytes); configurable on both sides.
MAX_PAYLOAD_BYTES = 1_000_000
#: Samples whose time is further ahead than this are refused (clock skew allowance, seconds).
MAX_FUTURE_SECONDS = 86_400.0

# an escaped NUL: \u0000 after an even number of backslashes (\\u0000 is the text "\u0000")
_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# name, then optional labels: cpu_percent, disk_used_percent{mount=/var}, if_in_bps{if=ge-0/0/1}
METRIC_RE = re.compile(r"^[a-z_][a-z0-9_]{0,79}(\{[^{}=,]{1,64}=[^{},]{0,128}(,[^{}=,]{1,64}=[^{},]{0,128})*\})?$")
METRIC_TYPES = ("gauge", "counter")
#: A series key (name plus labels) longer than this is refused: it must fit a database index.
MAX_METRIC_KEY = 512
#: What an event says happened to a device.
EVENT_KINDS = ("state", "reboot", "trap")
SEVERITIES = ("info", "warning", "critical")
#: Device states an agent reports with a "state" event (SNMP reachability).
DEVICE_STATES = ("reachable", "partial", "no_response", "auth_failure", "error")
AGENT_STATES = ("online", "offline")


class WireError(ValueError):
    """A message does not follow the wire format; ``reason`` is a short stable code for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Origin:
    """Who sent a message: the three ids carried by both the topic and the payload."""

    customer: str
    site: str
    agent: str


@dataclass(frozen=True)
class Point:
    """All metrics of one device read at one moment."""

    device: str
    ts: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class Telemetry:
    origin: Origin
    boot: int
    seq: int
    points: list[Point]

    @property
    def sample_count(self) -> int:
        return sum(len(p.metrics) for p in self.points)


@dataclass(frozen=True)
class MetricInfo:
    """A metric declares itself: name, unit, gauge or counter, and what it means."""

    name: str
    unit: str
    type: str
    description: str


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    kind: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Birth:
    origin: Origin
    boot: int
    version: str
    interval: float
    host: dict[str, Any]
    devices: list[DeviceInfo]
    metrics: list[MetricInfo]


@dataclass(frozen=True)
class Event:
    """Something that happened to a device: its state changed, it rebooted, it sent a trap."""

    device: str
    ts: float
    kind: str
    severity: str
    text: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Events:
    origin: Origin
    boot: int
    seq: int
    events: list[Event]


#: What an online agent says about its own delivery, in its status message (all since install).
COUNTER_KEYS = ("spooled", "delivered_messages", "dropped_messages", "dropped_samples", "seq")


@dataclass(frozen=True)
class Status:
    origin: Origin
    state: str
    ts: float
    boot: int | None
    counters: dict[str, int] | None = None


# ---------------------------------------------------------------- topics

def topic(prefix: str, origin: Origin, kind: str) -> str:
    """``<prefix>/v1/<customer>/<site>/<agent>/<kind>``."""
    return f"{prefix}/{TOPIC_VERSION}/{origin.customer}/{origin.site}/{origin.agent}/{kind}"


def subscription(prefix: str, kind: str = "+") -> str:
    """The filter a collector subscribes to for one kind (or all with ``+``)."""
    return f"{prefix}/{TOPIC_VERSION}/+/+/+/{kind}"


def parse_topic(prefix: str, name: str) -> tuple[Origin, str]:
    """Split a topic into its origin and kind, or raise WireError('bad_topic')."""
    parts = name.split("/")
    head = prefix.split("/")
    if len(parts) != len(head) + 5 or parts[: len(head)] != head:
        raise WireError("bad_topic", f"topic {name!r} is not {prefix}/{TOPIC_VERSION}/<customer>/<site>/<agent>/<kind>")
    version, customer, site, agent, kind = parts[len(head):]
    if version != TOPIC_VERSION:
        raise WireError("bad_version", f"topic version {version!r}, this collector speaks {TOPIC_VERSION}")
    if kind not in KINDS:
        raise WireError("bad_topic", f"unknown message kind {kind!r} in topic {name!r}")
    for label, value in (("customer", customer), ("site", site), ("agent", agent)):
        if not ID_RE.match(value):
            raise WireError("bad_topic", f"{label} id {value!r} in topic is not a valid id")
    return Origin(customer, site, agent), kind


# ---------------------------------------------------------------- encoding (agent side)

def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _head(origin: Origin) -> dict[str, Any]:
    return {"v": WIRE_VERSION, "customer": origin.customer, "site": origin.site, "agent": origin.agent}


def encode_telemetry(origin: Origin, boot: int, seq: int, points: list[Point]) -> bytes:
    body = _head(origin)
    body.update(boot=boot, seq=seq,
                points=[{"device": p.device, "ts": round(p.ts, 3), "metrics": p.metrics} for p in points])
    return _dump(body)


def encode_birth(birth: Birth) -> bytes:
    body = _head(birth.origin)
    body.update(boot=birth.boot, version=birth.version, interval=birth.interval, host=birth.host,
                devices=[{"device": d.device, "kind": d.kind, "name": d.name, "attrs": d.attrs}
                         for d in birth.devices],
                metrics=[{"name": m.name, "unit": m.unit, "type": m.type, "description": m.description}
                         for m in birth.metrics])
    return _dump(body)


def encode_events(origin: Origin, boot: int, seq: int, events: list[Event]) -> bytes:
    body = _head(origin)
    body.update(boot=boot, seq=seq, events=[
        {"device": e.device, "ts": round(e.ts, 3), "kind": e.kind, "severity": e.severity, "text": e.text,
         "detail": e.detail} for e in events])
    return _dump(body)


def encode_status(origin: Origin, state: str, boot: int | None, ts: float | None = None,
                  counters: dict[str, int] | None = None) -> bytes:
    body = _head(origin)
    body.update(state=state, ts=round(time.time() if ts is None else ts, 3), boot=boot)
    if counters is not None:
        body["counters"] = counters
    return _dump(body)


# ---------------------------------------------------------------- parsing (collector side)

def _load(payload: bytes, max_bytes: int) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise WireError("too_large", f"payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError("bad_json", f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WireError("bad_schema", "payload must be a JSON object")
    if b"\\u0000" in payload and _NUL.search(payload):  # valid JSON; PostgreSQL text and jsonb refuse NUL
        raise WireError("bad_value", "payload contains a NUL character (\\u0000)")
    if body.get("v") != WIRE_VERSION:
        raise WireError("bad_version", f"schema version {body.get('v')!r}, this collector speaks {WIRE_VERSION}")
    return body


def _check_keys(body: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    missing = sorted(k for k in allowed if k not in body)
    if missing:
        raise WireError("bad_schema", f"{where}: missing field {missing[0]!r}")
    extra = sorted(k for k in body if k not in allowed)
    if extra:
        raise WireError("unknown_field", f"{where}: unknown field {extra[0]!r}")


def _check_origin(body: dict[str, Any], origin: Origin) -> None:
    for label in ("customer", "site", "agent"):
        if body[label] != getattr(origin, label):
            raise WireError("origin_mismatch", f"payload {label} {body[label]!r} does not match topic "
                                               f"{label} {getattr(origin, label)!r}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError("bad_value", f"{where}: expected a number, got {value!r}"[:200])
    try:
        value = float(value)
    except OverflowError:  # a JSON integer too large for a float
        raise WireError("bad_value", f"{where}: value is out of range") from None
    if not math.isfinite(value):
        raise WireError("bad_value", f"{where}: value is not finite")
    return value


def _time(value: Any, where: str, now: float | None = None) -> float:
    """An epoch time a database can hold: not before 1970, not more than a day ahead."""
    ts = _number(value, where)
    newest = (time.time() if now is None else now) + MAX_FUTURE_SECONDS
    if ts < 0 or ts > newest:
        raise WireError("bad_time", f"{where} {ts} is before 1970 or more than {MAX_FUTURE_SECONDS:.0f} s ahead")
    return ts


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError("bad_schema", f"{where}: expected a non-negative integer, got {value!r}"[:200])
    return value


_TELEMETRY_KEYS = frozenset({"v", "customer", "site", "agent", "boot", "seq", "points"})
_POINT_KEYS = frozenset({"device", "ts", "metrics"})


def parse_telemetry(origin: Origin, payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES,
                    oldest: float | None = None, now: float | None = None) -> Telemetry:
    """Validate a telemetry message whole: one bad point rejects the message (it is kept for review)."""
    body = _load(payload, max_bytes)
    _check_keys(body, _TELEMETRY_KEYS, "telemetry")
    _check_origin(body, origin)
    boot = _int(body["boot"], "boot")
    seq = _int(body["seq"], "seq")
    raw_points = body["points"]
    if not isinstance(raw_points, list):
        raise WireError("bad_schema", "points must be a list")
    now = time.time() if now is None else now
    newest = now + MAX_FUTURE_SECONDS
    points: list[Point] = []
    for i, raw in enumerate(raw_points):
        where = f"points[{i}]"
        if not isinstance(raw, dict):
            raise WireError("bad_schema", f"{where} must be an object")
        if raw.keys() != _POINT_KEYS:
            _check_keys(raw, _POINT_KEYS, where)
        device = raw["device"]
        if not isinstance(device, str) or not ID_RE.match(device):
            raise WireError("bad_schema", f"{where}.device {device!r} is not a valid id"[:200])
        ts = _number(raw["ts"], f"{where}.ts")
        if ts > newest:
            raise WireError("bad_time", f"{where}.ts {ts} is more than {MAX_FUTURE_SECONDS:.0f} s in the future")
        if oldest is not None and ts < oldest:
            raise WireError("bad_time", f"{where}.ts {ts} is older than the retention period")
        metrics = raw["metrics"]
        if not isinstance(metrics, dict):
            raise WireError("bad_schema", f"{where}.metrics must be an object")
        for key, value in metrics.items():
            if isinstance(value, float) and math.isfinite(value):
                pass
            else:
                metrics[key] = _number(value, f"{where}.metrics[{key!r}]")
            if len(key) > MAX_METRIC_KEY or not METRIC_RE.match(key):
                raise WireError("bad_metric", f"{where}: metric name {key!r} is not valid"[:200])
        points.append(Point(device, ts, metrics))
    return Telemetry(origin, boot, seq, points)


_BIRTH_KEYS = frozenset({"v", "customer", "site", "agent", "boot", "version", "interval", "host",
                         "devices", "metrics"})


def parse_birth(origin: Origin, payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Birth:
    body = _load(payload, max_bytes)
    _check_keys(body, _BIRTH_KEYS, "birth")
    _check_origin(body, origin)
    if not isinstance(body["host"], dict):
        raise WireError("bad_schema", "birth.host must be an object")
    if not isinstance(body["version"], str):
        raise WireError("bad_schema", "birth.version must be a string")
    devices: list[DeviceInfo] = []
    for i, raw in enumerate(_list(body["devices"], "birth.devices")):
        _check_keys(raw, frozenset({"device", "kind", "name", "attrs"}), f"devices[{i}]")
        if not isinstance(raw["device"], str) or not ID_RE.match(raw["device"]):
            raise WireError("bad_schema", f"devices[{i}].device {raw['device']!r} is not a valid id"[:200])
        if not isinstance(raw["kind"], str) or not isinstance(raw["name"], str) or not isinstance(raw["attrs"], dict):
            raise WireError("bad_schema", f"devices[{i}]: kind and name must be strings, attrs an object")
        interval = raw["attrs"].get("interval_s")
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float))
                                     or not math.isfinite(interval) or interval <= 0):
            raise WireError("bad_schema", f"devices[{i}].attrs.interval_s must be a positive number of seconds")
        devices.append(DeviceInfo(raw["device"], raw["kind"], raw["name"], raw["attrs"]))
    metrics: list[MetricInfo] = []
    for i, raw in enumerate(_list(body["metrics"], "birth.metrics")):
        _check_keys(raw, frozenset({"name", "unit", "type", "description"}), f"metrics[{i}]")
        if not isinstance(raw["name"], str) or not METRIC_RE.match(raw["name"]) or "{" in raw["name"]:
            raise WireError("bad_metric", f"metrics[{i}].name {raw['name']!r} is not a valid metric name"[:200])
        if raw["type"] not in METRIC_TYPES:
            raise WireError("bad_schema", f"metrics[{i}].type must be one of {METRIC_TYPES}")
        metrics.append(MetricInfo(raw["name"], str(raw["unit"]), raw["type"], str(raw["description"])))
    return Birth(origin, _int(body["boot"], "boot"), body["version"],
                 _number(body["interval"], "interval"), body["host"], devices, metrics)


_EVENTS_KEYS = frozenset({"v", "customer", "site", "agent", "boot", "seq", "events"})
_EVENT_KEYS = frozenset({"device", "ts", "kind", "severity", "text", "detail"})


def parse_events(origin: Origin, payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES,
                 now: float | None = None) -> Events:
    body = _load(payload, max_bytes)
    _check_keys(body, _EVENTS_KEYS, "events")
    _check_origin(body, origin)
    events: list[Event] = []
    for i, raw in enumerate(_list(body["events"], "events")):
        where = f"events[{i}]"
        _check_keys(raw, _EVENT_KEYS, where)
        device = raw["device"]
        if not isinstance(device, str) or not ID_RE.match(device):
            raise WireError("bad_schema", f"{where}.device {device!r} is not a valid id"[:200])
        ts = _time(raw["ts"], f"{where}.ts", now)
        if raw["kind"] not in EVENT_KINDS:
            raise WireError("bad_schema", f"{where}.kind must be one of {EVENT_KINDS}")
        if raw["severity"] not in SEVERITIES:
            raise WireError("bad_schema", f"{where}.severity must be one of {SEVERITIES}")
        if not isinstance(raw["text"], str) or not isinstance(raw["detail"], dict):
            raise WireError("bad_schema", f"{where}: text must be a string and detail an object")
        if raw["kind"] == "state" and raw["detail"].get("state") not in DEVICE_STATES:
            raise WireError("bad_schema", f"{where}: a state event needs detail.state, one of {DEVICE_STATES}")
        events.append(Event(device, ts, raw["kind"], raw["severity"], raw["text"][:2000], raw["detail"]))
    return Events(origin, _int(body["boot"], "boot"), _int(body["seq"], "seq"), events)


def parse_status(origin: Origin, payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Status:
    body = _load(payload, max_bytes)
    keys = frozenset({"v", "customer", "site", "agent", "state", "ts", "boot"})
    _check_keys(body, keys | ({"counters"} if "counters" in body else set()), "status")
    _check_origin(body, origin)
    if body["state"] not in AGENT_STATES:
        raise WireError("bad_schema", f"status.state must be one of {AGENT_STATES}")
    boot = None if body["boot"] is None else _int(body["boot"], "boot")
    counters = None
    if "counters" in body:
        raw = body["counters"]
        if not isinstance(raw, dict):
            raise WireError("bad_schema", "status.counters must be an object")
        _check_keys(raw, frozenset(COUNTER_KEYS), "status.counters")
        counters = {k: _int(raw[k], f"counters.{k}") for k in COUNTER_KEYS}
    return Status(origin, body["state"], _time(body["ts"], "ts"), boot, counters)


def _list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise WireError("bad_schema", f"{where} must be a list of objects")
    return value


def metric_base(key: str) -> str:
    """``disk_used_percent{mount=/}`` → ``disk_used_percent``: the catalogue entry a sample belongs to."""
    brace = key.find("{")
    return key if brace < 0 else key[:brace]


def metric_labels(key: str) -> dict[str, str]:
    """``if_in_bps{if=eth0}`` → ``{"if": "eth0"}``."""
    brace = key.find("{")
    if brace < 0:
        return {}
    return dict(pair.split("=", 1) for pair in key[brace + 1:-1].split(","))


# ---------------------------------------------------------------- remote diagnostics

#: The only things an engineer can ask an agent to do, and the arguments each takes
#: (name → (type, required)). Never a shell; docs/diagnostics.md describes each.
DIAGNOSTIC_ACTIONS: dict[str, dict[str, tuple[type, bool]]] = {
    "status": {},
    "ping": {"host": (str, True), "port": (int, False), "count": (int, False)},
    "snmp_get": {"target": (str, True), "oids": (list, True)},
    "snmp_walk": {"target": (str, True), "oid": (str, True), "max_rows": (int, False)},
    "poll_now": {"target": (str, True)},
    "log_tail": {"lines": (int, False)},
}
MAX_COMMAND_TTL = 600.0
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$")
_OID_RE = re.compile(r"^\d+(\.\d+)+$")


def check_diagnostic(action: str, args: dict[str, Any]) -> dict[str, Any]:
    """Validate an action and its arguments (both ends call this); raises ValueError in words."""
    spec = DIAGNOSTIC_ACTIONS.get(action)
    if spec is None:
        raise ValueError(f"unknown action {action!r}; allowed: {', '.join(DIAGNOSTIC_ACTIONS)}")
    if not isinstance(args, dict):
        raise ValueError("args must be an object")
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise ValueError(f"{action}: unknown argument {unknown[0]!r} (allowed: {', '.join(spec) or 'none'})")
    for name, (kind, required) in spec.items():
        if name not in args:
            if required:
                raise ValueError(f"{action}: argument {name!r} is required")
            continue
        value = args[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{action}: argument {name!r} must be {kind.__name__}")
    if "host" in args and not _HOST_RE.match(args["host"]):
        raise ValueError(f"{action}: host {args['host']!r} is not a host name or address")
    if "port" in args and not 1 <= args["port"] <= 65535:
        raise ValueError(f"{action}: port must be 1–65535")
    if "count" in args and not 1 <= args["count"] <= 5:
        raise ValueError(f"{action}: count must be 1–5")
    if "max_rows" in args and not 1 <= args["max_rows"] <= 1000:
        raise ValueError(f"{action}: max_rows must be 1–1000")
    if "lines" in args and not 1 <= args["lines"] <= 500:
        raise ValueError(f"{action}: lines must be 1–500")
    if "oid" in args and not _OID_RE.match(args["oid"]):
        raise ValueError(f"{action}: oid {args['oid']!r} is not a numeric OID")
    if "oids" in args:
        oids = args["oids"]
        if not 1 <= len(oids) <= 20 or not all(isinstance(o, str) and _OID_RE.match(o) for o in oids):
            raise ValueError(f"{action}: oids must be 1–20 numeric OIDs")
    return args


@dataclass(frozen=True)
class Command:
    origin: Origin
    request_id: str
    action: str
    args: dict[str, Any]
    expires: float
    nonce: str
    sig: str


def _command_body(origin: Origin, request_id: str, action: str, args: dict[str, Any], expires: float,
                  nonce: str) -> dict[str, Any]:
    body = _head(origin)
    body.update(request_id=request_id, action=action, args=args, expires=round(expires, 3), nonce=nonce)
    return body


def command_signature(secret: str, body: dict[str, Any]) -> str:
    """HMAC-SHA256 over the canonical JSON of the command without its signature."""
    canonical = json.dumps({k: v for k, v in body.items() if k != "sig"}, sort_keys=True,
                           separators=(",", ":"), allow_nan=False).encode()
    return hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()


def encode_command(origin: Origin, secret: str, request_id: str, action: str, args: dict[str, Any],
                   expires: float, nonce: str) -> bytes:
    body = _command_body(origin, request_id, action, args, expires, nonce)
    body["sig"] = command_signature(secret, body)
    return _dump(body)


_COMMAND_KEYS = frozenset({"v", "customer", "site", "agent", "request_id", "action", "args", "expires",
                           "nonce", "sig"})


def parse_command(origin: Origin, payload: bytes) -> Command:
    """Shape only; the agent checks signature, expiry and nonce (agent/diagnostics.py)."""
    body = _load(payload, 64_000)
    _check_keys(body, _COMMAND_KEYS, "command")
    _check_origin(body, origin)
    for key in ("request_id", "action", "nonce", "sig"):
        if not isinstance(body[key], str) or not body[key] or len(body[key]) > 200:
            raise WireError("bad_schema", f"command.{key} must be a non-empty string")
    if not isinstance(body["args"], dict):
        raise WireError("bad_schema", "command.args must be an object")
    return Command(origin, body["request_id"], body["action"], body["args"],
                   _number(body["expires"], "expires"), body["nonce"], body["sig"])


def verify_command(command: Command, payload: bytes, secret: str) -> bool:
    body = json.loads(payload)
    return hmac.compare_digest(command_signature(secret, body), str(body.get("sig", "")))


@dataclass(frozen=True)
class Result:
    origin: Origin
    request_id: str
    ok: bool
    error: str | None
    output: Any
    ts: float


def encode_result(origin: Origin, request_id: str, ok: bool, error: str | None, output: Any,
                  ts: float | None = None) -> bytes:
    body = _head(origin)
    body.update(request_id=request_id, ok=ok, error=error, output=output,
                ts=round(time.time() if ts is None else ts, 3))
    return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()


_RESULT_KEYS = frozenset({"v", "customer", "site", "agent", "request_id", "ok", "error", "output", "ts"})


def parse_result(origin: Origin, payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Result:
    body = _load(payload, max_bytes)
    _check_keys(body, _RESULT_KEYS, "result")
    _check_origin(body, origin)
    if not isinstance(body["request_id"], str) or not isinstance(body["ok"], bool):
        raise WireError("bad_schema", "result.request_id must be a string and result.ok a boolean")
    if body["error"] is not None and not isinstance(body["error"], str):
        raise WireError("bad_schema", "result.error must be a string or null")
    return Result(origin, body["request_id"], body["ok"], body["error"], body["output"],
                  _time(body["ts"], "ts"))
