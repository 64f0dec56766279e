"""The holes a security review of access control found, each kept closed by a test: ids spelled as
the route's parser also reads them ("4.0"), a live stream outliving its session, ids beyond int4 in
the stream, parallel login guesses, login from another site, the login limiter's memory, pages
that told a missing thing from another customer's, and updates of `devices` staying HOT.
Fixtures: `world` / `app_client` of tests/test_isolation.py (acme is ours, globex the other)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api import auth
from tests.api_support import bearer, make_user, read_events
from tests.test_api import fleet  # noqa: F401  (fixture used by `world`)
from tests.test_isolation import app_client, world  # noqa: F401  (fixtures)

HTML = {"Accept": "text/html,application/xhtml+xml"}
CSRF = {"X-Requested-With": "fleetcare"}




# --------------------------------------------------------------------------------------------------
# 1. "<id>.0" in the path: FastAPI reads it as the id, so access.py must too (it once used int(),
#    which refused "12.0", skipped the owner check, and every route reached another customer's thing).

def test_customer_reads_another_customers_things_with_a_dotted_id(app_client: TestClient,
                                                                 world: dict[str, Any]) -> None:
    _, _, token = make_user(world["db_url"], "customer", customer="acme")
    h = bearer(token)
    o = world["other"]
    # the plain id is refused, as it should be
    assert app_client.get(f"/api/v1/devices/{o['device_id']}", headers=h).status_code == 404
    leaks = []
    for path, params in [
        (f"/api/v1/devices/{o['device_id']}.0", {}),
        (f"/api/v1/devices/{o['device_id']}.0/events", {}),
        (f"/api/v1/devices/{o['device_id']}.0/health", {}),
        (f"/api/v1/devices/{o['device_id']}.0/timeline", {}),
        (f"/api/v1/devices/{o['device_id']}.0/archive", {}),
        (f"/api/v1/devices/{o['device_id']}.0/metrics", {"metric": "cpu_percent"}),
        (f"/api/v1/cases/{o['case_id']}.0", {}),
        (f"/api/v1/inspections/{o['inspection_id']}.0", {}),
        (f"/api/v1/alarms/{o['alarm_id']}.0", {}),
        (f"/api/v1/agents/{o['agent_id']}.0", {}),
        (f"/api/v1/contracts/{o['contract_id']}.0", {}),
        (f"/api/v1/customers/{o['customer_id']}.0/reports", {}),
        (f"/api/v1/customers/{o['customer_id']}.0/reports/{o['period']}.html", {}),
    ]:
        r = app_client.get(path, params=params, headers=h)
        if r.status_code < 400:
            leaks.append(f"GET {path} -> {r.status_code}: {r.text[:120]}")
    # the pages too
    r = app_client.get(f"/devices/{o['device_id']}.0", headers={**h, **HTML})
    if r.status_code == 200:
        leaks.append(f"page /devices/{o['device_id']}.0 -> 200 ({'UPS2' in r.text and 'shows UPS2'})")
    assert leaks == []


def test_customer_comments_on_another_customers_case_with_a_dotted_id(app_client: TestClient,
                                                                     world: dict[str, Any]) -> None:
    _, _, token = make_user(world["db_url"], "customer", customer="acme")
    theirs = world["cases"]["globex"]
    r = app_client.post(f"/api/v1/cases/{theirs}.0/comment", json={"text": "written by acme"},
                        headers=bearer(token))
    assert r.status_code == 404, f"{r.status_code}: {r.text[:200]}"


def test_customer_answers_another_customers_callback_with_a_dotted_id(app_client: TestClient,
                                                                     world: dict[str, Any]) -> None:
    _, _, token = make_user(world["db_url"], "customer", customer="acme")
    r = app_client.post(f"/api/v1/callbacks/{world['other']['callback_id']}.0",
                        json={"resolved": True, "satisfaction": 1, "comment": "acme was here"}, headers=bearer(token))
    assert r.status_code == 404, f"{r.status_code}: {r.text[:200]}"


def test_limited_engineer_changes_another_customers_things_with_a_dotted_id(app_client: TestClient,
                                                                            world: dict[str, Any]) -> None:
    _, _, token = make_user(world["db_url"], "engineer", customers=["acme"])
    h = bearer(token)
    o = world["other"]
    done = []
    r = app_client.post(f"/api/v1/cases/{o['case_id']}.0/acknowledge", json={}, headers=h)
    done.append(("acknowledge globex case", r.status_code))
    r = app_client.put(f"/api/v1/devices/{o['device_id']}.0/archive", json={"notes": "acme engineer"}, headers=h)
    done.append(("edit globex archive", r.status_code))
    r = app_client.delete(f"/api/v1/maintenance-windows/{o['window_id']}.0", headers=h)
    done.append(("delete globex window", r.status_code))
    r = app_client.post(f"/api/v1/notifications/{o['notification_id']}.0/retry", headers=h)
    done.append(("retry globex notification", r.status_code))
    assert [d for d in done if d[1] < 400] == []


# --------------------------------------------------------------------------------------------------
# 2. The SSE stream

def test_stream_with_an_id_beyond_int4_is_refused_not_crashed(app_client: TestClient, world: dict[str, Any]) -> None:
    """`ids` allows 10 digits; 9999999999 passes the pattern, then `%(ids)s::int4[]` raises a DataError
    inside the generator after the 200 and the headers went out: the stream dies (ASGI exception), and a
    browser's EventSource would reconnect to it every second. Expected: 422 before streaming, or a
    clean stream."""
    try:
        r = app_client.get("/api/v1/stream/devices?ids=9999999999&max_seconds=1",
                           headers=bearer(world["admin_token"]))
    except Exception as exc:  # noqa: BLE001 - what the server does is the point
        pytest.fail(f"the stream crashed: {type(exc).__name__}: {exc}")
    assert r.status_code == 422 or (r.status_code == 200 and "event: bye" in r.text), r.text[:300]


def test_stream_stops_when_the_session_is_revoked(app_client: TestClient, world: dict[str, Any]) -> None:
    """Logout / `fleetcare user disable` revoke the token, but an open stream keeps sending the
    account's devices for up to max_seconds (default 300, up to 3600): the scope is checked once."""
    db_url = world["db_url"]
    username, _, token = make_user(db_url, "customer", customer="acme")
    sw1 = world["fleet"]["sw1"]

    def revoke_then_change() -> None:
        time.sleep(1.2)
        with psycopg.connect(db_url, autocommit=True) as conn:
            auth.disable_user(conn, username, by="test")
            conn.execute("UPDATE devices SET status = 'offline', status_detail = 'after-revoke' WHERE id = %s",
                         (sw1,))

    t = threading.Thread(target=revoke_then_change)
    t.start()
    events = read_events(app_client, f"/api/v1/stream/devices?ids={sw1}&max_seconds=4", bearer(token))
    t.join()
    # the token is dead for every other request…
    assert app_client.get("/api/v1/devices", headers=bearer(token)).status_code == 401
    # …but the stream went on
    after = [d for n, data in events if n == "devices" for d in data["items"] if d["status_detail"] == "after-revoke"]
    assert after == [], f"the revoked session still received {after}"


# --------------------------------------------------------------------------------------------------
# 3. Login

def test_login_limit_holds_under_concurrent_guesses(app_client: TestClient, world: dict[str, Any]) -> None:
    """The limiter is checked before the (slow) argon2 verify and counted after it, without holding
    anything in between: parallel guesses all pass the check. The route is sync (thread pool), so
    20 simultaneous wrong passwords get 20 verdicts instead of 5 then 429s."""
    username, _, _ = make_user(world["db_url"], "engineer")
    results: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def guess(i: int) -> None:
        barrier.wait()
        r = app_client.post("/api/v1/auth/token", data={"username": username, "password": f"wrong-{i:06d}"})
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verified = results.count(401)
    assert verified <= auth.LOGINS.limit, f"{verified} passwords were tried, the limit is {auth.LOGINS.limit}: {results}"


# --------------------------------------------------------------------------------------------------
# 4. Migration 010 on the hot `devices` table

def _hot_ratio(db_url: str, device_id: int, n: int = 60) -> float:
    """Update a device's last_seen in `n` separate transactions, as the collector does on every
    telemetry batch; the share of those updates PostgreSQL could do as HOT updates."""
    def stats() -> tuple[int, int]:
        with psycopg.connect(db_url, autocommit=True) as c:
            return c.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                             "WHERE relname = 'devices'").fetchone()
    before = stats()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM devices")  # room on the page, as a steady state would have
        for _ in range(n):
            conn.execute("UPDATE devices SET last_seen = clock_timestamp(), received_at = now() WHERE id = %s",
                         (device_id,))
    deadline = time.monotonic() + 10
    while True:  # the backend's statistics are flushed when it disconnects
        after = stats()
        if after[0] - before[0] >= n or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return (after[1] - before[1]) / max(1, after[0] - before[0])


def test_telemetry_updates_of_devices_stay_hot(db_url: str, fleet: dict[str, int]) -> None:  # noqa: F811
    """last_seen moves with every telemetry batch, and migration 010's trigger then writes
    changed_xid: neither column may be indexed, or no such update could be HOT (each would add an
    entry to every index of devices, and bloat them)."""
    ratio = _hot_ratio(db_url, fleet["sw1"])
    assert ratio > 0.8, f"only {ratio:.0%} of last_seen updates are HOT"


def test_login_form_refuses_a_cross_site_post(app_client: TestClient, world: dict[str, Any]) -> None:
    """Login CSRF: any site can auto-submit a form to POST /login with the attacker's own credentials;
    the answer sets `fleetcare_session` in the victim's browser (a top-level POST response may set a
    SameSite=Lax cookie), who then works in the attacker's account (comments, answers typed into it).
    Neither an Origin/Referer check nor a token guards the form (CSP form-action only binds our pages)."""
    username, password, _ = make_user(world["db_url"], "customer", customer="acme")
    r = app_client.post("/login", data={"username": username, "password": password, "next": "/portal"},
                        headers={"Origin": "https://evil.example", "Referer": "https://evil.example/x"},
                        follow_redirects=False)
    assert auth.SESSION_COOKIE not in r.cookies, f"{r.status_code}: a cross-site login set the session cookie"


def test_login_limiter_forgets_what_it_no_longer_needs() -> None:
    """Anyone may try any user name: a name's tries are dropped once they have left the window, when
    it is asked about and by a sweep once many names are held, so such requests cannot grow memory."""
    limiter = auth.LoginLimiter(limit=5, window_s=300.0)
    for i in range(limiter.SWEEP_ABOVE):
        limiter.attempt(f"nobody-{i}", "203.0.113.9", now=0.0)
    assert len(limiter._tries) == limiter.SWEEP_ABOVE
    limiter.attempt("someone", "203.0.113.9", now=10_000.0)  # long after every window: the sweep
    assert len(limiter._tries) == 1
    limiter.attempt("nobody-1", "203.0.113.9", now=10_000.0)
    assert limiter.retry_after("nobody-1", "203.0.113.9", now=20_000.0) == 0 and len(limiter._tries) == 1


# --------------------------------------------------------------------------------------------------
# 5. Pages: a missing thing and another customer's thing must look the same (no probing)

def test_case_and_inspection_pages_answer_alike_for_missing_and_foreign_ids(app_client: TestClient,
                                                                            world: dict[str, Any]) -> None:
    """/cases/{id} and /inspections/{id} never look their thing up: a missing id renders the page
    (200) while another customer's answers 404 — so a customer can tell which ids exist elsewhere
    (how many cases and inspections other customers have) — the oracle access.py avoids for the API."""
    _, _, token = make_user(world["db_url"], "customer", customer="acme")
    h = {**bearer(token), **HTML}
    answers = {}
    for page, foreign in (("cases", world["cases"]["globex"]), ("inspections", world["inspection"]["globex"])):
        answers[page] = (app_client.get(f"/{page}/{foreign}", headers=h).status_code,
                         app_client.get(f"/{page}/987654", headers=h).status_code)
    assert all(theirs == missing for theirs, missing in answers.values()), \
        f"(another customer's, missing) per page: {answers}"
