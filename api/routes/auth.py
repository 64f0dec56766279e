"""Logging in (OAuth2 password form → bearer token), who am I, and API tokens for integrations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api import auth
from api.deps import db_sync, principal
from api.errors import NotFound
from api.models import ErrorBody

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Conn = Annotated[psycopg.Connection, Depends(db_sync)]
Who = Annotated[auth.Principal, Depends(principal)]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the token is valid")


class Me(BaseModel):
    user_id: int
    username: str
    role: str
    customers: list[int] | None = Field(description="The customers this user may see; null: all")


class ApiTokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="What the integration is")


class ApiTokenPublic(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenNew(ApiTokenPublic):
    token: str = Field(description="Shown once: only its SHA-256 is stored")


@router.post("/token", response_model=Token, summary="Log in: OAuth2 password form (username, password)",
             responses={401: {"model": ErrorBody, "description": "Wrong user name or password"},
                        429: {"model": ErrorBody, "description": "Too many failed logins: wait Retry-After"}})
def token(conn: Conn, request: Request, username: Annotated[str, Form(max_length=100)],
          password: Annotated[str, Form(max_length=1000)]) -> Any:
    login = auth.log_in(conn, username, password, request.client.host if request.client else "?")
    if login.retry_after > 0:
        return JSONResponse({"detail": "too many failed logins; try again later"}, status_code=429,
                            headers={"Retry-After": str(int(login.retry_after) + 1)})
    if login.token is None:
        return JSONResponse({"detail": "wrong user name or password"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    return {"access_token": login.token, "token_type": "bearer", "expires_in": int(auth.SESSION_HOURS * 3600)}


@router.get("/me", response_model=Me, summary="Who the token belongs to and what it may see")
def me(who: Who) -> dict[str, Any]:
    return {"user_id": who.user_id, "username": who.username, "role": who.role,
            "customers": None if who.customers is None else sorted(who.customers)}


@router.get("/api-tokens", response_model=list[ApiTokenPublic], summary="My API tokens")
def list_tokens(conn: Conn, who: Who) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens "
                        "WHERE user_id = %s AND kind = 'api' ORDER BY id", (who.user_id,)).fetchall()
    return [dict(zip(("id", "name", "created_at", "last_used_at", "revoked_at"), r)) for r in rows]


@router.post("/api-tokens", response_model=ApiTokenNew, status_code=201,
             summary="A token for an integration, acting as me until revoked")
def create_token(conn: Conn, who: Who, body: ApiTokenIn) -> dict[str, Any]:
    with conn.transaction():
        tid, value = auth.issue_token(conn, who.user_id, "api", body.name, hours=None, by=who.username)
        row = conn.execute("SELECT created_at FROM api_tokens WHERE id = %s", (tid,)).fetchone()
    return {"id": tid, "name": body.name, "created_at": row[0], "last_used_at": None, "revoked_at": None,
            "token": value}


@router.delete("/api-tokens/{token_id}", status_code=204, summary="Revoke one of my API tokens",
               responses={404: {"model": ErrorBody, "description": "No such token of mine"}})
def revoke(conn: Conn, who: Who, token_id: int) -> None:
    with conn.transaction():
        mine = conn.execute("SELECT 1 FROM api_tokens WHERE id = %s AND user_id = %s AND kind = 'api'",
                            (token_id, who.user_id)).fetchone()
        if mine is None or not auth.revoke_token(conn, token_id, who.username):
            raise NotFound(f"token {token_id}")
