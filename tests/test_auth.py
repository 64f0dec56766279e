"""Users, passwords, tokens and the login limit against the real PostgreSQL (the foundation of the
access control of issue 8): argon2 hashes, tokens stored only as hashes, revocation, audit."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from fastapi.testclient import TestClient

from api import auth
from api.app import create_app


@pytest.fixture
def conn(db_url: str):
    c = psycopg.connect(db_url, autocommit=True)
    c.execute("INSERT INTO customers (key, name) VALUES ('acme', 'Acme'), ('globex', 'Globex')")
    yield c
    c.close()


def test_users_hash_passwords_and_scope_their_customers(conn: psycopg.Connection) -> None:
    auth.add_user(conn, "root", "correct horse battery", "admin")
    auth.add_user(conn, "carl", "carl's long secret", "customer", customer="acme")
    auth.add_user(conn, "li.wei", "engineer secret 1", "engineer", customers=["globex"])
    digest = conn.execute("SELECT password_hash FROM users WHERE username = 'root'").fetchone()[0]
    assert digest.startswith("$argon2id$") and "correct horse" not in digest
    for bad, match in ((("x", "short", "admin"), "at least 10"), (("y", "long enough pw", "customer"), "needs --customer"),
                       (("z", "long enough pw", "customer", "nobody"), "does not exist"),
                       (("root", "long enough pw", "admin"), "exists already"),
                       (("bad name", "long enough pw", "admin"), "user name")):
        with pytest.raises(auth.AuthError, match=match):
            auth.add_user(conn, bad[0], bad[1], bad[2], customer=bad[3] if len(bad) > 3 else None)
    acme, globex = (r[0] for r in conn.execute("SELECT id FROM customers ORDER BY key"))
    assert auth.check_password(conn, "carl", "wrong") is None and auth.check_password(conn, "ghost", "x") is None
    uid = auth.check_password(conn, "carl", "carl's long secret")
    _, token = auth.issue_token(conn, uid)
    assert conn.execute("SELECT count(*) FROM api_tokens WHERE token_sha256 LIKE %s", (token[:8] + "%",)).fetchone()[0] == 0
    who = auth.resolve(conn, token)
    assert who.role == "customer" and who.customers == {acme} and who.may_see(acme) and not who.may_see(globex)
    eng = auth.resolve(conn, auth.issue_token(conn, auth.check_password(conn, "li.wei", "engineer secret 1"))[1])
    assert eng.customers == {globex}
    assert auth.resolve(conn, auth.issue_token(conn, 1)[1]).customers is None  # admin: everything
    auth.disable_user(conn, "carl")
    assert auth.resolve(conn, token) is None and auth.check_password(conn, "carl", "carl's long secret") is None
    actions = [a for (a,) in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("user.add") == 3 and "user.disable" in actions


def test_token_endpoint_limits_failures_and_api_tokens_revoke(conn: psycopg.Connection, db_url: str) -> None:
    auth.add_user(conn, "root", "correct horse battery", "admin")
    with TestClient(create_app(db_url)) as client:
        r = client.post("/api/v1/auth/token", data={"username": "root", "password": "correct horse battery"})
        assert r.status_code == 200 and r.json()["token_type"] == "bearer"
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert client.get("/api/v1/auth/me", headers=bearer).json()["role"] == "admin"
        assert client.get("/api/v1/auth/me").status_code == 401
        assert client.get("/api/v1/auth/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401
        made = client.post("/api/v1/auth/api-tokens", json={"name": "ticketing"}, headers=bearer).json()
        integration = {"Authorization": f"Bearer {made['token']}"}
        assert client.get("/api/v1/auth/me", headers=integration).status_code == 200
        assert [t["name"] for t in client.get("/api/v1/auth/api-tokens", headers=bearer).json()] == ["ticketing"]
        assert client.delete(f"/api/v1/auth/api-tokens/{made['id']}", headers=bearer).status_code == 204
        assert client.get("/api/v1/auth/me", headers=integration).status_code == 401
        assert client.delete(f"/api/v1/auth/api-tokens/{made['id']}", headers=bearer).status_code == 404
        # five wrong passwords, then even the right one waits
        for _ in range(5):
            assert client.post("/api/v1/auth/token", data={"username": "root", "password": "guess"}).status_code == 401
        r = client.post("/api/v1/auth/token", data={"username": "root", "password": "correct horse battery"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert client.post("/api/v1/auth/token", data={"username": "root"}).status_code == 422
    failed = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'login.failed'").fetchone()[0]
    assert failed == 5


def test_login_limiter_forgets_after_the_window() -> None:
    lim = auth.LoginLimiter(limit=2, window_s=60)
    assert lim.attempt("u", "c", now=0) == 0 and lim.attempt("u", "c", now=1) == 0
    assert lim.attempt("u", "c", now=1.5) == pytest.approx(58.5)  # refused, and not counted
    assert lim.retry_after("u", "c", now=2) == pytest.approx(58)
    assert lim.retry_after("u", "other", now=2) == 0
    assert lim.retry_after("u", "c", now=61.5) == 0


def test_user_command_line(conn: psycopg.Connection, db_url: str) -> None:
    env = dict(os.environ, FLEETCARE_DATABASE_URL=db_url)

    def fleetcare(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleetcare.cli", "user", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    r = fleetcare("add", "--username", "carl", "--password", "carl's long secret", "--role", "customer",
                  "--customer", "acme")
    assert r.returncode == 0, r.stderr
    assert "carl" in fleetcare("list").stdout
    r = fleetcare("add", "--username", "eve", "--password", "short", "--role", "admin")
    assert r.returncode == 2 and "at least 10" in r.stderr
    assert fleetcare("disable", "--username", "carl").returncode == 0
    assert "disabled" in fleetcare("list").stdout
    assert fleetcare("disable", "--username", "nobody").returncode == 2
