"""Users, passwords, sessions and API tokens: who is asking, and which customers they may see.

Passwords are hashed with argon2id (argon2-cffi's defaults, rehashed when those change). A token is
32 random bytes shown once; only its SHA-256 is stored, so a database dump yields no usable token.
Login failures are limited per user name and client (`LoginLimiter`), and every change to users
and tokens is written to the audit log.

This module is the foundation of issue 8: `principal` resolves a bearer token or session cookie to
a `Principal` whose `customers` (None: all) is the scope every query will be limited by.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("admin", "engineer", "customer")
SESSION_COOKIE = "fleetcare_session"
SESSION_HOURS = 12.0
MIN_PASSWORD = 10

_hasher = PasswordHasher()


class AuthError(ValueError):
    """A user or token request that cannot be done (unknown customer, weak password, name taken…)."""


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str
    customers: frozenset[int] | None  # None: every customer

    def may_see(self, customer_id: int | None) -> bool:
        return self.customers is None or customer_id in self.customers

    @property
    def read_only(self) -> bool:
        return self.role == "customer"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def digest(token: str) -> str:
    """What is stored of a token: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()

#: Whether the token of a digest still holds (not revoked, not expired, its user enabled): what a
#: long-lived response (the live stream) asks again while it runs.
TOKEN_ALIVE_SQL = ("SELECT 1 FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_sha256 = %s "
                   "AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND NOT u.disabled")


AUDIT_SQL = "INSERT INTO audit_log (actor, action, target, detail) VALUES (%s, %s, %s, %s)"


def audit(conn: psycopg.Connection, actor: str, action: str, target: str = "", **detail: Any) -> None:
    conn.execute(AUDIT_SQL, (actor, action, target, json.dumps(detail, default=str)))


def add_user(conn: psycopg.Connection, username: str, password: str, role: str, *, customer: str | None = None,
             customers: list[str] | None = None, by: str = "cli") -> int:
    """A new user; `customer` (key) for a customer user, `customers` (keys) to limit an engineer."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if (role == "customer") != (customer is not None):
        raise AuthError("a customer user needs --customer, and only a customer user has one")

    def customer_id(key: str) -> int:
        row = conn.execute("SELECT id FROM customers WHERE key = %s", (key,)).fetchone()
        if row is None:
            raise AuthError(f"customer {key!r} does not exist")
        return row[0]

    own = customer_id(customer) if customer else None
    assigned = [customer_id(k) for k in customers or []]
    if assigned and role != "engineer":
        raise AuthError("only an engineer is assigned to customers")
    digest = hash_password(password)
    try:
        with conn.transaction():
            uid = conn.execute("INSERT INTO users (username, password_hash, role, customer_id, customers) "
                               "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                               (username, digest, role, own, assigned)).fetchone()[0]
            audit(conn, by, "user.add", username, role=role, customer=customer, customers=customers or [])
    except psycopg.errors.UniqueViolation:
        raise AuthError(f"user {username!r} exists already") from None
    except psycopg.errors.CheckViolation:
        raise AuthError(f"user name {username!r}: letters, digits, '_', '.', '@' or '-', at most 100") from None
    return uid


def disable_user(conn: psycopg.Connection, username: str, by: str = "cli") -> None:
    """Disabled users cannot log in, and every session and token of theirs is revoked at once."""
    with conn.transaction():
        row = conn.execute("UPDATE users SET disabled = true WHERE username = %s RETURNING id", (username,)).fetchone()
        if row is None:
            raise AuthError(f"no user {username!r}")
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL", (row[0],))
        audit(conn, by, "user.disable", username)


def list_users(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT u.id, u.username, u.role, c.key, u.disabled, u.created_at, "
        "  coalesce((SELECT array_agg(k.key ORDER BY k.key) FROM customers k WHERE k.id = ANY(u.customers)), '{}') "
        "FROM users u LEFT JOIN customers c ON c.id = u.customer_id ORDER BY u.username").fetchall()
    return [{"id": r[0], "username": r[1], "role": r[2], "customer": r[3], "disabled": r[4], "created_at": r[5],
             "customers": list(r[6])} for r in rows]


def check_password(conn: psycopg.Connection, username: str, password: str) -> int | None:
    """The user's id when the password is right and the user enabled; None otherwise (same time either
    way: an unknown name is verified against a dummy hash)."""
    row = conn.execute("SELECT id, password_hash, disabled FROM users WHERE username = %s", (username,)).fetchone()
    digest = row[1] if row else _DUMMY
    try:
        _hasher.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row[2]:
        return None
    if _hasher.check_needs_rehash(digest):
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (_hasher.hash(password), row[0]))
    return row[0]


_DUMMY = _hasher.hash("not a password of anyone's")


def issue_token(conn: psycopg.Connection, user_id: int, kind: str = "session", name: str = "",
                hours: float | None = SESSION_HOURS, by: str = "") -> tuple[int, str]:
    """A new token (shown once) and its id; `hours` None: until revoked (integrations' API tokens)."""
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(hours=hours) if hours else None
    tid = conn.execute("INSERT INTO api_tokens (user_id, kind, name, token_sha256, expires_at) "
                       "VALUES (%s, %s, %s, %s, %s) RETURNING id", (user_id, kind, name, digest(token), expires)
                       ).fetchone()[0]
    if kind == "api":
        audit(conn, by or str(user_id), "token.create", name, token_id=tid, user_id=user_id)
    return tid, token


def revoke_token(conn: psycopg.Connection, token_id: int, by: str) -> bool:
    row = conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id",
                       (token_id,)).fetchone()
    if row:
        audit(conn, by, "token.revoke", str(token_id))
    return row is not None


def revoke_session(conn: psycopg.Connection, token: str, by: str) -> bool:
    """Log out: revoke the session token itself (the pages know its value, not its id)."""
    row = conn.execute("SELECT id FROM api_tokens WHERE token_sha256 = %s AND kind = 'session'",
                       (digest(token),)).fetchone()
    return row is not None and revoke_token(conn, row[0], by)


@dataclass(frozen=True)
class Login:
    """What a login attempt came to: a session token and the user's role, or neither (wrong name or
    password), or a wait (`retry_after` > 0: too many tries)."""
    token: str | None
    role: str | None
    retry_after: float = 0.0


def log_in(conn: psycopg.Connection, username: str, password: str, client: str, via: str | None = None) -> Login:
    """The one login of the token route and the login page: the limit, the password, the audit line
    of a failure, a new session."""
    wait = LOGINS.attempt(username, client)
    if wait > 0:
        return Login(None, None, wait)
    with conn.transaction():
        uid = check_password(conn, username, password)
        if uid is None:
            audit(conn, username, "login.failed", client, **({"via": via} if via else {}))
            return Login(None, None)
        LOGINS.succeeded(username, client)
        role = conn.execute("SELECT role FROM users WHERE id = %s", (uid,)).fetchone()[0]
        _, token = issue_token(conn, uid, "session")
    return Login(token, role)


def resolve(conn: psycopg.Connection, token: str) -> Principal | None:
    """The principal of a live token (not revoked, not expired, its user enabled), else None."""
    row = conn.execute(
        "SELECT u.id, u.username, u.role, u.customer_id, u.customers, t.id, "
        "  t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute' "
        "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_sha256 = %s "
        "AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()) AND NOT u.disabled",
        (digest(token),)).fetchone()
    if row is None:
        return None
    uid, username, role, own, assigned, token_id, stale = row
    if stale:  # to the minute: a read-only request should not cost a write every time
        conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = %s", (token_id,))
    if role == "admin":
        scope = None
    elif role == "customer":
        scope = frozenset({own})
    else:
        scope = frozenset(assigned) if assigned else None
    return Principal(uid, username, role, scope)


class LoginLimiter:  # one per process: LOGINS below
    """At most `limit` tries per user name and client address in `window_s`, of which the successful
    ones are forgotten; further tries are refused (429) until the window has passed. In memory, per
    API process.

    A try is counted when it begins (`attempt`), before the slow password check, so that parallel
    guesses cannot all pass the check before any is counted; a login that succeeds clears its count.
    Keys whose tries have all left the window are dropped, so names that anyone may try cost no
    memory for longer than the window."""

    SWEEP_ABOVE = 10_000

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._tries: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._tries.get(key)
        if q is None:
            return deque()
        while q and now - q[0] > self.window_s:
            q.popleft()
        if not q:
            del self._tries[key]
        return q

    def _sweep(self, now: float) -> None:
        for key in [k for k, q in self._tries.items() if not q or now - q[-1] > self.window_s]:
            del self._tries[key]

    def retry_after(self, username: str, client: str, now: float | None = None) -> float:
        """Seconds until the next try is allowed (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._recent((username, client), now)
            return 0.0 if len(q) < self.limit else self.window_s - (now - q[0])

    def attempt(self, username: str, client: str, now: float | None = None) -> float:
        """Begin a try: 0 when it may go ahead (and it is counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._recent((username, client), now)
            if len(q) >= self.limit:
                return self.window_s - (now - q[0])
            if len(self._tries) >= self.SWEEP_ABOVE:
                self._sweep(now)
            q.append(now)
            self._tries[(username, client)] = q
            return 0.0

    def succeeded(self, username: str, client: str) -> None:
        with self._lock:
            self._tries.pop((username, client), None)


#: The one login limiter of this process, shared by the API's token route and the login page.
LOGINS = LoginLimiter()
