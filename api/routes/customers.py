"""Customers and their monthly health reports (HTML and PDF, English or Chinese)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from psycopg.rows import dict_row

from api.deps import Scoped, db_sync
from api.errors import BadRequest, NotFound
from api.maintenance_models import CustomerPublic, ReportEntry
from api.models import ErrorBody
from api.reports import data as report_data
from api.reports import render, store

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]
Lang = Annotated[Literal["en", "zh-CN"], Query(description="Report language")]
_NOT_FOUND = {404: {"model": ErrorBody, "description": "No such customer"}}
_REPORT = {404: {"model": ErrorBody, "description": "No such customer"},
           400: {"model": ErrorBody, "description": "Period not YYYY-MM, or not begun"},
           503: {"model": ErrorBody, "description": "PDF rendering unavailable (HTML still works)"}}


@router.get("", response_model=list[CustomerPublic], summary="Customers with their sites, devices and contract")
def list_customers(conn: Conn, scope: Scoped) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT c.id, c.key, c.name, c.address, "
        "  (SELECT count(*) FROM sites s WHERE s.customer_id = c.id) AS sites, "
        "  (SELECT count(*) FROM device_service v WHERE v.customer_id = c.id) AS devices, "
        "  k.id AS contract_id, k.report_language, "
        "  (SELECT count(*) FROM cases x WHERE x.customer_id = c.id AND x.state NOT IN ('closed', 'suppressed')) "
        "    AS open_cases "
        "FROM customers c LEFT JOIN contracts k ON k.customer_id = c.id AND k.active "
        f"WHERE {scope.where('c.id')} ORDER BY c.key").fetchall()


def _customer(conn: psycopg.Connection, customer_id: int) -> dict[str, Any]:
    try:
        return report_data.customer_row(conn, customer_id)
    except report_data.ReportError:
        raise NotFound(f"customer {customer_id}") from None


@router.get("/{customer_id}/reports", response_model=list[ReportEntry], responses=_NOT_FOUND,
            summary="The customer's reports: issued ones (kept unchanged) and the periods that can be built")
def list_reports(conn: Conn, customer_id: int) -> list[dict[str, Any]]:
    _customer(conn, customer_id)
    base = f"/api/v1/customers/{customer_id}/reports"
    return [dict(r, html=f"{base}/{r['period']}.html?lang={r['lang']}", pdf=f"{base}/{r['period']}.pdf?lang={r['lang']}")
            for r in store.listing(conn, customer_id)]


def _report(conn: psycopg.Connection, customer_id: int, period: str, lang: str, want_pdf: bool) -> store.Report:
    _customer(conn, customer_id)
    try:
        return store.get(conn, customer_id, period, lang, want_pdf=want_pdf)
    except report_data.ReportError as exc:
        raise BadRequest(str(exc)) from None


def _headers(r: store.Report) -> dict[str, str]:
    return {"X-Fleetcare-Report": "stored" if r.stored else "provisional",
            "Cache-Control": "private, max-age=3600" if r.stored else "no-store"}


@router.get("/{customer_id}/reports/{period}.html", response_class=HTMLResponse, responses=_REPORT,
            summary="A month's health report as HTML (built and kept once the month has ended)")
def report_html(conn: Conn, customer_id: int, period: str, lang: Lang = "en") -> Response:
    r = _report(conn, customer_id, period, lang, False)
    return HTMLResponse(r.html, headers=_headers(r))


@router.get("/{customer_id}/reports/{period}.pdf", responses={**_REPORT, 200: {"content": {"application/pdf": {}}}},
            response_class=Response, summary="A month's health report as PDF")
def report_pdf(conn: Conn, customer_id: int, period: str, lang: Lang = "en") -> Response:
    try:
        r = _report(conn, customer_id, period, lang, True)
    except render.PdfUnavailable as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503)
    assert r.pdf is not None
    key = report_data.customer_row(conn, customer_id)["key"]
    return Response(r.pdf, media_type="application/pdf",
                    headers={**_headers(r), "Content-Disposition": f'inline; filename="{key}-{period}-{lang}.pdf"'})
