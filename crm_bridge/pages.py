"""The agent console page (/agent) and its static files (/static/crm_bridge/)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from clinicall.auth.access import require
from clinicall.nav import NAV_KEY, NavLink

WEB_DIR = Path(__file__).resolve().parent / "web"
routes = web.RouteTableDef()


@routes.get("/agent")
async def agent_page(request: web.Request) -> web.StreamResponse:
    require(request, "agent", "supervisor")
    return web.FileResponse(WEB_DIR / "agent.html", headers={"Cache-Control": "no-store"})


def setup_pages(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_static("/static/crm_bridge/", WEB_DIR)
    app[NAV_KEY].append(NavLink("/agent", "Tổng đài viên", "Agent console", ("agent", "supervisor")))
