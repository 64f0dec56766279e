"""Request-scoped dependencies: a database connection from the app's async pool (reads), or from its
sync pool (the case routes, which share the case manager's sync code with the detection worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from fastapi import Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool


async def db(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """One pooled connection per request (dict rows); errors map to 503 in api/errors.py."""
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection(timeout=5.0) as conn:
        conn.row_factory = dict_row
        yield conn


def principal(request: Request) -> Any:  # -> api.auth.Principal
    """Who is asking: a bearer token (Authorization header) or the session cookie; 401 otherwise."""
    from fastapi import HTTPException

    from api import auth
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(auth.SESSION_COOKIE)
    if token:
        pool: ConnectionPool = request.app.state.sync_pool
        with pool.connection(timeout=5.0) as conn:
            who = auth.resolve(conn, token)
        if who is not None:
            return who
    raise HTTPException(401, "log in first: POST /api/v1/auth/token, then send Authorization: Bearer <token>",
                        headers={"WWW-Authenticate": "Bearer"})


def db_sync(request: Request) -> Iterator[psycopg.Connection]:
    """One pooled sync connection (autocommit; tuple rows) per request, for plain `def` routes."""
    pool: ConnectionPool = request.app.state.sync_pool
    with pool.connection(timeout=5.0) as conn:
        yield conn
