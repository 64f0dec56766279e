"""Every TimescaleDB-only statement fleetcare runs, in one place (TimescaleDB ≥ 2.13).

Chosen at migrate time by feature detection (see collector/migrate.py); the plain-PostgreSQL
equivalent is schema/002_samples_postgres.sql plus the jobs in collector/maintenance.py. To exercise this path, point
FLEETCARE_DATABASE_URL at a TimescaleDB server and set FLEETCARE_DATABASE_TIMESCALEDB=on.
"""

from __future__ import annotations

import psycopg

ROLLUP_VIEW = "samples_5m"


def available(conn: psycopg.Connection) -> bool:
    """True when the server can load the extension: installed, and preloaded as it requires
    (``shared_preload_libraries``), or already created in this database."""
    if installed(conn):
        return True
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if row is None:
        return False
    preload = conn.execute("SELECT current_setting('shared_preload_libraries', true)").fetchone()
    return bool(preload and preload[0] and "timescaledb" in preload[0])


def policy_statements(retention_days: int, compress_after_days: int) -> list[str]:
    """Re-applied at every migrate, so changed settings take effect (the policies are replaced)."""
    return [
        "SELECT remove_compression_policy('samples', if_exists => true)",
        f"SELECT add_compression_policy('samples', compress_after => INTERVAL '{int(compress_after_days)} days')",
        "SELECT remove_retention_policy('samples', if_exists => true)",
        f"SELECT add_retention_policy('samples', drop_after => INTERVAL '{int(retention_days)} days')",
        f"SELECT remove_retention_policy('{ROLLUP_VIEW}', if_exists => true)",
        f"SELECT add_retention_policy('{ROLLUP_VIEW}', drop_after => INTERVAL '{int(retention_days) * 4} days')",
    ]


def installed(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


def samples_statements(retention_days: int, compress_after_days: int) -> list[str]:
    """The samples hypertable, its compression and retention, and the 5-minute continuous aggregate.

    Column names match the plain-PostgreSQL schema so that queries never fork.
    """
    return [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        """CREATE TABLE samples (
               time        timestamptz NOT NULL,
               device_id   integer NOT NULL,
               series_id   integer NOT NULL,
               value       double precision NOT NULL,
               PRIMARY KEY (device_id, series_id, time))""",
        "SELECT create_hypertable('samples', by_range('time', INTERVAL '1 day'))",
        """ALTER TABLE samples SET (timescaledb.compress,
               timescaledb.compress_segmentby = 'device_id, series_id',
               timescaledb.compress_orderby = 'time DESC')""",
        f"SELECT add_compression_policy('samples', compress_after => INTERVAL '{int(compress_after_days)} days', "
        "if_not_exists => true)",
        f"SELECT add_retention_policy('samples', drop_after => INTERVAL '{int(retention_days)} days', "
        "if_not_exists => true)",
        f"""CREATE MATERIALIZED VIEW {ROLLUP_VIEW}
               WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
               SELECT time_bucket(INTERVAL '5 minutes', time) AS bucket, device_id, series_id,
                      avg(value) AS v_avg, min(value) AS v_min, max(value) AS v_max, count(*) AS n
               FROM samples
               GROUP BY bucket, device_id, series_id
               WITH NO DATA""",
        f"""SELECT add_continuous_aggregate_policy('{ROLLUP_VIEW}',
               start_offset => INTERVAL '3 days', end_offset => INTERVAL '5 minutes',
               schedule_interval => INTERVAL '5 minutes', if_not_exists => true)""",
        f"SELECT add_retention_policy('{ROLLUP_VIEW}', drop_after => INTERVAL '{int(retention_days) * 4} days', "
        "if_not_exists => true)",
    ]


def describe(conn: psycopg.Connection) -> dict[str, object]:
    """What TimescaleDB reports about the samples hypertable (for `fleetcare migrate --status`)."""
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    chunks = conn.execute(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'samples'").fetchone()
    jobs = conn.execute(
        "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs "
        "WHERE hypertable_name IN ('samples', %s) ORDER BY 1, 2", (ROLLUP_VIEW,)).fetchall()
    return {"version": version[0] if version else None, "chunks": chunks[0] if chunks else 0,
            "jobs": [f"{name} on {table}" for name, table in jobs]}
