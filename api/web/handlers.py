"""What the web UI adds to the app: its pages, its static files, and error pages for people.

A browser asking for a page without a session is sent to the login form (303 to ``/login?next=…``)
instead of getting the JSON 401 the API answers; a 403 or 404 of a page is an HTML page in the
user's language. Everything under ``/api/`` and every request that does not ask for HTML keeps the
API's JSON answers unchanged: the handlers hand those to the ones installed before them.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.web import pages


def wants_page(request: Request) -> bool:
    """A person's browser asking for a page (not the API, not a script)."""
    path = request.url.path
    if path.startswith(("/api/", "/static/")) or path in ("/openapi.json", "/healthz") or path.startswith("/docs"):
        return False
    return "text/html" in request.headers.get("accept", "")


def install(app: FastAPI) -> None:
    """Mount /static, add the pages, and wrap the HTTP error handlers for page requests."""
    static = resources.files("api").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(pages.router)

    previous_http: Any = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)
    previous_validation: Any = app.exception_handlers.get(RequestValidationError,
                                                          request_validation_exception_handler)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_page(request):
            if exc.status_code == 401:
                return pages.login_redirect(request)
            if exc.status_code in (403, 404):
                scope = getattr(request.state, "scope", None)
                return pages.render(request, "error.html.j2", scope, status=exc.status_code,
                                    kind="forbidden" if exc.status_code == 403 else "not_found")
        return await previous_http(request, exc)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # /devices/abc: no such page (the API's 422 stays for the API)
        if wants_page(request) and request.method == "GET":
            return pages.render(request, "error.html.j2", getattr(request.state, "scope", None), status=404,
                                kind="not_found")
        return await previous_validation(request, exc)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
