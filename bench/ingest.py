"""Ingest throughput: samples per second through broker → collector → PostgreSQL, against a raw
binary COPY of the same rows measured in the same run.

    python bench/ingest.py [--samples 1000000] [--per-message 200] [--devices 500]

Uses FLEETCARE_DATABASE_URL / FLEETCARE_MQTT_URL when set (a fresh database is created on that
server and dropped afterwards), else an embedded PostgreSQL and broker. One `fleetcare collector`
process does the ingest. The last line is
    samples_per_s=<float> copy_rows_per_s=<float> ratio=<float> lost=<int> duplicated=<int>
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import mqtt, wire  # noqa: E402
from collector.migrate import migrate  # noqa: E402
from fleetcare import embedded  # noqa: E402


def with_dbname(url: str, name: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{name}", p.query, p.fragment))


def make_messages(total: int, per_message: int, devices: int, start: float) -> tuple[list[tuple[str, bytes]], float]:
    """Telemetry as agents would send it: each device reports 20 metrics per point, 10 s apart."""
    metrics_per_point = 20
    names = [f"m{i:02d}" for i in range(metrics_per_point)]
    points_per_message = max(1, per_message // metrics_per_point)
    messages: list[tuple[str, bytes]] = []
    value_sum = 0.0
    produced = 0
    agents = max(1, devices // 25)
    seqs = [0] * agents
    step = 0
    while produced < total:
        for d in range(devices):
            if produced >= total:
                break
            agent = d % agents
            origin = wire.Origin(f"cust{agent % 7}", f"site{agent}", f"agent{agent}")
            ts = start + step * 10.0
            metrics = {}
            for i, name in enumerate(names):
                if produced >= total:
                    break
                v = float((d * 31 + step * 7 + i) % 1000) / 10.0
                metrics[name] = v
                value_sum += v
                produced += 1
            if not metrics:
                break
            messages.append((origin, wire.Point(f"dev{d}", ts, metrics)))
        step += 1
    # group points of the same agent into messages of ~per_message samples
    by_agent: dict[wire.Origin, list[wire.Point]] = {}
    for origin, point in messages:
        by_agent.setdefault(origin, []).append(point)
    out: list[tuple[str, bytes]] = []
    prefix = "bench"
    for origin, points in by_agent.items():
        a = int(origin.agent[5:])
        for i in range(0, len(points), points_per_message):
            seqs[a] += 1
            out.append((wire.topic(prefix, origin, wire.TELEMETRY),
                        wire.encode_telemetry(origin, 1, seqs[a], points[i:i + points_per_message])))
    return out, value_sum


def publish_all(url: str, protocol: int, messages: list[tuple[str, bytes]]) -> None:
    address = mqtt.BrokerAddress.parse(url)
    client = mqtt.new_client(f"bench-pub-{uuid.uuid4().hex[:6]}", protocol)
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=300)
    client.disconnect()
    client.loop_stop()


def copy_baseline(url: str, messages: list[tuple[str, bytes]]) -> float:
    """Raw binary COPY of the same rows into a table with the same primary key: rows per second."""
    rows = []
    for topic, payload in messages:
        origin, _ = wire.parse_topic("bench", topic)
        t = wire.parse_telemetry(origin, payload, now=time.time())
        dev_base = hash(origin) % 1000 * 1000
        for p in t.points:
            dev = dev_base + int(p.device[3:])
            for k, v in p.metrics.items():
                rows.append((p.ts, dev, int(k[1:]), v))
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE copy_baseline (time timestamptz NOT NULL, device_id int NOT NULL, "
                     "series_id int NOT NULL, value float8 NOT NULL, PRIMARY KEY (device_id, series_id, time))")
        from datetime import datetime, timezone
        rows = [(datetime.fromtimestamp(t, timezone.utc), d, s, v) for t, d, s, v in rows]
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy("COPY copy_baseline FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["timestamptz", "int4", "int4", "float8"])
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--per-message", type=int, default=200, help="samples per MQTT message")
    ap.add_argument("--devices", type=int, default=500)
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
        print(f"broker: {b.kind}")
    db_name = f"fc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    url = with_dbname(admin_url, db_name)
    collector = None
    try:
        migrate(url)
        protocol = mqtt.negotiate_protocol(mqtt_url, timeout=10)
        start = time.time() - 86_400
        messages, value_sum = make_messages(args.samples, args.per_message, args.devices, start)
        print(f"{args.samples} samples in {len(messages)} messages, {args.devices} devices; "
              f"database {urlsplit(url).hostname or 'unix socket'}, broker {mqtt_url}", flush=True)

        env = dict(os.environ, FLEETCARE_DATABASE_URL=url, FLEETCARE_MQTT_URL=mqtt_url,
                   FLEETCARE_MQTT_TOPIC_PREFIX="bench", FLEETCARE_MQTT_CLIENT_ID=f"bench-{db_name}",
                   FLEETCARE_MQTT_SHARE_GROUP=f"bench-{db_name}")
        log = open(tmp / "collector.log", "wb")
        collector = subprocess.Popen([sys.executable, "-m", "fleetcare.cli", "collector"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until the collector's session exists
                time.sleep(0.2)
                if "collector connected" in (tmp / "collector.log").read_text(errors="replace"):
                    break
            time.sleep(0.5)
            cpu_before = _cpu(collector.pid)
            started = time.perf_counter()
            publish_all(mqtt_url, protocol, messages)
            published = time.perf_counter() - started
            stored = 0
            last_change = time.monotonic()
            while stored < args.samples and time.monotonic() - last_change < 30:
                time.sleep(0.05)
                now_stored = conn.execute("SELECT coalesce(sum(samples), 0) FROM agents").fetchone()[0]
                if now_stored != stored:
                    stored, last_change = now_stored, time.monotonic()
            elapsed = time.perf_counter() - started
            cpu = _cpu(collector.pid) - cpu_before
            count, distinct, total = conn.execute(
                "SELECT count(*), count(DISTINCT (device_id, series_id, time)), coalesce(sum(value), 0) "
                "FROM samples").fetchone()
        rate = count / elapsed
        print(f"published in {published:.2f} s; stored {count} in {elapsed:.2f} s; collector CPU {cpu:.2f} s "
              f"({cpu / max(count, 1) * 1e6:.2f} µs per sample); value sum diff {abs(total - value_sum):.3g}",
              flush=True)
        copy_rate = copy_baseline(url, messages)
        lost = args.samples - distinct
        duplicated = count - distinct
        print(f"samples_per_s={rate:.1f} copy_rows_per_s={copy_rate:.1f} ratio={rate / copy_rate:.3f} "
              f"lost={lost} duplicated={duplicated}")
        return 0 if lost == 0 and duplicated == 0 else 1
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(30)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        for s in reversed(services):
            s.stop()


def _cpu(pid: int) -> float:
    import psutil
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


if __name__ == "__main__":
    sys.exit(main())
