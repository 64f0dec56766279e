"""Does fleetcare open cases before the customer notices? A simulated fleet (fleetcare simulate) through
the real pipeline — broker → `fleetcare collector` (ingest, detection worker, case manager) →
PostgreSQL — held against the simulator's ground truth.

    python bench/detection.py [--devices 200] [--days 14] [--interval 300] [--seed 11] [--speed 1500]

The planned maintenance of the truth is registered as maintenance windows before the run, as a
service desk would. Each fault is matched with the cases opened on its device between its onset and
its end; a case matched with no fault is false. Reported:

* early_pct: faults whose first case opened before the customer-visible moment (event time);
* median_lead_h: visible moment − first case, over the faults found early;
* false_per_100dd: unmatched cases per 100 device-days;
* dup_per_fault: cases beyond the first per fault (a recovered case that reopens is the same case);
* p50/p99 latency: wall time from the collector receiving the deciding message to the case row.

Cases opened in the last interval are not counted: the simulation's end sends every agent's
"offline" status, which rightly opens site cases. Uses FLEETCARE_DATABASE_URL / FLEETCARE_MQTT_URL
when set (a fresh database is created and dropped), else an embedded PostgreSQL and broker. The last
line is exactly
    early_pct=<f> median_lead_h=<f> false_per_100dd=<f> dup_per_fault=<f> p99_latency_s=<f>
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest import with_dbname  # noqa: E402

from collector.migrate import migrate  # noqa: E402
from fleetcare import embedded  # noqa: E402
from fleetcare import simulate as sim  # noqa: E402

PREFIX = "benchdet"


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def register(conn: psycopg.Connection, p: sim.Plan) -> int:
    """The fleet's registry rows and the truth's planned maintenance as device windows (a margin of
    10 minutes before and 30 after, as a change request would book it). Returns the windows."""
    ids: dict[str, int] = {}
    for d in p.devices:
        cust = conn.execute("INSERT INTO customers (key, name) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                            "SET key = EXCLUDED.key RETURNING id", (d.customer, d.customer)).fetchone()[0]
        site = conn.execute("INSERT INTO sites (customer_id, key, name) VALUES (%s, %s, %s) ON CONFLICT "
                            "(customer_id, key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
                            (cust, d.site, d.site)).fetchone()[0]
        agent = conn.execute("INSERT INTO agents (site_id, key) VALUES (%s, %s) ON CONFLICT (site_id, key) "
                             "DO UPDATE SET key = EXCLUDED.key RETURNING id", (site, d.agent)).fetchone()[0]
        ids[d.device] = conn.execute("INSERT INTO devices (agent_id, key, name) VALUES (%s, %s, %s) RETURNING id",
                                     (agent, d.device, d.device)).fetchone()[0]
        ids[f"customer:{d.device}"] = cust
    n = 0
    for e in p.benign:
        if e.kind != "maintenance":
            continue
        dev = e.device["device"]
        conn.execute("INSERT INTO maintenance_windows (customer_id, device_id, starts_at, ends_at, reason, created_by) "
                     "VALUES (%s, %s, %s, %s, 'planned maintenance (simulated)', 'bench')",
                     (ids[f"customer:{dev}"], ids[dev], _ts(e.onset - 600), _ts(e.end + 1800)))
        n += 1
    conn.commit()
    return n


def wait_settled(conn: psycopg.Connection, samples: int, proc: subprocess.Popen, quiet_s: float = 15.0) -> None:
    """Until every sample is stored and neither alarms nor cases changed for `quiet_s`."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the collector exited during the run")
        stored = conn.execute("SELECT coalesce(sum(samples), 0) FROM agents").fetchone()[0]
        state = (stored, conn.execute("SELECT count(*), max(decided_at) FROM alarms").fetchone(),
                 conn.execute("SELECT count(*), max(updated_at) FROM cases").fetchone())
        if state != last:
            last, since = state, time.monotonic()
        elif stored >= samples and time.monotonic() - since >= quiet_s:
            return
        time.sleep(1.0)
    raise RuntimeError("the pipeline did not settle within an hour")


def evaluate(conn: psycopg.Connection, p: sim.Plan) -> dict[str, float]:
    counted_until = _ts(p.params.end - p.params.interval)
    rows = conn.execute(
        "SELECT k.id, d.key, k.problem, k.severity, k.opened_at, k.created_at, k.title, "
        "  (SELECT a.received_at FROM alarms a WHERE a.case_id = k.id ORDER BY a.id LIMIT 1) "
        "FROM cases k LEFT JOIN devices d ON d.id = k.device_id WHERE k.opened_at < %s ORDER BY k.opened_at",
        (counted_until,)).fetchall()
    by_device: dict[str | None, list[tuple]] = defaultdict(list)
    for r in rows:
        by_device[r[1]].append(r)
    matched: set[int] = set()
    early, leads, dups = 0, [], []
    per_kind: dict[str, list[str]] = defaultdict(list)
    for f in p.faults:
        cases = [r for r in by_device.get(f.device["device"], []) if _ts(f.onset) <= r[4] <= _ts(f.end)]
        matched |= {r[0] for r in cases}
        if not cases:
            per_kind[f.kind].append("missed")
            continue
        first = min(r[4] for r in cases)
        dups.append(len({r[0] for r in cases}) - 1)
        if dups[-1]:
            print(f"  duplicate: {f.kind} on {f.device['device']}: " + "; ".join(
                f"#{r[0]} {r[2]} at {r[4]:%m-%d %H:%M}" for r in cases))
        lead_h = (_ts(f.visible) - first).total_seconds() / 3600
        if lead_h > 0:
            early += 1
            leads.append(lead_h)
            per_kind[f.kind].append(f"{lead_h:+.1f}h")
        else:
            per_kind[f.kind].append(f"late {-lead_h:.1f}h")
    false = [r for r in rows if r[0] not in matched]
    latencies = sorted((r[5] - r[7]).total_seconds() for r in rows if r[7] is not None)
    device_days = len(p.devices) * p.params.days
    for kind in sorted(per_kind):
        print(f"  {kind:18s} {', '.join(per_kind[kind])}")
    for r in false[:15]:
        print(f"  false: #{r[0]} {r[1] or '(site)'} {r[2]} {r[3]} at {r[4]:%m-%d %H:%M}: {r[6][:90]}")

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {"faults": len(p.faults), "cases": len(rows), "early_pct": 100.0 * early / max(1, len(p.faults)),
            "median_lead_h": statistics.median(leads) if leads else 0.0,
            "false_per_100dd": 100.0 * len(false) / device_days,
            "dup_per_fault": sum(dups) / max(1, len(p.faults)), "p50_latency_s": pct(0.5), "p99_latency_s": pct(0.99)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--interval", type=float, default=300.0, help="seconds between two readings of a device")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--speed", type=float, default=1500.0,
                    help="simulated seconds per real second; the pipeline must keep up for the latency to mean "
                         "anything (1500 with 200 devices is about 8,000 samples/s)")
    args = ap.parse_args()

    services: list[object] = []
    tmp = Path(tempfile.mkdtemp(prefix="fleetcare-bench-"))
    admin_url = os.environ.get("FLEETCARE_DATABASE_URL")
    if not admin_url:
        pg = embedded.EmbeddedPostgres(tmp / "pg", database="postgres")
        admin_url = pg.start()
        services.append(pg)
    mqtt_url = os.environ.get("FLEETCARE_MQTT_URL")
    if not mqtt_url:
        b = embedded.broker(tmp / "mq")
        mqtt_url = b.start()
        services.append(b)
    db_name = f"fc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    url = with_dbname(admin_url, db_name)
    proc = None
    try:
        migrate(url)
        start = float(round(time.time() - args.days * sim.DAY - 3600))
        p = sim.plan(sim.Params(devices=args.devices, days=args.days, seed=args.seed, interval=args.interval,
                                start=start, fault_rate=args.fault_rate))
        with psycopg.connect(url) as conn:
            windows = register(conn, p)
        print(f"{len(p.devices)} devices × {args.days:g} days every {args.interval:g} s: {len(p.faults)} faults "
              f"({', '.join(sorted({f.kind for f in p.faults}))}), {len(p.benign)} benign episodes, "
              f"{windows} maintenance windows; speed {args.speed:g}×", flush=True)
        env = dict(os.environ, FLEETCARE_DATABASE_URL=url, FLEETCARE_MQTT_URL=mqtt_url,
                   FLEETCARE_MQTT_TOPIC_PREFIX=PREFIX, FLEETCARE_MQTT_CLIENT_ID=f"bench-{db_name}",
                   FLEETCARE_MQTT_SHARE_GROUP=f"bench-{db_name}")
        log = open(tmp / "collector.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "fleetcare.cli", "collector"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 60
        while "collector connected" not in (tmp / "collector.log").read_text(errors="replace"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the collector did not start:\n" + (tmp / "collector.log").read_text())
            time.sleep(0.2)
        began = time.perf_counter()
        counts = sim.publish(p, mqtt_url, PREFIX, speed=args.speed)
        published = time.perf_counter() - began
        with psycopg.connect(url, autocommit=True) as conn:
            wait_settled(conn, counts["samples"], proc)
            elapsed = time.perf_counter() - began
            print(f"published {counts['samples']} samples in {published:.0f} s; settled after {elapsed:.0f} s "
                  f"({counts['samples'] / elapsed:.0f} samples/s end to end)", flush=True)
            r = evaluate(conn, p)
        print(f"{r['faults']} faults, {r['cases']} cases; latency p50 {r['p50_latency_s']:.2f} s, "
              f"p99 {r['p99_latency_s']:.2f} s")
        print(f"early_pct={r['early_pct']:.2f} median_lead_h={r['median_lead_h']:.2f} "
              f"false_per_100dd={r['false_per_100dd']:.2f} dup_per_fault={r['dup_per_fault']:.2f} "
              f"p99_latency_s={r['p99_latency_s']:.2f}")
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        for s in reversed(services):
            s.stop()


if __name__ == "__main__":
    sys.exit(main())
