"""The reception console page (/reception) and its script."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from clinicall.auth.access import require
from clinicall.nav import NAV_KEY, NavLink

WEB_DIR = Path(__file__).resolve().parent / "web"
routes = web.RouteTableDef()


@routes.get("/reception")
async def reception_page(request: web.Request) -> web.StreamResponse:
    require(request, "reception", "supervisor")
    return web.FileResponse(WEB_DIR / "reception.html", headers={"Cache-Control": "no-store"})


@routes.get("/static/reception/reception.js")
async def reception_script(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "reception.js", headers={"Content-Type": "text/javascript; charset=utf-8"})


def setup_reception(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[NAV_KEY].append(NavLink("/reception", "Lễ tân", "Reception", ("reception", "supervisor")))
