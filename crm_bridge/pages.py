"""The agent console (/agent), the care lists (/care/<section>) and their static files (/static/crm_bridge/)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from clinicall.auth.access import require
from clinicall.nav import NAV_KEY, NavLink

WEB_DIR = Path(__file__).resolve().parent / "web"
routes = web.RouteTableDef()
# Care-list sections and who opens them (admin passes everywhere).
CARE_SECTIONS = {"unassigned": ("agent", "supervisor"), "transfers": ("agent", "supervisor"),
                 "follow-ups": ("agent", "supervisor"), "calls": ("supervisor",), "duplicates": ("supervisor",),
                 "import": ("supervisor",)}


@routes.get("/agent")
async def agent_page(request: web.Request) -> web.StreamResponse:
    require(request, "agent", "supervisor")
    return web.FileResponse(WEB_DIR / "agent.html", headers={"Cache-Control": "no-store"})


@routes.get("/care")
async def care_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/care/unassigned")


@routes.get("/care/{section:[a-z-]+}")
async def care_page(request: web.Request) -> web.StreamResponse:
    roles = CARE_SECTIONS.get(request.match_info["section"])
    if roles is None:
        raise web.HTTPNotFound()
    require(request, *roles)
    return web.FileResponse(WEB_DIR / "care.html", headers={"Cache-Control": "no-store"})


def setup_pages(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_static("/static/crm_bridge/", WEB_DIR)
    app[NAV_KEY].append(NavLink("/agent", "Tổng đài viên", "Agent console", ("agent", "supervisor"), "坐席控制台"))
    app[NAV_KEY].append(NavLink("/care/unassigned", "Điều phối chăm sóc", "Care lists", ("agent", "supervisor"), "护理协调"))
