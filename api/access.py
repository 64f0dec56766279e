"""Who may see and do what: the one place where access to the API is decided.

Every `/api/v1` route (and every page) depends on `access`, installed once for the whole app in
api/app.py, so a route cannot be added without it. `access` does three things:

1. **Authenticates**: a bearer token (``Authorization``) or the session cookie; 401 otherwise.
2. **Checks the role against the route**: customers read, and may write only what `CUSTOMER_WRITES`
   lists (a comment on their case, their answer to a callback); `STAFF_ONLY` routes are for admins and
   engineers; `UNSCOPED_ONLY` routes show data that belongs to no single customer (malformed MQTT
   messages, the delivery log) and need a principal who sees every customer; `ADMIN_ONLY` ones (the
   audit log) need an admin. 403 otherwise.
3. **Scopes by path parameter**: each path parameter that names a thing (`device_id`, `case_id`, …)
   has its owner query in `OWNERS`; a thing of a customer outside the principal's scope answers 404,
   exactly as a thing that does not exist, so ids of other customers' things cannot be probed.
   A route whose path has a parameter in neither `OWNERS` nor `NEUTRAL` makes `create_app` fail.

Lists cannot be scoped by a path parameter: their queries add `Scope.where(column)`, and
tests/test_isolation.py enumerates every route of the OpenAPI document to prove that nothing of
another customer comes back, so a list route that forgets it fails that test.

Cookie sessions are for the pages; a request authenticated by the cookie that changes something
must carry the ``X-Requested-With: fleetcare`` header, which a cross-site form cannot send (CSRF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from psycopg_pool import ConnectionPool

from api import auth

#: Path parameter → the query that gives the id of the customer owning that thing.
OWNERS: dict[str, str] = {
    "device_id": "SELECT coalesce(d.customer_id, s.customer_id) FROM devices d JOIN agents a ON a.id = d.agent_id "
                 "JOIN sites s ON s.id = a.site_id WHERE d.id = %s",
    "site_id": "SELECT customer_id FROM sites WHERE id = %s",
    "agent_id": "SELECT s.customer_id FROM agents a JOIN sites s ON s.id = a.site_id WHERE a.id = %s",
    "alarm_id": "SELECT coalesce(d.customer_id, s.customer_id) FROM alarms al JOIN agents a ON a.id = al.agent_id "
                "JOIN sites s ON s.id = a.site_id LEFT JOIN devices d ON d.id = al.device_id WHERE al.id = %s",
    "case_id": "SELECT customer_id FROM cases WHERE id = %s",
    "inspection_id": "SELECT customer_id FROM inspections WHERE id = %s",
    "customer_id": "SELECT id FROM customers WHERE id = %s",
    "contract_id": "SELECT customer_id FROM contracts WHERE id = %s",
    "callback_id": "SELECT customer_id FROM callbacks WHERE id = %s",
    "window_id": "SELECT customer_id FROM maintenance_windows WHERE id = %s",
    "notification_id": "SELECT coalesce(c.customer_id, r.customer_id, i.customer_id) FROM notifications n "
                       "LEFT JOIN cases c ON c.id = n.case_id LEFT JOIN reports r ON r.id = n.report_id "
                       "LEFT JOIN inspections i ON i.id = n.inspection_id WHERE n.id = %s",
}

#: Path parameters that name no thing of a customer's, or whose thing the route scopes itself:
#: a case action's verb, a report's month, a diagnostic request within its agent (the agent is
#: checked), and an API token (a user only ever sees their own).
NEUTRAL = frozenset({"action", "period", "request_id", "token_id"})

#: Routes ("METHOD /path") that a customer user may call although they change something, with the
#: values a path parameter may then take (None: any).
CUSTOMER_WRITES: dict[str, dict[str, frozenset[str]] | None] = {
    "POST /api/v1/cases/{case_id}/{action}": {"action": frozenset({"comment"})},
    "POST /api/v1/callbacks/{callback_id}": None,
    "POST /api/v1/auth/api-tokens": None,
    "DELETE /api/v1/auth/api-tokens/{token_id}": None,
    "POST /logout": None,
}

#: Routes a customer user may not read: the remote diagnostics of the service team.
STAFF_ONLY = frozenset({
    "GET /api/v1/agents/{agent_id}/diagnostics",
    "GET /api/v1/agents/{agent_id}/diagnostics/{request_id}",
})

#: Routes whose data belongs to no single customer, for principals who see every customer.
UNSCOPED_ONLY = frozenset({
    "GET /api/v1/ingest/rejected",
    "GET /api/v1/notifications",
})

#: Routes for admins only: the audit log names every customer's things and every user.
ADMIN_ONLY = frozenset({"GET /api/v1/audit"})

#: Routes anyone may call: the login itself, liveness, the API's own documents, the login page.
PUBLIC = frozenset({
    "POST /api/v1/auth/token", "GET /healthz", "GET /openapi.json", "GET /docs", "GET /docs/oauth2-redirect",
    "GET /redoc", "GET /login", "POST /login", "GET /static/{path}",
})

CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "fleetcare"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Scope:
    """The principal of a request and what it limits queries to (`principal` None: a public route)."""

    principal: auth.Principal | None
    token_sha256: str | None = None  # of the token that authenticated the request (streams re-check it)

    @property
    def customers(self) -> list[int] | None:
        """The customer ids visible (None: all)."""
        if self.principal is None or self.principal.customers is None:
            return None
        return sorted(self.principal.customers)

    def where(self, column: str) -> str:
        """A SQL condition limiting `column` (a customer id) to this scope; safe to embed, ids are ints.

        Embedded rather than bound so that it fits every query whatever its parameter style."""
        ids = self.customers
        if ids is None:
            return "TRUE"
        if not ids:
            return "FALSE"
        return f"{column} IN ({', '.join(str(int(i)) for i in ids)})"

    def sees(self, customer_id: int | None) -> bool:
        return self.principal is None or self.principal.may_see(customer_id)

    @property
    def staff(self) -> bool:
        return self.principal is not None and self.principal.role in ("admin", "engineer")

    @property
    def actor(self) -> str:
        return self.principal.username if self.principal else "anonymous"

    def actor_for(self, by: str | None) -> str:
        """The name recorded on what a request does: always the logged-in user; an integration that
        acts for a person names them in the body's `by`, kept beside it ("alice via crm-bridge")."""
        return self.actor if not by or by == self.actor else f"{by} via {self.actor}"

    def audit(self, conn: psycopg.Connection, action: str, target: str = "", **detail: Any) -> None:
        """One line of the audit log, in the caller's transaction."""
        auth.audit(conn, self.actor, action, target, **detail)


def route_key(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    method = "GET" if request.method == "HEAD" else request.method
    return f"{method} {path}"


def _token(request: Request) -> tuple[str | None, bool]:
    """The presented token and whether it came from the session cookie."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None, False
    cookie = request.cookies.get(auth.SESSION_COOKIE)
    return (cookie or None), bool(cookie)


def _unauthorized() -> HTTPException:
    return HTTPException(401, "log in first: POST /api/v1/auth/token, then send Authorization: Bearer <token>",
                         headers={"WWW-Authenticate": "Bearer"})


def access(request: Request) -> Scope:
    """The dependency of every route: authenticate, authorise the route, check the things in its path."""
    key = route_key(request)
    if key in PUBLIC:
        return Scope(None)
    token, from_cookie = _token(request)
    if not token:
        raise _unauthorized()
    pool: ConnectionPool = request.app.state.sync_pool
    with pool.connection(timeout=5.0) as conn:
        who = auth.resolve(conn, token)
        if who is None:
            raise _unauthorized()
        if from_cookie and request.method not in _SAFE \
                and request.headers.get(CSRF_HEADER, "").lower() != CSRF_VALUE:
            raise HTTPException(403, f"a change made with the session cookie needs the header "
                                     f"'X-Requested-With: {CSRF_VALUE}'")
        scope = Scope(who, auth.digest(token))
        _authorise(scope, key, request.path_params)
        for name, value in request.path_params.items():
            owner_sql = OWNERS.get(name)
            if owner_sql is None or scope.customers is None:
                continue
            ident = _id(name, value)
            row = None
            if -2**63 <= ident < 2**63:
                try:
                    row = conn.execute(owner_sql, (ident,)).fetchone()
                except psycopg.errors.NumericValueOutOfRange:  # beyond an int4 id column: nothing owns it
                    row = None
            if row is not None and not scope.sees(row[0]):
                raise HTTPException(404, f"{name.removesuffix('_id')} {ident} not found")
    request.state.scope = scope
    return scope


_ID = TypeAdapter(int)


def _id(name: str, value: Any) -> int:
    """The id the route will receive, parsed by the same rules FastAPI applies to an `int` path
    parameter ("4", "4.0" and "4.00" are all 4): checking a differently parsed value would let the
    route act on an id that was never checked. Fails closed: a value the check cannot read is refused."""
    try:
        return _ID.validate_python(value)
    except ValidationError as exc:  # the same answer as the route's own validation would give
        raise RequestValidationError([{**e, "loc": ("path", name)} for e in exc.errors()]) from None


def _authorise(scope: Scope, key: str, path_params: dict[str, Any]) -> None:
    assert scope.principal is not None
    role = scope.principal.role
    if key in ADMIN_ONLY and role != "admin":
        raise HTTPException(403, "for admins only")
    if key in UNSCOPED_ONLY and scope.customers is not None:
        raise HTTPException(403, "this shows data of every customer; your account sees only some")
    if role != "customer":
        return
    if key in STAFF_ONLY:
        raise HTTPException(403, "for the service team only")
    if key.split(" ", 1)[0] in _SAFE:
        return
    if key not in CUSTOMER_WRITES:
        raise HTTPException(403, "a customer account may read, comment on its cases and answer callbacks")
    allowed = CUSTOMER_WRITES[key] or {}
    for name, values in allowed.items():
        if str(path_params.get(name)) not in values:
            raise HTTPException(403, f"a customer account may only {', '.join(sorted(values))} here")


def all_routes(app: Any) -> list[Any]:
    """Every route of the app, including those of included routers (which FastAPI nests)."""
    out: list[Any] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            else:
                out.append(route)
    walk(app.routes)
    return out


def check_routes(app: Any) -> None:
    """Fail at startup for a route whose path parameters `access` does not know how to scope."""
    import re
    for route in all_routes(app):
        path = getattr(route, "path", "")
        for name in re.findall(r"{(\w+)(?::\w+)?}", path):
            if name not in OWNERS and name not in NEUTRAL and not path.startswith(("/static", "/docs")):
                raise RuntimeError(f"route {path}: path parameter {name!r} has no owner rule in api/access.py")
