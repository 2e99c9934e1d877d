"""The application factory used by `clinicall serve` and by the tests."""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import WSCloseCode, web

from clinicall import admin_pages, health, openapi, pages
from clinicall.auth import http as auth_http
from clinicall.auth import service as auth_service
from clinicall.auth.live import live_sockets_ctx
from clinicall.auth.middleware import auth_middleware
from clinicall.auth.throttle import throttle_ctx
from clinicall.auth.token_cache import token_cache_ctx
from clinicall.bus import make_bus
from clinicall.db import Database
from clinicall.exports import export_middleware
from clinicall.hotpath import HotPath
from clinicall.hub import Hub
from clinicall.keys import (
    BUS_KEY,
    DB_KEY,
    HEALTH_KEY,
    HOT_PATH_KEY,
    HUB_KEY,
    SETTINGS_KEY,
    TASKS_KEY,
    WEBSOCKETS_KEY,
)
from clinicall.metrics import METRICS_KEY, Metrics
from clinicall.middleware import problem_middleware, request_log_middleware
from clinicall.nav import NAV_KEY
from clinicall.problem import Problem
from clinicall.retention import retention_ctx
from clinicall.rooms import rooms
from clinicall.settings import Settings, SettingsError
from clinicall.tasks import BackgroundTasks

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    db = Database(settings.database.url, echo=settings.database.echo,
                  connect_timeout=settings.database.connect_timeout_seconds)
    app[DB_KEY] = db
    await _bootstrap_admin(app)
    yield
    await db.dispose()


async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    bus = make_bus(settings.bus.redis_url, settings.bus.channel)
    app[BUS_KEY] = bus
    await bus.start()
    yield
    await bus.close()


async def tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[TASKS_KEY].close()


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = Hub()
    app[HUB_KEY] = hub
    app[TASKS_KEY].spawn(hub.ping_loop(app[SETTINGS_KEY].display.heartbeat_seconds), name="hub-ping")
    yield
    await hub.close()


async def close_websockets(app: web.Application) -> None:
    for ws in list(app[WEBSOCKETS_KEY]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def _bootstrap_admin(app: web.Application) -> None:
    await bootstrap_admin(app[DB_KEY], app[SETTINGS_KEY])


async def bootstrap_admin(db: Database, settings: Settings) -> None:
    """Creates auth.bootstrap_admin when no admin exists; under the start-up lock, so instances
    starting together create it once."""
    auth = settings.auth
    if not auth.bootstrap_admin:
        return
    if not auth.bootstrap_password:
        raise SettingsError("CLINICALL_AUTH__BOOTSTRAP_ADMIN is set but CLINICALL_AUTH__BOOTSTRAP_PASSWORD is not.")
    async with db.startup_lock():
        if await auth_service.count_admins(db) > 0:
            return
        if await auth_service.user_by_name(db, auth.bootstrap_admin) is not None:
            log.warning("bootstrap admin %r exists without the admin role; not changed", auth.bootstrap_admin)
            return
        try:
            await auth_service.create_user(db, auth.bootstrap_admin, auth.bootstrap_password, ["admin"])
        except Problem as problem:
            raise SettingsError(f"CLINICALL_AUTH__BOOTSTRAP_ADMIN/PASSWORD: {problem.detail}") from None
        log.info("created the first admin %r from the environment", auth.bootstrap_admin)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[request_log_middleware, problem_middleware, auth_middleware, export_middleware],
        client_max_size=32 * 1024 * 1024,
    )
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = Metrics()
    app[TASKS_KEY] = BackgroundTasks()
    app[HOT_PATH_KEY] = HotPath()
    app[HEALTH_KEY] = {}
    app[WEBSOCKETS_KEY] = weakref.WeakSet()
    app[NAV_KEY] = []
    # Order matters: cleanup runs in reverse, so tasks stop before the bus and the database close.
    app.cleanup_ctx.extend([database_ctx, bus_ctx, token_cache_ctx, tasks_ctx, live_sockets_ctx, hub_ctx, throttle_ctx,
                            retention_ctx])
    app.on_shutdown.append(close_websockets)
    app.router.add_routes(health.routes)
    app.router.add_routes(auth_http.routes)
    app.router.add_routes(pages.routes)
    app.router.add_static("/static/clinicall", STATIC_DIR, name="static-frame")
    admin_pages.setup_admin(app)
    openapi.setup_openapi(app)
    for room in rooms():
        room.setup(app)
    return app
