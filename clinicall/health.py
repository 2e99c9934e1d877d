"""Probes and /metrics: /livez (the process answers), /readyz (it can serve: the database answers;
a missing Asterisk or Redis does not make it unready), /healthz (every check, for people).

Anyone may ask /healthz and /readyz (load balancers, monitors), but only an admin or the metrics scraper
(auth.metrics_token) reads the details: addresses, hosts and ports, error texts, counters. Everyone else
gets each check's `ok`, `optional`, `state`, `kind` and `demo` only."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from clinicall.auth.access import principal, public, require, scrape
from clinicall.keys import BUS_KEY, DB_KEY, HEALTH_KEY
from clinicall.metrics import METRICS_KEY

routes = web.RouteTableDef()
PUBLIC_FIELDS = ("ok", "optional", "state", "kind", "demo")  # demo: the agent page offers the demo PBX's call


def sees_details(request: web.Request) -> bool:
    """An admin, or the scraper's token (auth.metrics_token)."""
    who = principal(request)
    return who is not None and (who.kind == "scrape" or (who.is_user and who.has_any("admin")))


def shown(request: web.Request, checks: dict[str, Any]) -> dict[str, Any]:
    if sees_details(request):
        return checks
    return {name: {key: check[key] for key in PUBLIC_FIELDS if key in check} for name, check in checks.items()}


async def _database(app: web.Application) -> dict[str, Any]:
    try:
        await asyncio.wait_for(app[DB_KEY].ping(), timeout=3)
        return {"ok": True, "kind": "postgresql" if app[DB_KEY].is_postgres else "sqlite"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, Any] = {"database": await _database(app), "bus": app[BUS_KEY].health()}
    for name, check in app[HEALTH_KEY].items():
        try:
            checks[name] = await asyncio.wait_for(check(), timeout=3)
        except Exception as exc:
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    required_ok = all(c.get("ok") or c.get("optional") for c in checks.values())
    return web.json_response({"status": "ok" if required_ok else "degraded", "checks": shown(request, checks)},
                             status=200 if required_ok else 503)


@routes.get("/livez")
@public
async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


@routes.get("/readyz")
@public
async def readyz(request: web.Request) -> web.Response:
    database = await _database(request.app)
    ready = bool(database["ok"])
    response = web.json_response({"status": "ready" if ready else "unready",
                                  "checks": shown(request, {"database": database})},
                                 status=200 if ready else 503)
    if not ready:
        response.headers["Retry-After"] = "5"
    return response


@routes.get("/metrics")
@scrape
async def metrics(request: web.Request) -> web.Response:
    """An admin, or Prometheus with `Authorization: Bearer <auth.metrics_token>`."""
    who = principal(request)
    if who is None or who.kind != "scrape":
        require(request, "admin")
    return request.app[METRICS_KEY].render()
