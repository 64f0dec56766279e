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

    @app.exception_handler(psycopg.DataError)
    async def _bad_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # a value the database cannot hold: an id beyond 32 bits, a NUL character in text, …
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return JSONResponse({"detail": f"a value in the request cannot be used: {first}"}, status_code=422)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "database unavailable, try again shortly"}, status_code=503,
                            headers={"Retry-After": "5"})


def document_responses(app: FastAPI) -> None:
    """Auth (401, 403, 404 for another customer's things) on every non-public operation, and a 422 that is either FastAPI's validation body (a list of field errors) or ours (one sentence:
    `Unprocessable`, a value the database cannot hold). Say so in one place, for every operation,
    so that the OpenAPI document describes what the API really sends."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ErrorBody", {"type": "object", "title": "ErrorBody", "required": ["detail"],
                                         "properties": {"detail": {"type": "string", "title": "Detail"}}})
        either = {"anyOf": [{"$ref": "#/components/schemas/HTTPValidationError"},
                            {"$ref": "#/components/schemas/ErrorBody"}]}
        from api.access import PUBLIC
        spec["components"].setdefault("securitySchemes", {}).update({
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A token from POST /api/v1/auth/token, or an API token"},
            "session": {"type": "apiKey", "in": "cookie", "name": "fleetcare_session",
                        "description": "The pages' session; changes need the header X-Requested-With: fleetcare"}})
        denied = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        for path, operations in spec.get("paths", {}).items():
            for method, op in operations.items():
                responses = op.setdefault("responses", {})
                if f"{method.upper()} {path}" not in PUBLIC:
                    op["security"] = [{"bearer": []}, {"session": []}]
                    responses.setdefault("401", {"description": "Not logged in, or the token expired", **denied})
                    responses.setdefault("403", {"description": "The account's role may not do this", **denied})
                    if "{" in path:
                        responses.setdefault("404", {"description": "No such thing, or another customer's", **denied})
                if "422" in responses or op.get("parameters") or op.get("requestBody"):
                    entry = responses.setdefault("422", {"description": "Validation error"})
                    entry["content"] = {"application/json": {"schema": either}}
        if "HTTPValidationError" not in schemas:
            schemas["HTTPValidationError"] = {"type": "object", "title": "HTTPValidationError", "properties": {
                "detail": {"type": "array", "items": {"type": "object"}, "title": "Detail"}}}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
