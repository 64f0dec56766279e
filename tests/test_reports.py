"""Customer health reports against the real PostgreSQL: the numbers, both languages, a real PDF read
back with pdftotext, the reports kept unchanged, and the monthly e-mail with the PDF attached."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.api_support import api_client

from agent import wire
from api.reports import data as report_data
from api.reports import render, store
from collector.store import Batch, Store
from tests.conftest import SmtpInbox

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV_5 = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)


def _ins(conn: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


@pytest.fixture
def month(store: Store, db_url: str):
    """October 2026 of one customer: two devices, a day of missing data, two cases (one answered late),
    an inspection with a finding, a callback, a battery trend."""
    conn = psycopg.connect(db_url, autocommit=True)
    store.write(Batch(births=[wire.Birth(wire.Origin("acme", "hq", "gw1"), 1, "test", 60.0, {}, [
        wire.DeviceInfo("ups1", "ups", "ups1", {}), wire.DeviceInfo("sw1", "switch", "sw1", {})], [])]))
    conn.execute("UPDATE customers SET name = 'Acme Manufacturing', address = '1 Harbour Road'")
    cust = _ins(conn, "SELECT id FROM customers")
    site = _ins(conn, "SELECT id FROM sites")
    agent = _ins(conn, "SELECT id FROM agents")
    dev = dict(conn.execute("SELECT key, id FROM devices").fetchall())
    _ins(conn, "INSERT INTO contracts (customer_id, key, name, accepted_on, warranty_months, report_recipients, "
               "report_language) VALUES (%s, 'acme-1', 'Acme service 2026', '2026-01-15', 12, %s, 'zh-CN') RETURNING id",
         cust, json.dumps(["pm@acme.example"]))
    conn.execute("INSERT INTO series (key, name) VALUES ('battery_runtime_seconds', 'battery_runtime_seconds')")
    series = _ins(conn, "SELECT id FROM series")
    # availability: ups1 every 5 minutes of October, sw1 silent on 10 October
    conn.execute("INSERT INTO samples_5m (bucket, device_id, series_id, v_avg, v_min, v_max, n) "
                 "SELECT b, d, %s, 1, 1, 1, 5 FROM unnest(%s::int[]) d, "
                 "generate_series(%s::timestamptz, %s::timestamptz - interval '5 min', interval '5 min') b "
                 "WHERE NOT (d = %s AND b >= '2026-10-10' AND b < '2026-10-11')",
                 (series, [dev["ups1"], dev["sw1"]], OCT, datetime(2026, 11, 1, tzinfo=UTC), dev["sw1"]))
    for day in range(31):
        conn.execute("INSERT INTO health_scores (device_id, time, score) VALUES (%s, %s, %s), (%s, %s, 100)",
                     (dev["ups1"], OCT + timedelta(days=day, hours=12), 90 - day, dev["sw1"],
                      OCT + timedelta(days=day, hours=12)))
    sla = json.dumps({"P2": {"response_h": 1}})
    t1 = datetime(2026, 10, 8, 9, 0, tzinfo=UTC)
    conn.execute(
        "INSERT INTO cases (customer_id, site_id, agent_id, device_id, problem, severity, state, title, sla_policy, "
        "calendar, sla, opened_at, acknowledged_at, resolved_at, closed_at, response_due, resolve_due, root_cause, "
        "parts_used) VALUES "
        "(%s, %s, %s, %s, 'battery_runtime_seconds', 'P2', 'closed', 'ups1: runtime falling', 'standard', '24x7', %s, "
        " %s, %s, %s, %s, %s, %s, 'aged battery', %s), "
        "(%s, %s, %s, %s, 'if_in_errors_per_s{if=ge-0/0/1}', 'P3', 'closed', 'sw1: CRC errors', 'standard', '24x7', %s, "
        " %s, %s, %s, %s, %s, %s, 'dirty optic', '[]')",
        (cust, site, agent, dev["ups1"], sla, t1, t1 + timedelta(minutes=20), t1 + timedelta(hours=6),
         t1 + timedelta(hours=7), t1 + timedelta(hours=1), t1 + timedelta(hours=24),
         json.dumps([{"name": "battery kit 12V", "quantity": 4}]),
         cust, site, agent, dev["sw1"], sla, t1, t1 + timedelta(hours=3), t1 + timedelta(hours=20),
         t1 + timedelta(hours=21), t1 + timedelta(hours=2), t1 + timedelta(hours=108)))
    conn.execute("INSERT INTO alarms (device_id, agent_id, series, detector, severity, state, opened_at, updated_at, "
                 "text) VALUES (%s, %s, 'battery_runtime_seconds', 'trend', 'warning', 'cleared', %s, %s, 'runtime')",
                 (dev["ups1"], agent, t1, t1))
    conn.execute("INSERT INTO inspections (customer_id, site_id, device_id, state, due_on, latest_on, reason, "
                 "checklist, done_at, done_by, results, findings, parts_replaced) VALUES (%s, %s, %s, 'done', "
                 "'2026-10-20', '2026-10-20', 'cadence', 'network', '2026-10-20T10:00Z', 'li.wei', %s, %s, %s)",
                 (cust, site, dev["sw1"], json.dumps([{"item": "fans", "ok": False}]),
                  json.dumps([{"text": "fan tray noisy"}]), json.dumps([{"name": "fan tray", "quantity": 1}])))
    conn.execute("INSERT INTO callbacks (customer_id, kind, due_at, state, satisfaction, done_at, done_by) "
                 "VALUES (%s, 'scheduled', '2026-10-15T09:00Z', 'done', 4, '2026-10-15T10:00Z', 'desk')", (cust,))
    yield {"conn": conn, "customer": cust, "dev": dev, "db_url": db_url}
    conn.close()


def test_report_numbers_match_the_database(month: dict[str, Any]) -> None:
    d = report_data.build(month["conn"], "acme", "2026-10", now=NOV_5)
    s = d["summary"]
    assert d["customer"]["name"] == "Acme Manufacturing" and d["provisional"] is False
    assert s["devices"] == 2 and s["sites"] == 1 and s["cases"] == 2
    by_name = {x["name"]: x for x in d["devices"]}
    assert by_name["ups1"]["availability"] == 100.0 and by_name["sw1"]["availability"] == 96.77
    assert d["sites"][0]["availability"] == s["availability"] == 98.39
    assert s["sla_response_pct"] == 50.0 and s["sla_resolve_pct"] == 100.0 and s["sla_pct"] == 75.0
    assert s["by_severity"] == {"P1": 0, "P2": 1, "P3": 1, "P4": 0}
    assert by_name["ups1"]["health"] == 60.0 and by_name["ups1"]["health_daily"][0] == 90.0
    assert by_name["ups1"]["warranty_end"] == "2027-01-15" and by_name["ups1"]["warranty"] == "expiring"
    assert s["inspections_done"] == 1 and s["satisfaction"] == 4.0
    keys = {r["key"] for r in d["recommendations"]}
    assert {"replace_battery", "warranty_expiring", "stock_part"} <= keys
    assert {"part": "battery kit 12V", "qty": 4} in d["parts"] and {"part": "fan tray", "qty": 1} in d["parts"]
    with pytest.raises(report_data.ReportError, match="YYYY-MM"):
        report_data.build(month["conn"], "acme", "2026-13", now=NOV_5)
    with pytest.raises(report_data.ReportError, match="has not begun"):
        report_data.build(month["conn"], "acme", "2026-12", now=NOV_5)


def test_translations_are_complete() -> None:
    t = tomllib.loads(resources.files("api.reports").joinpath("i18n.toml").read_text("utf-8"))

    def keys(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
        return out

    assert keys(t["en"]) == keys(t["zh-CN"])


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian poppler-utils) is not installed; .ci/run installs it")
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_english_and_chinese_reports_in_html_and_pdf(month: dict[str, Any], tmp_path: Path) -> None:
    d = report_data.build(month["conn"], "acme", "2026-10", now=NOV_5)
    en = render.html(d, "en")
    zh = render.html(d, "zh-CN")
    assert "October 2026" in en and "Acme Manufacturing" in en and "Replace the UPS battery of ups1" in en
    assert "2026年10月" in zh and "设备健康报告" in zh and "更换站点 hq 的 ups1 的 UPS 电池" in zh
    assert "UPS 电池续航" in zh and "ups1: runtime falling" not in zh  # problems worded, not the English titles
    english = [v for k, v in render.texts()["en"].items() if isinstance(v, str) and "{" not in v and len(v) > 4]
    leaked = [v for v in english if v in zh]
    assert leaked == [], f"English words in the Chinese report: {leaked}"
    assert en.count("<svg") == 2 + len(d["devices"])  # site bars, severity columns, one sparkline per device
    text = _pdftotext(render.pdf(en), tmp_path)
    assert "Acme Manufacturing" in text and "2026-10" in text
    assert "96.77%" in text and "98.39%" in text and "75%" in text and "50%" in text
    zh_text = _pdftotext(render.pdf(zh), tmp_path)
    assert "设备健康报告" in zh_text and "Acme Manufacturing" in zh_text and "98.39%" in zh_text


def test_reports_api_keeps_an_ended_month_unchanged(month: dict[str, Any], tmp_path: Path) -> None:
    cid = month["customer"]
    with api_client(month["db_url"]) as client:
        customers = client.get("/api/v1/customers").json()
        assert [(c["key"], c["devices"], c["report_language"]) for c in customers] == [("acme", 2, "zh-CN")]
        r = client.get(f"/api/v1/customers/{cid}/reports/2026-10.html")
        assert r.status_code == 200 and r.headers["x-fleetcare-report"] == "stored" and "Acme Manufacturing" in r.text
        # a late sample for October changes nothing in the issued report
        month["conn"].execute("DELETE FROM samples_5m WHERE bucket < '2026-10-20'")
        again = client.get(f"/api/v1/customers/{cid}/reports/2026-10.html")
        assert again.text == r.text
        pdf = client.get(f"/api/v1/customers/{cid}/reports/2026-10.pdf", params={"lang": "zh-CN"})
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert "设备健康报告" in _pdftotext(pdf.content, tmp_path)
        listing = client.get(f"/api/v1/customers/{cid}/reports").json()
        oct_en = next(x for x in listing if x["period"] == "2026-10" and x["lang"] == "en")
        assert oct_en["stored"] and oct_en["final"] and oct_en["html"].endswith("/2026-10.html?lang=en")
        stored = month["conn"].execute("SELECT count(*), bool_and(pdf IS NOT NULL) FROM reports").fetchone()
        assert stored == (2, True)
        assert client.get(f"/api/v1/customers/{cid}/reports/2026-13.html").status_code == 400
        assert client.get(f"/api/v1/customers/{cid}/reports/2099-01.html").status_code == 400
        assert client.get("/api/v1/customers/424242/reports/2026-10.html").status_code == 404
        assert client.get(f"/api/v1/customers/{cid}/reports/2026-10.html", params={"lang": "fr"}).status_code == 422


def test_the_monthly_job_issues_and_mails_each_report_once(month: dict[str, Any], smtp_inbox: SmtpInbox) -> None:
    from alerting.notify import Deliverer, NotifySection
    conn = month["conn"]
    cfg = NotifySection(smtp_host="127.0.0.1", smtp_port=smtp_inbox.port, smtp_from="fleetcare@svc.example")
    made = store.produce_due(conn, cfg, now=NOV_5)
    assert len(made) == 1  # October, in the contract's language; no data before it
    assert store.produce_due(conn, cfg, now=NOV_5 + timedelta(hours=1)) == []
    lang, = conn.execute("SELECT lang FROM reports").fetchone()
    assert lang == "zh-CN"
    assert Deliverer("", cfg).deliver_due(conn) == 1
    (rcpt, raw), = smtp_inbox.messages
    assert rcpt == ["pm@acme.example"]
    msg = message_from_bytes(raw)
    pdfs = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_filename() == "acme-2026-10-zh-CN.pdf"
    assert pdfs[0].get_payload(decode=True).startswith(b"%PDF")


def test_report_command_writes_html_and_pdf(month: dict[str, Any], tmp_path: Path) -> None:
    import os
    import sys
    env = dict(os.environ, FLEETCARE_DATABASE_URL=month["db_url"])

    def fleetcare(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleetcare.cli", "report", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    out = tmp_path / "acme.pdf"
    r = fleetcare("--customer", "acme", "--period", "2026-10", "--format", "pdf", "--lang", "zh-CN", "--output", str(out))
    assert r.returncode == 0, r.stderr
    text = _pdftotext(out.read_bytes(), tmp_path)
    assert "设备健康报告" in text and "2026-10" in text and "96.77%" in text
    r = fleetcare("--customer", "acme", "--period", "2026-10")
    assert r.returncode == 0 and "Acme Manufacturing" in r.stdout and "October 2026" in r.stdout
    r = fleetcare("--customer", "nobody", "--period", "2026-10")
    assert r.returncode == 2 and "customer 'nobody' does not exist" in r.stderr
    r = fleetcare("--customer", "acme", "--period", "October")
    assert r.returncode == 2 and "expected YYYY-MM" in r.stderr


def test_a_month_still_being_written_is_not_issued(month: dict[str, Any]) -> None:
    conn = month["conn"]
    # data arriving now whose detection has reached 20 October: a spool draining, a replay, mid-month
    conn.execute("UPDATE devices SET received_at = now(), last_seen = '2026-10-20', health_at = '2026-10-20' "
                 "WHERE id = %s", (month["dev"]["ups1"],))
    r = store.get(conn, "acme", "2026-10", "en", now=NOV_5)
    assert not r.stored and r.data["provisional"] and "Provisional" in r.html
    assert conn.execute("SELECT count(*) FROM reports").fetchone()[0] == 0
    conn.execute("UPDATE devices SET received_at = now() - interval '2 days'")  # gone quiet: no longer waited for
    assert store.get(conn, "acme", "2026-10", "en", now=NOV_5).stored


def test_a_report_first_opened_by_a_person_is_still_mailed_once(month: dict[str, Any]) -> None:
    from alerting.notify import NotifySection
    conn = month["conn"]
    assert store.get(conn, "acme", "2026-10", "zh-CN", now=NOV_5).stored  # the PM opened it on the 1st
    cfg = NotifySection(smtp_host="127.0.0.1")
    assert len(store.produce_due(conn, cfg, now=NOV_5)) == 1
    assert store.produce_due(conn, cfg, now=NOV_5) == []
    assert conn.execute("SELECT count(*) FROM notifications WHERE event = 'report'").fetchone()[0] == 1


def test_bad_periods_and_release_ordering() -> None:
    for bad in ("0000-01", "9999-12", "2026-00", "26-10"):
        with pytest.raises(report_data.ReportError):
            report_data.period_bounds(bad)
    assert sorted(["9.1", "10.2", "7.1.070-R3612", "7.1.070-R3507"], key=report_data._version_key)[-1] == "10.2"
    assert sorted(["7.1.070-R3612", "7.1.070-R3507"], key=report_data._version_key)[-1] == "7.1.070-R3612"
