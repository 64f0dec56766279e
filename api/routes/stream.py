"""Live device status as server-sent events, for the console's fleet table and the portal.

The stream polls the database about once a second for devices whose status, detail, last_seen or
health changed, or whose open case did (the `changed_xid` columns of migration 010), and sends
those rows. Polling rather than LISTEN/NOTIFY: nothing on the write path (collector, alerting) has
to know the console exists, and a poll costs one indexed query per open console.

A poll takes a pooled connection for its two statements and gives it back: a stream that lasts
minutes never holds a connection. The stream ends by itself after ``max_seconds`` (the browser's
EventSource reconnects and gets a fresh snapshot), so a proxy's idle limit, a server restart or a
test can never leave one hanging.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api import auth
from api.access import Scope
from api.deps import Scoped
from api.errors import Unprocessable

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/stream", tags=["stream"])

#: Seconds between polls, and between keep-alive comments when nothing changes.
POLL_S = 1.0
KEEPALIVE_S = 15.0
#: Milliseconds the browser waits before reconnecting after the stream ends.
RETRY_MS = 1000
MAX_IDS = 1000

_ROW = """
SELECT d.id, d.status, d.status_detail, d.status_since, d.last_seen, d.health,
       (SELECT count(*) FROM alarms al WHERE al.device_id = d.id AND al.state = 'active') AS open_alarms,
       (SELECT count(*) FROM cases k WHERE k.device_id = d.id AND k.state NOT IN ('closed', 'suppressed'))
           AS open_cases,
       (SELECT jsonb_build_object('id', k.id, 'severity', k.severity, 'state', k.state, 'title', k.title)
        FROM cases k WHERE k.device_id = d.id AND k.state NOT IN ('closed', 'suppressed')
        ORDER BY k.severity, k.opened_at LIMIT 1) AS open_case{metrics}
FROM devices d JOIN agents a ON a.id = d.agent_id JOIN sites s ON s.id = a.site_id
WHERE {scope} AND (%(ids)s::int4[] IS NULL OR d.id = ANY(%(ids)s))
"""

# Rows changed by a transaction at or after the previous poll's oldest running one.
_CHANGED = """
  AND d.id IN (SELECT id FROM devices WHERE changed_xid >= %(xmin)s::text::xid8
               UNION SELECT device_id FROM cases WHERE changed_xid >= %(xmin)s::text::xid8 AND device_id IS NOT NULL)
"""

_METRICS = """,
       coalesce((SELECT jsonb_object_agg(se.key, jsonb_build_object(
                    'value', lv.value, 'time', lv.time, 'unit', coalesce(mc.unit, '')))
                 FROM latest_values lv JOIN series se ON se.id = lv.series_id
                 LEFT JOIN metric_catalogue mc ON mc.name = se.name
                 WHERE lv.device_id = d.id), '{}'::jsonb) AS metrics"""

_SIGNATURE = ("status", "status_detail", "last_seen", "health", "open_alarms", "open_cases", "open_case", "metrics")


def _parse_ids(ids: str | None) -> list[int] | None:
    if not ids:
        return None
    out = [int(i) for i in ids.split(",") if i]
    if any(i >= 2**31 for i in out):  # device ids are int4: refuse before the stream starts, not during it
        raise Unprocessable("ids: a device id is below 2147483648")
    return out


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=_json_default, separators=(',', ':'))}\n\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class SessionEnded(Exception):
    """The token the stream was opened with was revoked, expired or its user disabled."""


class DevicePoller:
    """Reads what changed since the previous poll for one stream; remembers what it sent so that a
    row found twice (its transaction was still running at the previous poll) is sent once."""

    def __init__(self, pool: AsyncConnectionPool, scope: Scope, ids: list[int] | None) -> None:
        self.pool = pool
        self.token_sha256 = scope.token_sha256
        # a page of the console (ids given) shows each device's latest readings too; a stream of the
        # whole fleet leaves them out (its every poll would read every latest value)
        self.sql = _ROW.format(scope=scope.where("coalesce(d.customer_id, s.customer_id)"),
                               metrics=_METRICS if ids is not None else "")
        self.ids = ids
        self.xmin: str | None = None
        self.sent: dict[int, tuple[Any, ...]] = {}

    async def poll(self) -> list[dict[str, Any]]:
        """The rows to send now: every watched row the first time, then the changed ones."""
        async with self.pool.connection(timeout=5.0) as conn:
            conn.row_factory = dict_row
            # the stream outlives the request's check in api/access.py: a logout, a revoked token or a
            # disabled user ends it at the next poll
            if self.token_sha256 is not None and await (await conn.execute(
                    auth.TOKEN_ALIVE_SQL, (self.token_sha256,))).fetchone() is None:
                raise SessionEnded
            # taken before the query: anything not yet visible to it is at or above this xmin
            snap = await (await conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x")).fetchone()
            params: dict[str, Any] = {"ids": self.ids, "xmin": self.xmin}
            if self.xmin is None:
                rows = await (await conn.execute(self.sql + " ORDER BY d.id", params)).fetchall() \
                    if self.ids is not None else []
            else:
                rows = await (await conn.execute(self.sql + _CHANGED + " ORDER BY d.id", params)).fetchall()
        self.xmin = snap["x"] if snap else self.xmin
        out = []
        for row in rows:
            sig = tuple(json.dumps(row.get(k), default=_json_default, sort_keys=True) for k in _SIGNATURE)
            if self.sent.get(row["id"]) != sig:
                self.sent[row["id"]] = sig
                out.append(row)
        return out


@router.get("/devices", summary="Live device status as server-sent events (text/event-stream)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Events: `hello` at once; `devices` {items: [...]} with the watched "
                                            "devices' state at once (when `ids` is given) and then every device "
                                            "whose status, last_seen, health or open case changed; "
                                            "`unavailable` while the database does not answer; `bye` at the end"}})
async def stream_devices(
    request: Request,
    scope: Scoped,
    ids: Annotated[str | None, Query(pattern=r"^\d{1,10}(,\d{1,10})*$", max_length=12_000,
                                     description="Comma-separated device ids to watch (at most 1000); "
                                                 "default: every device this account sees, changes only")] = None,
    max_seconds: Annotated[int, Query(ge=1, le=3600, description="The stream ends after this; "
                                                                 "EventSource reconnects")] = 300,
) -> StreamingResponse:
    watched = _parse_ids(ids)
    if watched is not None and len(watched) > MAX_IDS:
        watched = watched[:MAX_IDS]
    poller = DevicePoller(request.app.state.pool, scope, watched)
    return StreamingResponse(_events(request, poller, max_seconds), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _events(request: Request, poller: DevicePoller, max_seconds: int) -> AsyncIterator[str]:
    """hello, then a poll a second until `max_seconds` have passed or the client has gone."""
    deadline = time.monotonic() + max_seconds
    last_sent = time.monotonic()
    yield f"retry: {RETRY_MS}\n" + _sse("hello", {"at": datetime.now(UTC), "max_seconds": max_seconds,
                                                 "watching": None if poller.ids is None else len(poller.ids)})
    down = False
    while True:
        try:
            rows = await poller.poll()
            if down:
                down = False
                yield _sse("available", {"at": datetime.now(UTC)})
        except SessionEnded:
            yield _sse("bye", {"reason": "logged_out"})
            return
        except (psycopg.OperationalError, PoolTimeout) as exc:
            rows = []
            if not down:
                down = True
                log.warning("device stream: database unavailable: %s", exc)
                yield _sse("unavailable", {"detail": "database unavailable, retrying"})
        if rows:
            last_sent = time.monotonic()
            yield _sse("devices", {"items": rows})
        elif time.monotonic() - last_sent >= KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        left = deadline - time.monotonic()
        if left <= 0:
            yield _sse("bye", {"reason": "max_seconds"})
            return
        await asyncio.sleep(min(POLL_S, left))
        if await request.is_disconnected():
            return
