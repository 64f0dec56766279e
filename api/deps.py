"""Request-scoped dependencies: a database connection from the app's async pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
from fastapi import Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


async def db(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """One pooled connection per request (dict rows); errors map to 503 in api/errors.py."""
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection(timeout=5.0) as conn:
        conn.row_factory = dict_row
        yield conn
