"""Request-scoped dependencies: a database connection from the app's async pool (reads), or from its
sync pool (the case routes, which share the case manager's sync code with the detection worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api.access import Scope, access

#: The request's scope (api/access.py): routes that list things limit their queries with it.
Scoped = Annotated[Scope, Depends(access)]


async def db(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """One pooled connection per request (dict rows); errors map to 503 in api/errors.py."""
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection(timeout=5.0) as conn:
        conn.row_factory = dict_row
        yield conn


def principal(scope: Annotated[Any, Depends(access)]) -> Any:  # -> api.auth.Principal
    """Who is asking (api/access.py has authenticated them already)."""
    return scope.principal


def db_sync(request: Request) -> Iterator[psycopg.Connection]:
    """One pooled sync connection (autocommit; tuple rows) per request, for plain `def` routes."""
    pool: ConnectionPool = request.app.state.sync_pool
    with pool.connection(timeout=5.0) as conn:
        yield conn
