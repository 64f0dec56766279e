"""The FastAPI application: routers, error mapping, the connection pools, the web UI (api/web/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from agent.runner import agent_version
from api import errors
from api.access import access, check_routes
from api.models import Health
from agent import wire
from api.commands import Commander
from api.routes import (alarms, archive, auth as auth_routes, callbacks, cases, contracts, customers, devices, diagnostics, fleet,
                        maintenance, notifications)
from api.routes import inspections as inspections_routes
from api.routes import audit, stream
from api.web import handlers as web
from collector.config import MqttSection


def create_app(database_url: str, *, pool_max: int = 10, mqtt: MqttSection | None = None,
               case_manager: Any = None, inspections: Any = None) -> FastAPI:
    """The app does not need the database to start: routes answer 503 until it is reachable.
    ``mqtt`` names the broker that carries diagnostics commands (none: those routes answer 503);
    ``case_manager`` is the CaseManager of the server's configuration (none: the shipped policies),
    ``inspections`` its inspection planner (none: the shipped rules and checklists)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(database_url, min_size=1, max_size=pool_max, open=False,
                                   kwargs={"autocommit": True})
        await pool.open(wait=False)
        app.state.pool = pool
        sync_pool = ConnectionPool(database_url, min_size=1, max_size=max(2, pool_max // 2), open=False,
                                   kwargs={"autocommit": True})
        sync_pool.open(wait=False)
        app.state.sync_pool = sync_pool
        if case_manager is None:
            from alerting.cases import CaseManager
            app.state.cases = CaseManager()
        else:
            app.state.cases = case_manager
        if inspections is None:
            from alerting.inspections import Inspections
            app.state.inspections = Inspections()
        else:
            app.state.inspections = inspections
        app.state.commander = (Commander(mqtt.url, mqtt.username, mqtt.password, mqtt.ca_file)
                               if mqtt is not None and mqtt.url else None)
        app.state.topic_prefix = mqtt.topic_prefix if mqtt is not None else wire.DEFAULT_PREFIX
        try:
            yield
        finally:
            if app.state.commander is not None:
                app.state.commander.close()
            sync_pool.close()
            await pool.close()

    app = FastAPI(title="fleetcare", version=agent_version(), lifespan=lifespan, dependencies=[Depends(access)],
                  description="Watch the equipment installed at customer sites: devices, their live "
                              "status and metric history, alarms, the service cases opened from them with their SLA "
                              "clocks, the device archive, inspections planned from health, and customer health "
                              "reports.")
    errors.install(app)
    errors.document_responses(app)
    app.include_router(devices.router)
    app.include_router(alarms.router)
    app.include_router(fleet.router)
    app.include_router(diagnostics.router)
    app.include_router(cases.router)
    app.include_router(contracts.router)
    app.include_router(maintenance.router)
    app.include_router(notifications.router)
    app.include_router(callbacks.router)
    app.include_router(archive.router)
    app.include_router(inspections_routes.router)
    app.include_router(customers.router)
    app.include_router(auth_routes.router)
    app.include_router(stream.router)
    app.include_router(audit.router)

    @app.get("/healthz", response_model=Health, tags=["health"],
             responses={503: {"model": Health, "description": "The database is unreachable"}})
    async def healthz() -> Any:
        """Liveness and readiness: 200 when the database answers, 503 otherwise."""
        ok = True
        try:
            async with app.state.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
        except Exception:
            ok = False
        body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "unavailable",
                "version": agent_version()}
        return JSONResponse(body, status_code=200 if ok else 503)

    # the engineers' console, the customer portal, the login form and /static (api/web/)
    web.install(app)

    check_routes(app)
    return app
