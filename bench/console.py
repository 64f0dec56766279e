"""The console's reads at fleet scale: 10,000 devices of 20 customers, each with a few live metrics,
read as a logged-in admin and as a customer through the real app (in-process ASGI client).

    python bench/console.py [--devices 10000] [--rounds 30]

Measured in the same run, as ratios to `GET /healthz` (the app's floor: routing, one `SELECT 1`):
a page of the fleet table (first and last page), a filtered page, one device, the live stream's
snapshot of a page of devices, and one of its polls for changes over the whole fleet (an admin's
stream without `ids`: a scan of `devices`, which has no index on `changed_xid` so that telemetry
updates stay HOT). `auth_overhead` is an admin's `GET /api/v1/metrics` over an
anonymous `GET /healthz`: what authenticating a request costs. Uses FLEETCARE_DATABASE_URL when set
(a fresh database on that server, dropped afterwards), else an embedded PostgreSQL. The last line is
    devices=<int> page_ms=<float> last_page_ms=<float> filtered_ms=<float> device_ms=<float> stream_snapshot_ms=<float> stream_poll_ms=<float> auth_overhead=<float>
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import wire  # noqa: E402
from collector.migrate import backend_of, migrate  # noqa: E402
from collector.store import Batch, Store  # noqa: E402
from fleetcare import embedded  # noqa: E402


def with_dbname(url: str, name: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{name}", p.query, p.fragment))


def seed(url: str, devices: int) -> None:
    """20 customers × 5 sites, one agent per site, `devices` devices with four metrics each."""
    conn = psycopg.connect(url)
    store = Store(conn, backend_of(conn))
    conn.commit()
    now = time.time()
    metrics = [wire.MetricInfo(n, "%", "gauge", n) for n in ("cpu_percent", "mem_percent", "temp_c", "load")]
    agents = 100
    per_agent = devices // agents
    for a in range(agents):
        origin = wire.Origin(f"cust{a % 20:02d}", f"site{a}", f"gw{a}")
        devs = [wire.DeviceInfo(f"d{a}-{i}", "switch", f"dev {a}-{i}", {}) for i in range(per_agent)]
        batch = Batch()
        batch.births.append(wire.Birth(origin, 1, "0.1", 60.0, {}, devs, metrics))
        batch.telemetry.append(wire.Telemetry(origin, 1, 1, [
            wire.Point(d.device, now, {"cpu_percent": float(i % 90), "mem_percent": 40.0, "temp_c": 31.5, "load": 0.4})
            for i, d in enumerate(devs)]))
        store.write(batch)
    conn.execute("UPDATE devices SET health = 100 - (id % 37), status = CASE WHEN id % 50 = 0 THEN 'offline' "
                 "ELSE 'online' END")
    conn.commit()
    conn.close()


def timed(client, path: str, headers: dict[str, str], rounds: int) -> float:
    """Median milliseconds of `rounds` GETs (after one warm-up)."""
    assert client.get(path, headers=headers).status_code == 200, path
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = client.get(path, headers=headers)
        samples.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return statistics.median(samples)


async def _poll_ms(url: str, rounds: int) -> float:
    """Median milliseconds of one poll for changes of every device (10 % changed between polls)."""
    from psycopg_pool import AsyncConnectionPool

    from api import auth
    from api.access import Scope
    from api.routes.stream import DevicePoller
    pool = AsyncConnectionPool(url, min_size=1, max_size=2, kwargs={"autocommit": True})
    await pool.open()
    try:
        poller = DevicePoller(pool, Scope(auth.Principal(0, "bench", "admin", None)), None)
        await poller.poll()  # the first poll only takes the snapshot's xmin
        samples = []
        for _ in range(rounds):
            async with pool.connection() as conn:
                await conn.execute("UPDATE devices SET last_seen = now() WHERE id % 10 = (random() * 9)::int")
            t = time.perf_counter()
            rows = await poller.poll()
            samples.append((time.perf_counter() - t) * 1000)
            assert rows, "a poll after changes found none"
        return statistics.median(samples)
    finally:
        await pool.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from api import auth
    from api.app import create_app

    server = None
    base = os.environ.get("FLEETCARE_DATABASE_URL")
    tmp = tempfile.TemporaryDirectory()
    if not base:
        server = embedded.EmbeddedPostgres(Path(tmp.name) / "pg", database="postgres")
        base = server.start()
    name = f"bench_console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = with_dbname(base, name)
    try:
        migrate(url)
        t = time.perf_counter()
        seed(url, args.devices)
        print(f"seeded {args.devices} devices in {time.perf_counter() - t:.1f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            uid = auth.add_user(conn, "bench-admin", "bench-password-1", "admin", by="bench")
            _, admin_token = auth.issue_token(conn, uid)
            cid = auth.add_user(conn, "bench-cust", "bench-password-1", "customer", customer="cust07", by="bench")
            _, cust_token = auth.issue_token(conn, cid)
            some = [r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id LIMIT 100").fetchall()]
        admin_h = {"Authorization": f"Bearer {admin_token}"}
        cust_h = {"Authorization": f"Bearer {cust_token}"}
        with TestClient(create_app(url)) as client:
            floor = timed(client, "/healthz", {}, args.rounds)
            metrics = timed(client, "/api/v1/metrics", admin_h, args.rounds)
            page = timed(client, "/api/v1/devices?limit=100", admin_h, args.rounds)
            last = timed(client, f"/api/v1/devices?limit=100&offset={args.devices - 100}", admin_h, args.rounds)
            filtered = timed(client, "/api/v1/devices?limit=100&health_below=70&status=online", admin_h, args.rounds)
            cust_page = timed(client, "/api/v1/devices?limit=100", cust_h, args.rounds)
            device = timed(client, f"/api/v1/devices/{some[0]}", admin_h, args.rounds)
            ids = ",".join(map(str, some))
            stream = timed(client, f"/api/v1/stream/devices?ids={ids}&max_seconds=1", admin_h, max(3, args.rounds // 10))
        poll = asyncio.run(_poll_ms(url, args.rounds))
        print(f"healthz {floor:.2f} ms; metrics (authenticated) {metrics:.2f} ms; customer's page {cust_page:.2f} ms")
        print(f"stream: {stream:.0f} ms for a whole 1 s stream (snapshot of 100 devices, polls, end)")
        snapshot = stream - 1000.0  # the stream lasts max_seconds; what is left is its snapshot and polls
        print(f"devices={args.devices} page_ms={page:.2f} last_page_ms={last:.2f} filtered_ms={filtered:.2f} "
              f"device_ms={device:.2f} stream_snapshot_ms={max(snapshot, 0.0):.2f} stream_poll_ms={poll:.2f} "
              f"auth_overhead={metrics / floor:.2f}")
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if server is not None:
            server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
