"""Docs that cannot rot: every setting, reason code, API route and wire example is checked here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from agent import wire
from agent.config import AgentConfig
from agent.settings import describe
from collector.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def read(name: str) -> str:
    return (DOCS / name).read_text("utf-8")


def section(text: str, heading: str) -> str:
    """The body of a ``## heading`` section, up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("cls", [AgentConfig, ServerConfig], ids=["agent", "server"])
def test_every_setting_is_in_configuration_md(cls: type) -> None:
    text = read("configuration.md")
    heading = "Agent" if cls is AgentConfig else "Server"
    body = next(s for s in re.split(r"^## ", text, flags=re.M) if s.startswith(heading))
    for name, typ, default in describe(cls):
        assert f"| `{name}` |" in body, f"{name} is not documented in the {heading} table of configuration.md"
        if typ != "list":
            env = f"FLEETCARE_{name.replace('.', '_')}".upper()
            assert f"`{env}`" in body, f"{env} is not documented in configuration.md"


@pytest.mark.parametrize("cls", [AgentConfig, ServerConfig], ids=["agent", "server"])
def test_configuration_md_lists_no_setting_that_does_not_exist(cls: type) -> None:
    heading = "Agent" if cls is AgentConfig else "Server"
    body = next(s for s in re.split(r"^## ", read("configuration.md"), flags=re.M) if s.startswith(heading))
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", body, re.M))
    assert documented == {name for name, _, _ in describe(cls)}


# ---------------------------------------------------------------- reason codes

def reason_codes() -> set[str]:
    source = (ROOT / "agent" / "wire.py").read_text("utf-8")
    codes = set(re.findall(r'WireError\(\s*"([a-z_]+)"', source))
    assert len(codes) >= 10, codes
    ingest = (ROOT / "collector" / "ingest.py").read_text("utf-8")
    assert '"store_error"' in ingest, "collector/ingest.py no longer records store_error"
    return codes | {"store_error"}


def test_every_reason_code_is_in_wire_format_md() -> None:
    table = section(read("wire-format.md"), "Validation and rejection")
    for code in sorted(reason_codes()):
        assert f"| `{code}` |" in table, f"reason {code} is missing from the table in wire-format.md"


def test_wire_format_md_lists_no_reason_the_code_does_not_use() -> None:
    table = section(read("wire-format.md"), "Validation and rejection")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == reason_codes()


# ---------------------------------------------------------------- API routes

def _route_paths(routes: list, prefix: str = "") -> set[str]:
    """"METHOD path" of an app's routes, looking inside included routers (FastAPI may wrap them)."""
    paths: set[str] = set()
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            paths |= {f"{m} {prefix + path}" for m in (getattr(route, "methods", None) or {"GET"})
                      if m not in ("HEAD", "OPTIONS")}
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            paths |= _route_paths(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif getattr(route, "routes", None) and not isinstance(path, str):
            paths |= _route_paths(route.routes, prefix)
    return paths


def api_routes() -> set[str]:
    """Every "METHOD /api/v1/…" the app serves."""
    from api.app import create_app  # the server extra; no database needed until startup
    app = create_app("postgresql://x@127.0.0.1:1/x")
    routes = {r for r in _route_paths(app.routes) if r.split(" ", 1)[1].startswith("/api/v1")}
    routes |= {f"{m.upper()} {p}" for p, ops in app.openapi()["paths"].items() if p.startswith("/api/v1")
               for m in ops if m in ("get", "post", "put", "delete", "patch")}
    assert len(routes) >= 9, routes
    return routes


def test_every_api_route_is_in_architecture_md() -> None:
    api = section(read("architecture.md"), "API")
    for route in sorted(api_routes()):
        assert f"`{route}`" in api, f"route {route} is missing from the API section of architecture.md"


def test_architecture_md_lists_no_route_that_does_not_exist() -> None:
    api = section(read("architecture.md"), "API")
    documented = {f"{m} {p}" for m, p in re.findall(r"`(GET|POST|PUT|DELETE|PATCH) (/api/v1[^`]*)`", api)}
    assert documented == api_routes()


# ---------------------------------------------------------------- wire examples

def json_examples() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", read("wire-format.md"), re.S)
    assert len(blocks) >= 4
    return [json.loads(block) for block in blocks]


def parse_example(body: dict) -> object:
    origin = wire.Origin(body["customer"], body["site"], body["agent"])
    payload = json.dumps(body).encode()
    if "points" in body:  # judged at the examples' own time, so the clock of this machine does not matter
        now = max([p["ts"] for p in body["points"]], default=time.time())
        return wire.parse_telemetry(origin, payload, now=now)
    if "devices" in body:
        return wire.parse_birth(origin, payload)
    return wire.parse_status(origin, payload)


def test_every_json_example_in_wire_format_md_parses() -> None:
    kinds = set()
    for body in json_examples():
        parsed = parse_example(body)
        kinds.add(type(parsed).__name__)
    assert kinds == {"Telemetry", "Birth", "Status"}


def test_json_examples_are_what_the_agent_encodes() -> None:
    """Re-encoding a parsed example with the agent's encoder gives the example back."""
    for body in json_examples():
        parsed = parse_example(body)
        if isinstance(parsed, wire.Telemetry):
            encoded = wire.encode_telemetry(parsed.origin, parsed.boot, parsed.seq, parsed.points)
        elif isinstance(parsed, wire.Birth):
            encoded = wire.encode_birth(parsed)
        else:
            encoded = wire.encode_status(parsed.origin, parsed.state, parsed.boot, ts=parsed.ts)
        assert json.loads(encoded) == body


# ---------------------------------------------------------------- mosquitto_pub commands

# A stand-in for mosquitto_pub that records the topic and the exact payload bytes it was given.
SHIM = r"""
mosquitto_pub() {
  local topic="" payload="" stdin=0 null=0
  while [ $# -gt 0 ]; do
    case "$1" in
      -t) topic="$2"; shift 2 ;;
      -m) payload="$2"; shift 2 ;;
      -s) stdin=1; shift ;;
      -n) null=1; shift ;;
      -h|-p|-q|-u|-P|-i|-k|-V) shift 2 ;;
      *) shift ;;
    esac
  done
  printf '%s' "$topic" > "$OUT/topic"
  if [ $stdin = 1 ]; then cat > "$OUT/payload"; elif [ $null = 1 ]; then : > "$OUT/payload";
  else printf '%s' "$payload" > "$OUT/payload"; fi
}
"""


def pub_examples() -> list[tuple[str, str]]:
    text = read("wire-format.md")
    examples = re.findall(r"^# expect: (\S+)\n(.+)$", text, re.M)
    assert len(examples) >= 12
    return examples


def classify(topic: str, payload: bytes) -> str:
    """What the collector's checks say about a message: "ok" or the reason code."""
    cfg = ServerConfig()
    now = time.time()
    try:
        origin, kind = wire.parse_topic(cfg.mqtt.topic_prefix, topic)
        if kind == wire.TELEMETRY:
            wire.parse_telemetry(origin, payload, max_bytes=cfg.collector.max_payload_bytes,
                                 oldest=now - cfg.database.retention_days * 86_400, now=now)
        elif kind == wire.BIRTH:
            wire.parse_birth(origin, payload, max_bytes=cfg.collector.max_payload_bytes)
        else:
            wire.parse_status(origin, payload)
    except wire.WireError as exc:
        return exc.reason
    return "ok"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to expand the documented commands")
def test_mosquitto_pub_examples_do_what_the_docs_say(tmp_path: Path) -> None:
    seen = set()
    for expect, command in pub_examples():
        assert command.lstrip().startswith("mosquitto_pub") or "| mosquitto_pub" in command, command
        for name in ("topic", "payload"):
            (tmp_path / name).unlink(missing_ok=True)
        subprocess.run(["bash", "-c", SHIM + command], check=True, env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin"},
                       timeout=30)
        topic = (tmp_path / "topic").read_text()
        payload = (tmp_path / "payload").read_bytes()
        got = classify(topic, payload)
        # store_error: valid on the wire, refused by PostgreSQL (the collector isolates it)
        assert got == ("ok" if expect == "store_error" else expect), f"{command[:120]}… gave {got}, docs say {expect}"
        seen.add(expect)
    missing = reason_codes() - seen
    assert not missing, f"no mosquitto_pub example for {sorted(missing)} in wire-format.md"
    assert "ok" in seen
