"""`fleetcare migrate`: create or upgrade the schema, idempotent and versioned.

Migrations are numbered; each runs once, in its own transaction, under an advisory lock so that a
server and a collector starting together cannot race. The storage backend (TimescaleDB or plain
PostgreSQL) is chosen by feature detection the first time and recorded; later runs follow it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import psycopg

from collector import timescale
from collector.config import DatabaseSection

log = logging.getLogger(__name__)

LOCK_ID = 0x666C6565  # "flee": pg_advisory_xact_lock key for migrations

POSTGRES, TIMESCALEDB = "postgres", "timescaledb"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    #: backend → statements; "*" applies to both.
    statements: Callable[[DatabaseSection], dict[str, list[str]]]


def _sql(name: str) -> list[str]:
    text = resources.files("collector").joinpath("schema", name).read_text("utf-8")
    return [text]


MIGRATIONS: list[Migration] = [
    Migration(1, "registry", lambda db: {"*": _sql("001_core.sql")}),
    Migration(2, "samples", lambda db: {
        POSTGRES: _sql("002_samples_postgres.sql"),
        TIMESCALEDB: timescale.samples_statements(db.retention_days, db.compress_after_days),
    }),
    Migration(3, "device-state", lambda db: {"*": _sql("003_device_state.sql")}),
    Migration(4, "delivery", lambda db: {"*": _sql("004_delivery.sql")}),
    Migration(5, "diagnostics", lambda db: {"*": _sql("005_diagnostics.sql")}),
    Migration(6, "alarms-health", lambda db: {"*": _sql("006_alarms.sql")}),
    Migration(7, "cases", lambda db: {"*": _sql("007_cases.sql")}),
    Migration(8, "maintenance", lambda db: {"*": _sql("008_maintenance.sql")}),
    Migration(9, "auth", lambda db: {"*": _sql("009_auth.sql")}),
    Migration(10, "console", lambda db: {"*": _sql("010_console.sql")}),
]

LATEST = MIGRATIONS[-1].version


def choose_backend(conn: psycopg.Connection, setting: str) -> str:
    """auto: TimescaleDB when the server offers it; on: require it; off: plain PostgreSQL."""
    if setting == "off":
        return POSTGRES
    if timescale.available(conn):
        return TIMESCALEDB
    if setting == "on":
        raise MigrationError("database.timescaledb = on, but this PostgreSQL server has no timescaledb "
                             "extension (pg_available_extensions); install it or set it to auto")
    return POSTGRES


def migrate(url: str, db: DatabaseSection | None = None) -> dict[str, object]:
    """Bring the schema to the latest version; returns {backend, from, to}."""
    db = db or DatabaseSection(url=url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                            version integer PRIMARY KEY, name text NOT NULL,
                            backend text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())""")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            rows = conn.execute("SELECT version, backend FROM schema_migrations ORDER BY version").fetchall()
            done = {v for v, _ in rows}
            backend = rows[0][1] if rows else choose_backend(conn, db.timescaledb)
            if rows and db.timescaledb == "on" and backend != TIMESCALEDB:
                raise MigrationError("database.timescaledb = on, but this database was created on plain "
                                     "PostgreSQL; migrate a fresh database")
            start = max(done, default=0)
            for m in MIGRATIONS:
                if m.version in done:
                    continue
                steps = m.statements(db)
                for statement in steps.get("*", []) + steps.get(backend, []):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version, name, backend) VALUES (%s, %s, %s)",
                             (m.version, m.name, backend))
                log.info("schema migration %d (%s) applied on %s", m.version, m.name, backend)
            if backend == TIMESCALEDB:  # retention and compression follow the current settings
                for statement in timescale.policy_statements(db.retention_days, db.compress_after_days):
                    conn.execute(statement)
    return {"backend": backend, "from": start, "to": LATEST}


def backend_of(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT backend FROM schema_migrations ORDER BY version LIMIT 1").fetchone()
    if row is None:
        raise MigrationError("the database has no fleetcare schema; run `fleetcare migrate`")
    return row[0]
