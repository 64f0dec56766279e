"""The console's and portal's pages without a browser (FastAPI's TestClient): login and the session
cookie, redirects to the login form, customer isolation of pages, CSRF on cookie changes, languages,
the static files, and the live device stream."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api import auth
from api.app import create_app
from api.web import i18n
from tests.api_support import bearer, make_user, read_events
from tests.console_support import build_fleet

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def fleet(db_url: str) -> dict[str, Any]:
    return build_fleet(db_url, history_s=3600)


@pytest.fixture
def app_client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url), follow_redirects=False) as client:
        yield client


def login(client: TestClient, username: str, password: str, next_: str = "") -> Any:
    return client.post("/login", data={"username": username, "password": password, "next": next_}, headers=HTML)


def test_i18n_files_have_the_same_keys_and_fields() -> None:
    tables = i18n.strings()
    assert set(tables) == {"en", "zh-CN"}
    assert set(tables["en"]) == set(tables["zh-CN"]), set(tables["en"]) ^ set(tables["zh-CN"])
    for key, text in tables["en"].items():
        assert text.strip() and tables["zh-CN"][key].strip(), key
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", tables["zh-CN"][key])), key


def test_every_string_the_pages_use_exists() -> None:
    """Every t("…") of a template and T("…") of a script names a key of the file (none shows as a key)."""
    from importlib import resources
    keys = set(i18n.strings()["en"])
    used: set[str] = set()
    for f in resources.files("api.web").joinpath("templates").iterdir():
        used |= set(re.findall(r"""\bt\(["']([\w.]+)["']\s*[,)]""", f.read_text("utf-8")))
    for f in resources.files("api").joinpath("static", "js").iterdir():
        used |= set(re.findall(r"""\bT\(["']([\w.]+)["']\s*[,)]""", f.read_text("utf-8")))
    assert used and used <= keys, used - keys


def test_language_from_query_cookie_and_accept_language(app_client: TestClient) -> None:
    assert "登录" in app_client.get("/login", headers={**HTML, "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).text
    assert ">Log in<" in app_client.get("/login", headers={**HTML, "Accept-Language": "fr, en;q=0.5"}).text
    r = app_client.get("/login?lang=zh-CN", headers={**HTML, "Accept-Language": "en"})
    assert 'lang="zh-CN"' in r.text and r.cookies.get(i18n.COOKIE) == "zh-CN"
    assert 'lang="zh-CN"' in app_client.get("/login", headers={**HTML, "Accept-Language": "en"}).text  # remembered
    assert i18n.from_accept_language("en;q=0.4, zh-Hans;q=0.8") == "zh-CN"
    assert i18n.from_accept_language("") == "en"


def test_login_sets_the_session_cookie_and_lands_by_role(db_url: str, fleet: dict[str, Any],
                                                        app_client: TestClient) -> None:
    eng, eng_pw, _ = make_user(db_url, "engineer")
    cust, cust_pw, _ = make_user(db_url, "customer", customer="acme")
    r = login(app_client, eng, eng_pw)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{auth.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; https sets Secure
    page = app_client.get("/", headers=HTML)
    assert page.status_code == 200 and 'id="fleet"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert app_client.get("/login", headers=HTML).headers["location"] == "/"  # logged in already

    app_client.cookies.clear()
    r = login(app_client, cust, cust_pw)
    assert r.status_code == 303 and r.headers["location"] == "/portal"
    assert app_client.get("/portal", headers=HTML).status_code == 200
    assert app_client.get("/", headers=HTML).headers["location"] == "/portal"  # the console is the service team's
    assert app_client.get("/cases", headers=HTML).headers["location"] == "/portal"

    app_client.cookies.clear()
    r = login(app_client, eng, eng_pw, next_=f"/devices/{fleet['devices']['sw1']}")
    assert r.headers["location"] == f"/devices/{fleet['devices']['sw1']}"
    app_client.cookies.clear()
    assert login(app_client, eng, eng_pw, next_="//evil.example/x").headers["location"] == "/"


def test_https_login_sets_a_secure_cookie(db_url: str) -> None:
    eng, pw, _ = make_user(db_url, "engineer")
    with TestClient(create_app(db_url), base_url="https://console.example", follow_redirects=False) as client:
        r = login(client, eng, pw)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_wrong_password_shows_the_form_again_then_the_limit(db_url: str, app_client: TestClient) -> None:
    eng, _, _ = make_user(db_url, "engineer")
    r = login(app_client, eng, "not the password")
    assert r.status_code == 401 and 'id="login-error"' in r.text and "set-cookie" not in r.headers
    assert f'value="{eng}"' in r.text
    for _ in range(4):
        login(app_client, eng, "still not it")
    r = login(app_client, eng, "and again")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and 'id="login-error"' in r.text
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log WHERE action = 'login.failed' AND actor = %s",
                            (eng,)).fetchone()[0] == 5


def test_a_page_without_session_redirects_to_login_and_the_api_still_answers_401(
        fleet: dict[str, Any], app_client: TestClient) -> None:
    sw1 = fleet["devices"]["sw1"]
    r = app_client.get(f"/devices/{sw1}?lang=en", headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2Fdevices%2F{sw1}%3Flang%3Den"
    assert app_client.get("/", headers=HTML).headers["location"] == "/login?next=%2F"
    r = app_client.get("/api/v1/devices", headers=HTML)
    assert r.status_code == 401 and r.json()["detail"].startswith("log in first")
    assert app_client.get("/", headers={"Accept": "application/json"}).status_code == 401  # a script, not a person
    r = app_client.get("/login", headers=HTML)
    assert r.status_code == 200 and 'name="password"' in r.text


def test_a_customer_cannot_open_another_customers_pages(db_url: str, fleet: dict[str, Any],
                                                       app_client: TestClient) -> None:
    cust, pw, _ = make_user(db_url, "customer", customer="acme")
    assert login(app_client, cust, pw).status_code == 303
    own, other = fleet["devices"]["sw1"], fleet["devices"]["ups2"]
    page = app_client.get(f"/devices/{own}", headers=HTML)
    assert page.status_code == 200 and "SW1" in page.text and 'id="diag-panel"' not in page.text
    for path in (f"/devices/{other}", f"/cases/{fleet['cases']['ups2']}", "/devices/999999", "/devices/abc"):
        r = app_client.get(path, headers=HTML)
        assert r.status_code == 404, path
        assert 'id="error-page"' in r.text and "UPS2" not in r.text
    assert app_client.get(f"/cases/{fleet['cases']['sw1']}", headers=HTML).status_code == 200
    assert app_client.get(f"/api/v1/devices/{other}").status_code == 404  # the API agrees


def test_engineer_pages_render(db_url: str, fleet: dict[str, Any], app_client: TestClient) -> None:
    eng, pw, _ = make_user(db_url, "engineer")
    login(app_client, eng, pw)
    sw1 = fleet["devices"]["sw1"]
    for path, marker in ((f"/devices/{sw1}", 'id="diag-panel"'), ("/cases", 'id="queue"'),
                         (f"/cases/{fleet['cases']['sw1']}", 'id="act-acknowledge"'),
                         ("/inspections", 'id="inspections"'), (f"/inspections/{fleet['inspection']}", 'id="checklist"'),
                         ("/portal", 'id="portal-devices"')):
        r = app_client.get(path, headers=HTML)
        assert r.status_code == 200 and marker in r.text, path
    data = re.search(r'<script type="application/json" id="page-data">(.*?)</script>',
                     app_client.get(f"/devices/{sw1}", headers=HTML).text).group(1)
    page = json.loads(data)
    assert page["device_id"] == sw1 and page["agent_id"] and page["user"] == eng and page["staff"] is True


def test_cookie_changes_need_the_csrf_header(db_url: str, fleet: dict[str, Any], app_client: TestClient) -> None:
    eng, pw, _ = make_user(db_url, "engineer")
    login(app_client, eng, pw)
    case = fleet["cases"]["sw1"]
    r = app_client.post(f"/api/v1/cases/{case}/acknowledge", json={"by": eng})
    assert r.status_code == 403 and "X-Requested-With" in r.json()["detail"]
    r = app_client.post(f"/api/v1/cases/{case}/acknowledge", json={"by": eng}, headers={"X-Requested-With": "fleetcare"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    assert app_client.post("/logout").status_code == 403  # the logout too
    r = app_client.post("/logout", headers={"X-Requested-With": "fleetcare"})
    assert r.status_code == 204 and f'{auth.SESSION_COOKIE}=""' in r.headers["set-cookie"]
    app_client.cookies.clear()


def test_logout_revokes_the_session(db_url: str, app_client: TestClient) -> None:
    eng, pw, _ = make_user(db_url, "engineer")
    login(app_client, eng, pw)
    token = app_client.cookies.get(auth.SESSION_COOKIE)
    assert token and app_client.get("/api/v1/auth/me").status_code == 200
    assert app_client.post("/logout", headers={"X-Requested-With": "fleetcare"}).status_code == 204
    app_client.cookies.clear()
    assert app_client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401  # revoked, not just forgotten


def test_static_files_are_public_and_vendored_with_their_licence(app_client: TestClient) -> None:
    r = app_client.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert r.status_code == 200 and "uPlot" in r.text[:2000]
    assert "MIT License" in app_client.get("/static/vendor/uplot/LICENSE").text
    assert "uPlot" in app_client.get("/static/vendor/README.md").text
    for name in ("common", "fleet", "device", "cases", "case", "inspections", "inspection", "portal"):
        assert app_client.get(f"/static/js/{name}.js").status_code == 200, name
    assert app_client.get("/static/console.css").status_code == 200




def test_device_stream_sends_a_snapshot_then_changes(db_url: str, fleet: dict[str, Any],
                                                     app_client: TestClient) -> None:
    _, _, token = make_user(db_url, "engineer")
    sw1, ups1 = fleet["devices"]["sw1"], fleet["devices"]["ups1"]

    def change() -> None:
        time.sleep(1.5)
        with psycopg.connect(db_url, autocommit=True) as conn:  # as collector/maintenance.liveness does
            conn.execute("UPDATE devices SET status = 'offline', status_since = now() WHERE id = %s", (sw1,))

    thread = threading.Thread(target=change)
    thread.start()
    events = read_events(app_client, f"/api/v1/stream/devices?ids={sw1},{ups1}&max_seconds=4", bearer(token))
    thread.join()
    names = [n for n, _ in events]
    assert names[0] == "hello" and names[-1] == "bye"
    batches = [d["items"] for n, d in events if n == "devices"]
    snapshot = {d["id"]: d for d in batches[0]}
    assert set(snapshot) == {sw1, ups1} and snapshot[sw1]["status"] == "online"
    assert snapshot[sw1]["open_case"]["id"] == fleet["cases"]["sw1"] and snapshot[ups1]["open_case"] is None
    later = [d for batch in batches[1:] for d in batch]
    assert [(d["id"], d["status"]) for d in later] == [(sw1, "offline")]  # once, and only what changed


def test_device_stream_is_scoped_to_the_customer(db_url: str, fleet: dict[str, Any], app_client: TestClient) -> None:
    _, _, token = make_user(db_url, "customer", customer="acme")
    ids = ",".join(str(i) for i in fleet["devices"].values())
    events = read_events(app_client, f"/api/v1/stream/devices?ids={ids}&max_seconds=1", bearer(token))
    seen = {d["id"] for n, data in events if n == "devices" for d in data["items"]}
    assert seen == {fleet["devices"]["sw1"], fleet["devices"]["ups1"]}
    r = app_client.get("/api/v1/stream/devices?max_seconds=0", headers=bearer(token))
    assert r.status_code == 422
    assert app_client.get("/api/v1/stream/devices?max_seconds=1").status_code == 401


def test_a_customer_can_log_out(db_url: str, fleet: dict[str, Any], app_client: TestClient) -> None:
    cust, pw, _ = make_user(db_url, "customer", customer="acme")
    assert login(app_client, cust, pw).status_code == 303
    assert app_client.get("/portal", headers=HTML).status_code == 200
    assert app_client.post("/logout", headers={"X-Requested-With": "fleetcare"}).status_code == 204
    assert app_client.get("/portal", headers=HTML).status_code == 303  # the session is gone: to the login
