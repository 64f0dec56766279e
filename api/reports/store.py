"""Reports kept: a report of an ended period is built once, stored with its data, HTML and PDF, and
served unchanged from then on (the unique key is customer, period, language). A report of the
period still running is built live on every request and never stored.

`produce_due` is the scheduled job: at each period's end it builds every contract's report in the
contract's language and puts an e-mail with the PDF attached in the notification outbox for each
report recipient, so a failed delivery is retried and visible like any other notification.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerting.notify import outbox
from api.reports import data as report_data
from api.reports import render

log = logging.getLogger(__name__)


@dataclass
class Report:
    customer_id: int
    period: str
    lang: str
    data: dict[str, Any]
    html: str
    pdf: bytes | None
    stored: bool
    id: int | None = None
    created_at: datetime | None = None


def _load(conn: psycopg.Connection, customer_id: int, period: str, lang: str) -> Report | None:
    row = conn.execute("SELECT id, data, html, pdf, created_at FROM reports WHERE customer_id = %s AND period = %s "
                       "AND lang = %s", (customer_id, period, lang)).fetchone()
    if row is None:
        return None
    return Report(customer_id, period, lang, row[1], row[2], None if row[3] is None else bytes(row[3]), True,
                  row[0], row[4])


def get(conn: psycopg.Connection, customer: str | int, period: str, lang: str = "en", *,
        want_pdf: bool = False, now: datetime | None = None) -> Report:
    """The stored report, or a new one (stored when its period has ended)."""
    render.check_lang(lang)
    now = now or datetime.now(UTC)
    cust = report_data.customer_row(conn, customer)
    report_data.period_bounds(period)
    found = _load(conn, cust["id"], period, lang)
    if found is not None:
        if want_pdf and found.pdf is None:  # stored while PDF was unavailable: add it, the HTML stays
            found.pdf = render.pdf(found.html)
            conn.execute("UPDATE reports SET pdf = %s WHERE id = %s AND pdf IS NULL", (found.pdf, found.id))
        return found
    data = report_data.build(conn, cust["id"], period, now=now)
    html = render.html(data, lang)
    final = not data["provisional"]
    pdf = None
    if want_pdf or final:
        try:
            pdf = render.pdf(html)
        except render.PdfUnavailable:
            if want_pdf:
                raise
            log.warning("report %s %s %s stored without PDF: WeasyPrint unavailable", cust["key"], period, lang)
    if not final:
        return Report(cust["id"], period, lang, data, html, pdf, False)
    digest = hashlib.sha256(html.encode()).hexdigest()
    row = conn.execute(
        "INSERT INTO reports (customer_id, period, lang, data, html, pdf, sha256) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (customer_id, period, lang) DO NOTHING RETURNING id",
        (cust["id"], period, lang, json.dumps(data), html, pdf, digest)).fetchone()
    if row is None:  # built concurrently by another request or the job: theirs stands
        stored = _load(conn, cust["id"], period, lang)
        assert stored is not None
        return stored
    log.info("report %s %s (%s) stored as #%s", cust["key"], period, lang, row[0])
    return Report(cust["id"], period, lang, data, html, pdf, True, row[0], now)


def listing(conn: psycopg.Connection, customer_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Stored reports, plus the periods with data that could be built (from the first month with
    any samples or cases to the running month)."""
    now = now or datetime.now(UTC)
    stored = {(r[0], r[1]): r for r in conn.execute(
        "SELECT period, lang, id, created_at, sha256, pdf IS NOT NULL FROM reports WHERE customer_id = %s",
        (customer_id,)).fetchall()}
    first = conn.execute(
        "SELECT least((SELECT min(opened_at) FROM cases WHERE customer_id = %(c)s), "
        "  (SELECT min(h.time) FROM health_scores h JOIN device_service v ON v.device_id = h.device_id "
        "   WHERE v.customer_id = %(c)s))", {"c": customer_id}).fetchone()[0]
    periods: list[str] = []
    if first is not None:
        y, m = first.year, first.month
        while (y, m) <= (now.year, now.month):
            periods.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    periods = sorted(set(periods) | {p for p, _ in stored}, reverse=True)
    out = []
    for p in periods:
        _, end = report_data.period_bounds(p)
        for lang in render.LANGS:
            r = stored.get((p, lang))
            out.append({"period": p, "lang": lang, "stored": r is not None, "final": end <= now,
                        "report_id": r[2] if r else None, "created_at": r[3] if r else None,
                        "sha256": r[4] if r else None, "has_pdf": bool(r[5]) if r else False})
    return out


def produce_due(conn: psycopg.Connection, notify_cfg: Any, *, now: datetime | None = None,
                periods_back: int = 3) -> list[int]:
    """Issue the reports of ended periods (the last `periods_back` months, so downtime over a month's
    end is caught up) in each active contract's language, and mail each issued report once — also
    one first built by a request. `conn` must be in autocommit mode: every report is its own
    transaction, and one that fails (logged) does not hold back the others. Returns the ids of the
    reports mailed (or, without SMTP, marked as delivered to nobody) in this run."""
    now = now or datetime.now(UTC)
    done: list[int] = []
    contracts = conn.execute("SELECT k.customer_id, k.report_language, k.report_recipients, c.key, c.name "
                             "FROM contracts k JOIN customers c ON c.id = k.customer_id WHERE k.active "
                             "ORDER BY k.customer_id").fetchall()
    periods = []
    cursor = now
    for _ in range(periods_back):
        p = report_data.previous_period(cursor)
        periods.append(p)
        cursor = report_data.period_bounds(p)[0]
    for customer_id, lang, recipients, key, name in contracts:
        for period in reversed(periods):
            try:
                with conn.transaction():
                    report = _load(conn, customer_id, period, lang)
                    if report is None:
                        if not _has_data(conn, customer_id, period):
                            continue
                        report = get(conn, customer_id, period, lang, now=now)
                    if report.id is None:
                        continue  # its data has not settled: a later run issues it
                    # the one run that marks it mails it (a request or another server may have built it)
                    if conn.execute("UPDATE reports SET mailed_at = now() WHERE id = %s AND mailed_at IS NULL "
                                    "RETURNING id", (report.id,)).fetchone() is None:
                        continue
                    t = render.texts()[lang]
                    month = render.month_name(report.data, lang)
                    subject = f"[fleetcare] {t['title']} — {name} — {month}"
                    payload = {"event": "report", "text": t["mail_body"].format(customer=name, month=month),
                               "sent_by": "fleetcare", "report": {"id": report.id, "customer": key,
                                                                   "period": period, "lang": lang}}
                    outbox(conn, notify_cfg, "report", subject, payload, recipients or [], webhooks=False,
                           report_id=report.id)
                    done.append(report.id)
            except Exception:
                log.exception("report %s %s (%s) not issued; the next run tries again", key, period, lang)
    return done


def _has_data(conn: psycopg.Connection, customer_id: int, period: str) -> bool:
    start, end = report_data.period_bounds(period)
    return bool(conn.execute(
        "SELECT EXISTS (SELECT 1 FROM health_scores h JOIN device_service v ON v.device_id = h.device_id "
        "WHERE v.customer_id = %s AND h.time >= %s AND h.time < %s)", (customer_id, start, end)).fetchone()[0])
