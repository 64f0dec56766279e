"""One place that maps failures to responses: clear words, right status, never a stack trace."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

log = logging.getLogger(__name__)


class NotFound(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


class BadRequest(Exception):
    def __init__(self, detail: str) -> None:
        self.detail = detail


class Conflict(Exception):
    """The request is valid but does not fit the current state (a case action in the wrong state)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail


class Unprocessable(Exception):
    """Well-formed, but it names something that does not exist or does not fit together."""

    def __init__(self, detail: str) -> None:
        self.detail = detail


def install(app: FastAPI) -> None:
    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=409)

    @app.exception_handler(Unprocessable)
    async def _unprocessable(request: Request, exc: Unprocessable) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": f"{exc.what} not found"}, status_code=404)

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=400)

    from api.commands import BrokerUnavailable
    from api.routes.diagnostics import NotEnrolled

    @app.exception_handler(NotEnrolled)
    async def _not_enrolled(request: Request, exc: NotEnrolled) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(BrokerUnavailable)
    async def _broker_down(request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"cannot send the command: {exc}"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "database unavailable, try again shortly"}, status_code=503,
                            headers={"Retry-After": "5"})
