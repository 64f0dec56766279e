"""Test clients of the API that are logged in: every /api/v1 route needs a token (api/access.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from api import auth


def make_user(db_url: str, role: str = "admin", *, customer: str | None = None,
              customers: list[str] | None = None, username: str | None = None) -> tuple[str, str, str]:
    """A new user and a session token of theirs: (username, password, token)."""
    username = username or f"{role}-{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with psycopg.connect(db_url, autocommit=True) as conn:
        uid = auth.add_user(conn, username, password, role, customer=customer, customers=customers, by="test")
        _, token = auth.issue_token(conn, uid, hours=12)
    return username, password, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def api_client(db_url: str, *, role: str = "admin", customer: str | None = None, **app_kw: Any) -> Iterator[TestClient]:
    """`TestClient(create_app(db_url, **app_kw))` logged in as a new user of `role` (an admin by default)."""
    from api.app import create_app
    username, _, token = make_user(db_url, role, customer=customer)
    with TestClient(create_app(db_url, **app_kw)) as client:
        client.headers.update(bearer(token))
        client.username = username  # type: ignore[attr-defined]  (what actions are recorded under)
        yield client
