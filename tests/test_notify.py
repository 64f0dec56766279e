"""Notifications against real receivers: an HTTP server that checks the HMAC signature (and fails on
purpose), and an SMTP server (aiosmtpd) on a loopback port. Retries are driven by a moved clock."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from alerting.notify import Deliverer, NotifySection, enqueue, sign
from fleetcare.embedded import free_port
from tests.conftest import SmtpInbox

SECRET = "s3cret"
CASE = {"id": None, "severity": "P1", "state": "open", "title": "fw1: CPU 99 %", "description": "d",
        "customer": "acme", "site": "hq", "device": "fw1", "opened_at": "2026-11-02T09:00:00+00:00"}


class Receiver:
    """A webhook endpoint: answers `codes` in turn (then 200), records what a receiver would verify."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.got: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers["X-Fleetcare-Timestamp"]
                outer.got.append({"body": json.loads(body), "event": self.headers["X-Fleetcare-Event"],
                                  "delivery": self.headers["X-Fleetcare-Delivery"],
                                  "valid": self.headers.get("X-Fleetcare-Signature") == sign(SECRET, ts, body)})
                code = outer.codes.pop(0) if outer.codes else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def conn(db_url: str):
    c = psycopg.connect(db_url, autocommit=True)
    c.execute("INSERT INTO customers (key, name) VALUES ('acme', 'Acme')")
    cid = c.execute("INSERT INTO cases (customer_id, problem, severity, title, sla_policy, calendar, sla, opened_at) "
                    "SELECT id, 'x', 'P1', 'fw1: CPU 99 %%', 'standard', '24x7', '{}', now() FROM customers "
                    "RETURNING id").fetchone()[0]
    CASE["id"] = cid
    yield c
    c.close()


def states(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT channel, state, attempts FROM notifications ORDER BY id").fetchall()


def test_webhook_is_signed_and_retried_with_back_off(conn: psycopg.Connection) -> None:
    rx = Receiver([500, 503])
    try:
        cfg = NotifySection(webhook_urls=[rx.url], webhook_secret=SECRET, backoff_s=30, max_attempts=5)
        with conn.transaction():
            assert enqueue(conn, cfg, CASE, "opened", "P1 case opened", []) == 1
        d = Deliverer("", cfg)
        t = datetime.now(UTC)
        assert d.deliver_due(conn, t) == 0 and states(conn) == [("webhook", "pending", 1)]
        assert d.deliver_due(conn, t + timedelta(seconds=29)) == 0  # back-off: not due yet
        assert d.deliver_due(conn, t + timedelta(seconds=31)) == 0  # second failure; next wait 60 s
        assert d.deliver_due(conn, t + timedelta(seconds=80)) == 0
        assert d.deliver_due(conn, t + timedelta(seconds=92)) == 1
        assert states(conn) == [("webhook", "sent", 3)]
        assert [g["valid"] for g in rx.got] == [True, True, True]
        assert {g["delivery"] for g in rx.got} == {str(conn.execute("SELECT id FROM notifications").fetchone()[0])}
        assert rx.got[0]["event"] == "opened" and rx.got[0]["body"]["case"]["title"] == "fw1: CPU 99 %"
        log = conn.execute("SELECT ok, detail FROM notification_attempts ORDER BY id").fetchall()
        assert log == [(False, "HTTP 500 Internal Server Error"), (False, "HTTP 503 Service Unavailable"),
                       (True, "HTTP 200")]
    finally:
        rx.close()


def test_undeliverable_ends_failed_and_visible_never_lost(conn: psycopg.Connection) -> None:
    cfg = NotifySection(webhook_urls=[f"http://127.0.0.1:{free_port()}/down"], smtp_host="127.0.0.1",
                        smtp_port=free_port(), max_attempts=3, backoff_s=1, timeout_s=2)
    with conn.transaction():
        assert enqueue(conn, cfg, CASE, "escalated", "response clock at 75 %", ["mia@svc.example"]) == 2
    d = Deliverer("", cfg)
    t = datetime.now(UTC)
    for k in range(3):
        d.deliver_due(conn, t + timedelta(seconds=10 * k))
    assert states(conn) == [("webhook", "failed", 3), ("email", "failed", 3)]
    errors = [e for (e,) in conn.execute("SELECT last_error FROM notifications ORDER BY id")]
    assert "Connection refused" in errors[0] and "Connection refused" in errors[1]
    assert d.deliver_due(conn, t + timedelta(days=1)) == 0  # failed stays failed until someone retries it


def test_email_reaches_a_real_smtp_server(conn: psycopg.Connection, smtp_inbox: SmtpInbox) -> None:
    cfg = NotifySection(smtp_host="127.0.0.1", smtp_port=smtp_inbox.port, smtp_from="fleetcare@svc.example")
    with conn.transaction():
        enqueue(conn, cfg, CASE, "opened", "P1 case opened", ["eve@svc.example", "mia@svc.example"])
    assert Deliverer("", cfg).deliver_due(conn) == 2
    assert sorted(r for rcpt, _ in smtp_inbox.messages for r in rcpt) == ["eve@svc.example", "mia@svc.example"]
    text = smtp_inbox.messages[0][1].decode("utf-8", "replace")
    assert "Subject: [fleetcare P1] case #" in text and "fw1: CPU 99 %" in text
    assert "Customer: acme  Site: hq  Device: fw1" in text
    assert states(conn) == [("email", "sent", 1), ("email", "sent", 1)]
