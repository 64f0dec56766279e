"""Test clients of the API that are logged in: every /api/v1 route needs a token (api/access.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from agent import wire
from api import auth
from collector.store import Batch


def layout_batch(layout: list[tuple[str, str, str, list[tuple[str, str]]]], now: float, interval_s: float = 10.0,
                 cpu: float = 5.0) -> Batch:
    """Births of (customer, site, agent, [(device, kind)]) with one cpu_percent reading per device at `now`."""
    batch = Batch()
    for customer, site, agent, devs in layout:
        origin = wire.Origin(customer, site, agent)
        batch.births.append(wire.Birth(origin, 1, "0.1", interval_s, {}, [wire.DeviceInfo(k, kind, k.upper(), {})
                                                                            for k, kind in devs],
                                       [wire.MetricInfo("cpu_percent", "%", "gauge", "CPU")]))
        batch.telemetry.append(wire.Telemetry(origin, 1, 1, [wire.Point(k, now, {"cpu_percent": cpu})
                                                             for k, _ in devs]))
    return batch


def make_user(db_url: str, role: str = "admin", *, customer: str | None = None,
              customers: list[str] | None = None, username: str | None = None) -> tuple[str, str, str]:
    """A new user and a session token of theirs: (username, password, token)."""
    username = username or f"{role}-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with psycopg.connect(db_url, autocommit=True) as conn:
        uid = auth.add_user(conn, username, password, role, customer=customer, customers=customers, by="test")
        _, token = auth.issue_token(conn, uid, hours=12)
    return username, password, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def api_client(db_url: str, *, role: str = "admin", customer: str | None = None, **app_kw: Any) -> Iterator[TestClient]:
    """`TestClient(create_app(db_url, **app_kw))` logged in as a new user of `role` (an admin by default)."""
    from api.app import create_app
    username, _, token = make_user(db_url, role, customer=customer)
    with TestClient(create_app(db_url, **app_kw)) as client:
        client.headers.update(bearer(token))
        client.username = username  # type: ignore[attr-defined]  (what actions are recorded under)
        yield client


def read_events(client: TestClient, url: str, headers: dict[str, str]) -> list[tuple[str, Any]]:
    """Every event (name, data) of a server-sent event stream that ends by itself (max_seconds)."""
    events: list[tuple[str, Any]] = []
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        name, data = None, []
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and name:
                events.append((name, json.loads("\n".join(data))))
                name, data = None, []
    return events
