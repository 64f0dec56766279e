"""`fleetcare migrate`: versioned, idempotent, backend chosen by feature detection."""

from __future__ import annotations

import os
import time

import psycopg
import pytest

from collector import timescale
from collector.config import DatabaseSection
from agent import wire
from collector.store import Batch, Store
from collector.migrate import LATEST, POSTGRES, TIMESCALEDB, MigrationError, choose_backend, migrate


def test_migrate_creates_schema_then_is_a_no_op(empty_db_url: str) -> None:
    first = migrate(empty_db_url, DatabaseSection(url=empty_db_url, timescaledb="off"))
    assert first == {"backend": POSTGRES, "from": 0, "to": LATEST}
    second = migrate(empty_db_url, DatabaseSection(url=empty_db_url, timescaledb="off"))
    assert second == {"backend": POSTGRES, "from": LATEST, "to": LATEST}
    with psycopg.connect(empty_db_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == list(range(1, LATEST + 1))
        partitioned = conn.execute(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'samples'::regclass").fetchone()
        assert partitioned == (1,)


def test_timescaledb_on_without_extension_fails_clearly(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url) as conn:
        if timescale.available(conn):
            pytest.skip("this server has TimescaleDB; the refusal path cannot be shown here")
    with pytest.raises(MigrationError, match="no timescaledb extension"):
        migrate(empty_db_url, DatabaseSection(url=empty_db_url, timescaledb="on"))
    with psycopg.connect(empty_db_url) as conn:  # nothing half-done
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)


def test_auto_uses_plain_postgres_when_extension_absent(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url) as conn:
        expected = TIMESCALEDB if timescale.available(conn) else POSTGRES
        assert choose_backend(conn, "auto") == expected
        assert choose_backend(conn, "off") == POSTGRES


@pytest.mark.timescaledb
def test_timescaledb_schema(empty_db_url: str) -> None:
    """The TimescaleDB path, exercised when the server has the extension
    (FLEETCARE_DATABASE_TIMESCALEDB=on makes its absence a failure instead of a skip)."""
    with psycopg.connect(empty_db_url) as conn:
        present = timescale.available(conn)
    if not present:
        if os.environ.get("FLEETCARE_DATABASE_TIMESCALEDB") == "on":
            pytest.fail("FLEETCARE_DATABASE_TIMESCALEDB=on but the server has no timescaledb extension")
        pytest.skip("TimescaleDB extension not available on this PostgreSQL (set FLEETCARE_TEST_DATABASE_URL "
                    "to a TimescaleDB server and FLEETCARE_DATABASE_TIMESCALEDB=on to run this)")
    info = migrate(empty_db_url, DatabaseSection(url=empty_db_url, timescaledb="on"))
    assert info["backend"] == TIMESCALEDB
    with psycopg.connect(empty_db_url) as conn:
        hyper = conn.execute("SELECT count(*) FROM timescaledb_information.hypertables "
                             "WHERE hypertable_name = 'samples'").fetchone()
        assert hyper == (1,)
        cagg = conn.execute("SELECT count(*) FROM timescaledb_information.continuous_aggregates "
                            "WHERE view_name = 'samples_5m'").fetchone()
        assert cagg == (1,)
        described = timescale.describe(conn)
        assert described["version"]
        assert any("policy_compression" in j for j in described["jobs"])
        assert any("policy_retention" in j for j in described["jobs"])
    assert migrate(empty_db_url, DatabaseSection(url=empty_db_url, timescaledb="on"))["from"] == LATEST
    # the write path and the continuous aggregate (real-time: no refresh needed to see new rows)
    conn = psycopg.connect(empty_db_url)
    store = Store(conn, TIMESCALEDB)
    origin = wire.Origin("acme", "hq", "gw1")
    base = (time.time() // 300) * 300 - 600
    batch = Batch(telemetry=[wire.Telemetry(origin, 1, i, [wire.Point("host", base + i * 30, {"v": float(i)})])
                             for i in range(10)])
    assert store.write(batch).stored == 10
    assert store.write(batch).stored == 0  # duplicates ignored on the hypertable too
    rows = conn.execute("SELECT v_avg, v_min, v_max, n FROM samples_5m ORDER BY bucket").fetchall()
    conn.close()
    assert rows == [(4.5, 0.0, 9.0, 10)]
