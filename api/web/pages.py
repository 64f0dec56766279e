"""The pages of the engineers' console and the customer portal, and the login that opens them.

Pages are rendered on the server (Jinja2) with the words of the request's language; their data is
fetched by a little JavaScript from the JSON API with the session cookie, so what a user may see is
decided in one place (api/access.py and the routes' scoped queries), never here. A page with a thing
in its path (`device_id`, `case_id`, `inspection_id`) is checked by `access` like a JSON route: a
thing of another customer is a 404 page.

Login sets the session cookie (HttpOnly, SameSite=Lax, Secure over https); every change the pages
make goes through fetch() with ``X-Requested-With: fleetcare``, which access requires of a change
made with the cookie (CSRF).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from psycopg_pool import ConnectionPool

from api import auth
from api.access import Scope
from api.deps import Scoped
from api.web import i18n

router = APIRouter(include_in_schema=False)

LANG_COOKIE_DAYS = 365
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # every script is a file of /static; inline <script> blocks only carry JSON data
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=PackageLoader("api.web", "templates"), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def landing(role: str | None) -> str:
    """Where a user starts: customers on their portal, the service team on the fleet console."""
    return "/portal" if role == "customer" else "/"


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after login, or None: never another site (open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def render(request: Request, template: str, scope: Scope | None, status: int = 200, **context: Any) -> HTMLResponse:
    """A page in the request's language; ``?lang=`` is remembered in a cookie."""
    lang, asked = i18n.choose(request)
    t = i18n.Translator(lang)
    who = scope.principal if scope is not None else None
    page = {"lang": lang, "strings": t.table, "user": who.username if who else None,
            "role": who.role if who else None, "staff": bool(scope and scope.staff), **context.pop("page", {})}
    html = _env().get_template(template).render(t=t, lang=lang, who=who, staff=page["staff"], page=page,
                                                request=request, path=request.url.path, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if asked:
        response.set_cookie(i18n.COOKIE, lang, max_age=LANG_COOKIE_DAYS * 86_400, path="/", samesite="lax",
                            secure=request.url.scheme == "https")
    return response


def _staff_only(scope: Scope) -> RedirectResponse | None:
    """The service team's pages send a customer to their portal instead."""
    return None if scope.staff else RedirectResponse("/portal", status_code=303)


# ------------------------------------------------------------------ login

def _session_user(request: Request) -> auth.Principal | None:
    """Who the session cookie belongs to, if anyone (the login routes are public: access does not say)."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    if not token:
        return None
    pool: ConnectionPool = request.app.state.sync_pool
    with pool.connection(timeout=5.0) as conn:
        return auth.resolve(conn, token)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query parameter's name
    who = _session_user(request)
    if who is not None:
        return RedirectResponse(safe_next(next) or landing(who.role), status_code=303)
    return render(request, "login.html.j2", None, next=safe_next(next) or "", error=None, username="")


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: Annotated[str, Form(max_length=100)],
          password: Annotated[str, Form(max_length=1000)],
          next: Annotated[str, Form(max_length=2000)] = "") -> Response:  # noqa: A002
    lang, _ = i18n.choose(request)
    t = i18n.Translator(lang)
    if not _same_site(request):
        # login CSRF: another site's form would log the browser into an account of its choosing
        return render(request, "error.html.j2", None, status=403, kind="forbidden")
    pool: ConnectionPool = request.app.state.sync_pool
    with pool.connection(timeout=5.0) as conn:
        login = auth.log_in(conn, username, password, request.client.host if request.client else "?", via="page")
    if login.retry_after > 0:
        page = render(request, "login.html.j2", None, status=429, next=safe_next(next) or "", username=username,
                      error=t("login.limited", seconds=int(login.retry_after) + 1))
        page.headers["Retry-After"] = str(int(login.retry_after) + 1)
        return page
    if login.token is None:
        return render(request, "login.html.j2", None, status=401, next=safe_next(next) or "",
                      username=username, error=t("login.wrong"))
    role, token = login.role, login.token
    target = safe_next(next) or landing(role)
    if role == "customer" and target == "/":
        target = "/portal"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(auth.SESSION_COOKIE, token, max_age=int(auth.SESSION_HOURS * 3600), path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request, scope: Scoped) -> Response:
    """Revoke this session's token and clear the cookie (called by fetch with the CSRF header)."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        pool: ConnectionPool = request.app.state.sync_pool
        with pool.connection(timeout=5.0) as conn, conn.transaction():
            auth.revoke_session(conn, token, scope.actor)
    response = Response(status_code=204)
    response.delete_cookie(auth.SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=request.url.scheme == "https")
    return response


def _same_site(request: Request) -> bool:
    """Whether a form post comes from our own pages: the browser's Sec-Fetch-Site, else its Origin
    (or Referer) against this request's own origin. A client that sends neither (a script) passes."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


def _thing_page(request: Request, scope: Scope, table: str, ident: int, template: str, **context: Any) -> Response:
    """The page of one case or inspection, or the 404 page: a missing id looks like another
    customer's (which `access` has answered 404 already), so that ids cannot be probed."""
    found = False
    if -2**63 <= ident < 2**63:
        pool: ConnectionPool = request.app.state.sync_pool
        with pool.connection(timeout=5.0) as conn:
            found = conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (ident,)).fetchone() is not None
    if not found:
        return render(request, "error.html.j2", scope, status=404, kind="not_found")
    return render(request, template, scope, **context)


def login_redirect(request: Request) -> RedirectResponse:
    """Where an unauthenticated page request goes: the login form, then back here."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


# ------------------------------------------------------------------ the console

@router.get("/", response_class=HTMLResponse)
def console(request: Request, scope: Scoped) -> Response:
    return _staff_only(scope) or render(request, "fleet.html.j2", scope, page={"name": "fleet"})


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(request: Request, scope: Scoped, device_id: int) -> Response:
    """Access has checked the device is in the user's scope; the page's data comes from the JSON API.
    The agent's id is looked up here because the diagnostics routes are addressed by agent."""
    pool: ConnectionPool = request.app.state.sync_pool
    with pool.connection(timeout=5.0) as conn:
        row = conn.execute("SELECT d.name, d.agent_id, d.key, d.kind FROM devices d WHERE d.id = %s",
                           (device_id,)).fetchone()
    if row is None:
        return render(request, "error.html.j2", scope, status=404, kind="not_found")
    # an SNMP device's key is its target's name on the agent: the diagnostics' default target
    return render(request, "device.html.j2", scope, device_name=row[0], snmp_target=row[2] if row[3] != "host" else "",
                  page={"name": "device", "device_id": device_id, "agent_id": row[1] if scope.staff else None})


@router.get("/cases", response_class=HTMLResponse)
def case_queue(request: Request, scope: Scoped) -> Response:
    return _staff_only(scope) or render(request, "cases.html.j2", scope, page={"name": "cases"})


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, scope: Scoped, case_id: int) -> Response:
    return _thing_page(request, scope, "cases", case_id, "case.html.j2", case_id=case_id,
                       page={"name": "case", "case_id": case_id})


@router.get("/inspections", response_class=HTMLResponse)
def inspections_page(request: Request, scope: Scoped) -> Response:
    return _staff_only(scope) or render(request, "inspections.html.j2", scope, page={"name": "inspections"})


@router.get("/callbacks", response_class=HTMLResponse)
def callbacks_page(request: Request, scope: Scoped) -> Response:
    return _staff_only(scope) or render(request, "callbacks.html.j2", scope, page={"name": "callbacks"})


@router.get("/inspections/{inspection_id}", response_class=HTMLResponse)
def inspection_page(request: Request, scope: Scoped, inspection_id: int) -> Response:
    return _thing_page(request, scope, "inspections", inspection_id, "inspection.html.j2",
                       inspection_id=inspection_id, page={"name": "inspection", "inspection_id": inspection_id})


# ------------------------------------------------------------------ the customer portal

@router.get("/portal", response_class=HTMLResponse)
def portal(request: Request, scope: Scoped) -> Response:
    """A customer's own devices, cases, inspections and reports; the service team sees it for every
    customer of theirs (the same scoped API answers)."""
    return render(request, "portal.html.j2", scope, page={"name": "portal", "customers": scope.customers})
