"""Notifications: an outbox in the database, delivered by webhook (JSON, HMAC-signed) and e-mail (SMTP).

A notification is written in the same transaction as the case change that causes it, so a crash
can lose neither; a delivery thread sends what is due, logs every attempt, and retries failures with
exponential back-off until `max_attempts`, after which the notification stays `failed`, listed by
`GET /api/v1/notifications?state=failed` and sent again by `POST /api/v1/notifications/{id}/retry`.
Delivery is at least once: a receiver deduplicates on the X-Fleetcare-Delivery header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import psycopg

log = logging.getLogger(__name__)

EVENTS = ("opened", "escalated", "severity_changed", "resolved")


@dataclass
class NotifySection:
    #: Webhook URLs that receive every case notification (JSON POST).
    webhook_urls: list[str] = field(default_factory=list)
    #: Shared secret for the X-Fleetcare-Signature HMAC-SHA256 header; empty: unsigned.
    webhook_secret: str = ""
    #: SMTP server for e-mail; empty: no e-mail is sent (contacts are still listed on the case).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "fleetcare@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    #: Attempts before a notification is marked failed.
    max_attempts: int = 10
    #: First retry after this many seconds, doubling up to backoff_max_s.
    backoff_s: float = 30.0
    backoff_max_s: float = 3600.0
    #: Seconds a webhook or SMTP exchange may take.
    timeout_s: float = 10.0

    def validate(self) -> None:
        for url in self.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"notify.webhook_urls: {url!r} is not an http(s) URL")
        if self.max_attempts < 1 or self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError("notify: max_attempts ≥ 1 and 0 < backoff_s ≤ backoff_max_s")


def recipients(contacts: Iterable[dict[str, Any]], roles: Iterable[str], assignee_email: str | None) -> list[str]:
    """E-mail addresses for roles; the assignee falls back to the service desk while nobody is assigned."""
    contacts = list(contacts)
    out: list[str] = []
    for role in roles:
        if role == "assignee":
            if assignee_email:
                out.append(assignee_email)
                continue
            role = "service_desk"
        out += [c["email"] for c in contacts if c.get("role") == role and c.get("email")]
    return list(dict.fromkeys(out))


def outbox(conn: psycopg.Connection, cfg: NotifySection, event: str, subject: str, payload: dict[str, Any],
           emails: Iterable[str], *, webhooks: bool = True, case_id: int | None = None,
           inspection_id: int | None = None, report_id: int | None = None) -> int:
    """The one writer of the outbox: each configured webhook (unless `webhooks` is false) and, with an
    SMTP server, each e-mail address gets a row, delivered by `Deliverer`. Returns the rows written."""
    body = json.dumps(payload, default=str)
    rows = [("webhook", url) for url in cfg.webhook_urls] if webhooks else []
    if cfg.smtp_host:
        rows += [("email", addr) for addr in emails]
    for channel, target in rows:
        conn.execute("INSERT INTO notifications (case_id, inspection_id, report_id, event, channel, target, subject, "
                     "payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                     (case_id, inspection_id, report_id, event, channel, target, subject[:300], body))
    return len(rows)


def enqueue(conn: psycopg.Connection, cfg: NotifySection, case: dict[str, Any], event: str, text: str,
            emails: list[str], data: dict[str, Any] | None = None) -> int:
    """Write the notifications of one case event (webhooks get every event, e-mails the named people)."""
    subject = f"[fleetcare {case['severity']}] case #{case['id']} {event.replace('_', ' ')}: {case['title']}"
    payload = {"event": event, "text": text, "case": case, "data": data or {}, "sent_by": "fleetcare"}
    return outbox(conn, cfg, event, subject, payload, emails, case_id=case["id"])


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """sha256=<hex HMAC of "timestamp.body">: the timestamp in the MAC stops replays of old bodies."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _email_text(payload: dict[str, Any]) -> str:
    if "report" in payload:  # worded in the report's language by api/reports/store.py
        return payload["text"]
    if "case" not in payload:  # an overdue inspection: the text says it, the facts follow
        lines = [payload["text"], ""]
        for key, value in (payload.get("inspection") or {}).items():
            lines.append(f"{key.replace('_', ' ')}: {value}")
        return "\n".join(lines)
    c = payload["case"]
    lines = [payload["text"], "", f"Case #{c['id']} — {c['severity']} — {c['state']}", c["title"], ""]
    if c.get("customer"):
        lines.append(f"Customer: {c['customer']}  Site: {c.get('site') or '-'}  Device: {c.get('device') or '-'}")
    for clock in ("response_due", "onsite_due", "resolve_due"):
        if c.get(clock):
            lines.append(f"{clock.replace('_', ' ')}: {c[clock]}")
    if c.get("description"):
        lines += ["", c["description"]]
    return "\n".join(lines)


def _report_pdf(conn: psycopg.Connection, report_id: int | None) -> tuple[str, bytes] | None:
    """The stored report's PDF; a report stored without one is sent when PDF rendering works again."""
    if report_id is None:
        return None
    row = conn.execute("SELECT r.pdf, c.key, r.period, r.lang FROM reports r JOIN customers c ON c.id = r.customer_id "
                       "WHERE r.id = %s", (report_id,)).fetchone()
    if row is None:
        raise LookupError(f"report {report_id} is gone")
    if row[0] is None:
        from api.reports.render import pdf  # the API's renderer; the deliverer runs in the server process
        data = pdf(conn.execute("SELECT html FROM reports WHERE id = %s", (report_id,)).fetchone()[0])
        conn.execute("UPDATE reports SET pdf = %s WHERE id = %s AND pdf IS NULL", (data, report_id))
        return f"{row[1]}-{row[2]}-{row[3]}.pdf", data
    return f"{row[1]}-{row[2]}-{row[3]}.pdf", bytes(row[0])


class Deliverer:
    def __init__(self, database_url: str, cfg: NotifySection, *, every_s: float = 2.0) -> None:
        self.database_url = database_url
        self.cfg = cfg
        self.every_s = every_s
        self.sent = 0
        self.failed = 0

    def _webhook(self, target: str, nid: int, event: str, body: bytes) -> str:
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "fleetcare", "X-Fleetcare-Event": event,
                   "X-Fleetcare-Delivery": str(nid), "X-Fleetcare-Timestamp": ts}
        if self.cfg.webhook_secret:
            headers["X-Fleetcare-Signature"] = sign(self.cfg.webhook_secret, ts, body)
        req = urllib.request.Request(target, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
            return f"HTTP {resp.status}"

    def _email(self, target: str, subject: str, payload: dict[str, Any],
               attachment: tuple[str, bytes] | None = None) -> str:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.cfg.smtp_from, target, subject
        msg.set_content(_email_text(payload))
        if attachment is not None:
            msg.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
        with smtplib.SMTP(self.cfg.smtp_host, self.cfg.smtp_port, timeout=self.cfg.timeout_s) as smtp:
            if self.cfg.smtp_starttls:
                smtp.starttls()
            if self.cfg.smtp_username:
                smtp.login(self.cfg.smtp_username, self.cfg.smtp_password)
            refused = smtp.send_message(msg)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        return "accepted by SMTP server"

    def deliver_due(self, conn: psycopg.Connection, now: datetime | None = None, limit: int = 50) -> int:
        """Send what is due; returns how many were sent. Each attempt is logged, failures rescheduled."""
        now = now or datetime.now(UTC)
        done = 0
        with conn.transaction():
            rows = conn.execute(
                "SELECT id, channel, target, event, subject, payload, attempts, report_id FROM notifications "
                "WHERE state = 'pending' AND next_attempt_at <= %s ORDER BY next_attempt_at, id "
                "LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit)).fetchall()
            for nid, channel, target, event, subject, payload, attempts, report_id in rows:
                t0 = time.perf_counter()
                try:
                    if channel == "webhook":
                        detail = self._webhook(target, nid, event, json.dumps(payload, default=str).encode())
                    else:
                        detail = self._email(target, subject, payload, _report_pdf(conn, report_id))
                    ok = True
                except urllib.error.HTTPError as exc:
                    ok, detail = False, f"HTTP {exc.code} {exc.reason}"
                except Exception as exc:  # unreachable, refused, timeout, TLS, SMTP reply: all retried
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                ms = (time.perf_counter() - t0) * 1000
                conn.execute("INSERT INTO notification_attempts (notification_id, at, ok, detail, duration_ms) "
                             "VALUES (%s, %s, %s, %s, %s)", (nid, now, ok, detail[:1000], ms))
                attempts += 1
                if ok:
                    conn.execute("UPDATE notifications SET state = 'sent', attempts = %s, sent_at = %s, "
                                 "last_error = NULL WHERE id = %s", (attempts, now, nid))
                    done += 1
                    self.sent += 1
                    continue
                final = attempts >= self.cfg.max_attempts
                wait = min(self.cfg.backoff_s * 2 ** (attempts - 1), self.cfg.backoff_max_s)
                conn.execute("UPDATE notifications SET state = %s, attempts = %s, last_error = %s, "
                             "next_attempt_at = %s WHERE id = %s",
                             ("failed" if final else "pending", attempts, detail[:1000],
                              now + timedelta(seconds=wait), nid))
                if final:
                    self.failed += 1
                    log.error("notification %s (%s to %s) failed after %d attempts: %s", nid, channel, target,
                              attempts, detail)
                else:
                    log.warning("notification %s (%s to %s) attempt %d failed: %s; next in %.0f s", nid, channel,
                                target, attempts, detail, wait)
        return done

    def run(self, stop: threading.Event) -> None:
        conn: psycopg.Connection | None = None
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
                self.deliver_due(conn)
            except psycopg.OperationalError as exc:
                log.error("notifications: database unavailable (%s); retrying", str(exc).strip()[:200])
                if conn is not None:
                    conn.close()
                conn = None
            except Exception:
                log.exception("notification delivery failed; retrying")
            stop.wait(self.every_s)
        if conn is not None:
            conn.close()
