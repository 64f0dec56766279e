"""The REST API on a real database: filters and pages, series from raw samples and from the rollup,
every error with a clear status and message."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from tests.api_support import api_client, layout_batch
from fastapi.testclient import TestClient

from agent import wire
from api.app import create_app
from collector import maintenance
from collector.migrate import POSTGRES, backend_of
from collector.store import Store


@pytest.fixture
def fleet(db_url: str) -> dict[str, int]:
    """Two customers, three sites, five devices; an hour of cpu_percent for one of them."""
    conn = psycopg.connect(db_url)
    store = Store(conn, backend_of(conn))
    conn.commit()
    now = time.time()
    layout = [("acme", "hq", "gw1", [("sw1", "switch"), ("ups1", "ups")]),
              ("acme", "plant", "gw2", [("sw2", "switch")]),
              ("globex", "dc", "gw3", [("ups2", "ups"), ("sw3", "switch")])]
    batch = layout_batch(layout, now)
    hq = wire.Origin("acme", "hq", "gw1")
    start = (now // 3600) * 3600 - 3 * 86_400  # three days of history for the rollup path
    batch.telemetry.append(wire.Telemetry(hq, 1, 2, [wire.Point("sw1", start + i * 60, {"cpu_percent": float(i % 60)})
                                                     for i in range(3 * 24 * 60)]))
    store.write(batch)
    if store.backend == POSTGRES:
        while maintenance.rollup(conn):
            pass
    conn.execute("UPDATE devices SET status = 'offline' WHERE key = 'sw3'")
    conn.commit()
    ids = dict(conn.execute("SELECT key, id FROM devices").fetchall())
    conn.close()
    return {**ids, "start": int(start)}


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with api_client(db_url) as c:
        yield c


def test_device_list_filters_and_pages(client: TestClient, fleet: dict[str, int]) -> None:
    body = client.get("/api/v1/devices").json()
    assert body["total"] == 5 and len(body["items"]) == 5
    first = body["items"][0]
    assert {"customer", "site", "kind", "status", "last_seen", "metrics"} <= set(first)
    assert first["metrics"]["cpu_percent"]["unit"] == "%"
    assert {d["key"] for d in client.get("/api/v1/devices", params={"customer": "globex"}).json()["items"]} \
        == {"ups2", "sw3"}
    assert [d["key"] for d in client.get("/api/v1/devices", params={"site": "plant"}).json()["items"]] == ["sw2"]
    assert [d["key"] for d in client.get("/api/v1/devices", params={"status": "offline"}).json()["items"]] == ["sw3"]
    assert client.get("/api/v1/devices", params={"kind": "ups"}).json()["total"] == 2
    page = client.get("/api/v1/devices", params={"limit": 2, "offset": 4}).json()
    assert page["total"] == 5 and len(page["items"]) == 1
    one = client.get(f"/api/v1/devices/{fleet['sw1']}").json()
    assert one["name"] == "SW1" and one["customer"] == "acme"


def test_series_raw_and_rollup(client: TestClient, fleet: dict[str, int]) -> None:
    sw1, start = fleet["sw1"], fleet["start"]
    raw = client.get(f"/api/v1/devices/{sw1}/metrics", params={
        "metric": "cpu_percent", "start": start, "end": start + 3600, "step": "10m"}).json()
    assert raw["source"] == "raw" and raw["step"] == 600
    assert len(raw["points"]) == 6
    assert raw["points"][0] == {"time": raw["points"][0]["time"], "avg": 4.5, "min": 0.0, "max": 9.0, "count": 10}
    rolled = client.get(f"/api/v1/devices/{sw1}/metrics", params={
        "metric": "cpu_percent", "start": start, "end": start + 3 * 86_400, "step": "1h"}).json()
    assert rolled["source"] == "rollup_5m"
    assert len(rolled["points"]) == 72
    assert all(p["count"] == 60 and p["avg"] == 29.5 and p["max"] == 59.0 for p in rolled["points"])


def test_errors_are_clear(client: TestClient, fleet: dict[str, int]) -> None:
    sw1 = fleet["sw1"]
    r = client.get("/api/v1/devices/999999")
    assert r.status_code == 404 and r.json() == {"detail": "device 999999 not found"}
    r = client.get("/api/v1/devices/abc")
    assert r.status_code == 422
    r = client.get(f"/api/v1/devices/{sw1}/metrics", params={"metric": "nope"})
    assert r.status_code == 404 and "metric 'nope'" in r.json()["detail"]
    r = client.get(f"/api/v1/devices/{sw1}/metrics", params={"metric": "cpu_percent", "step": "fast"})
    assert r.status_code == 400 and "step='fast'" in r.json()["detail"]
    r = client.get(f"/api/v1/devices/{sw1}/metrics", params={"metric": "cpu_percent", "step": "1s",
                                                            "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"})
    assert r.status_code == 400 and "limit is" in r.json()["detail"]
    r = client.get(f"/api/v1/devices/{sw1}/metrics", params={"metric": "cpu_percent", "start": "yesterday"})
    assert r.status_code == 400 and "RFC 3339" in r.json()["detail"]
    r = client.get(f"/api/v1/devices/{sw1}/metrics", params={"metric": "cpu_percent", "start": 200, "end": 100})
    assert r.status_code == 400
    r = client.get("/api/v1/devices", params={"status": "sideways"})
    assert r.status_code == 422
    r = client.get("/api/v1/agents/424242")
    assert r.status_code == 404


def test_fleet_resources(client: TestClient, fleet: dict[str, int]) -> None:
    customers = {c["key"]: c for c in client.get("/api/v1/customers").json()}
    assert customers["acme"]["sites"] == 2 and customers["acme"]["devices"] == 3
    assert len(client.get("/api/v1/sites", params={"customer": "acme"}).json()) == 2
    assert len(client.get("/api/v1/agents").json()) == 3
    assert client.get("/api/v1/metrics").json() == [
        {"name": "cpu_percent", "unit": "%", "type": "gauge", "description": "CPU"}]
    assert client.get("/api/v1/ingest/rejected").json() == []


def test_health_and_openapi(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["database"] == "ok"
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/healthz", "/api/v1/devices", "/api/v1/devices/{device_id}", "/api/v1/devices/{device_id}/metrics",
            "/api/v1/agents", "/api/v1/customers", "/api/v1/metrics"} <= paths
    for path, ops in spec["paths"].items():
        for op in ops.values():
            assert op.get("summary") or op.get("description"), f"{path} is undocumented"
    assert "text/html" in client.get("/").headers["content-type"]


def test_database_down_gives_503_not_500() -> None:
    with TestClient(create_app("postgresql://nobody@127.0.0.1:9/none?connect_timeout=1")) as client:
        assert client.get("/api/v1/devices").status_code == 401  # no token: refused without the database
        client.headers["Authorization"] = "Bearer any"  # a token needs the database to be checked
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["database"] == "unavailable"
        r = client.get("/api/v1/devices")
        assert r.status_code == 503
        assert r.json() == {"detail": "database unavailable, try again shortly"}
        assert r.headers["retry-after"] == "5"
