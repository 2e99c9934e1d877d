"""The admin console (/admin) and the staff consoles' shared static files (/static/admin/)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from clinicall.auth.access import require
from clinicall.nav import NAV_KEY, NavLink

ADMIN_DIR = Path(__file__).resolve().parent / "web" / "admin"
routes = web.RouteTableDef()
# Sections other roles than admin may open (admin opens all).
SECTION_ROLES = {"stats": ("supervisor",)}


@routes.get("/admin")
async def admin_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/admin/users")


@routes.get("/admin/{section:[a-z-]+}")
async def admin_page(request: web.Request) -> web.StreamResponse:
    require(request, "admin", *SECTION_ROLES.get(request.match_info["section"], ()))
    return web.FileResponse(ADMIN_DIR / "admin.html", headers={"Cache-Control": "no-store"})


def setup_admin(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_static("/static/admin/", ADMIN_DIR)
    app[NAV_KEY].append(NavLink("/admin/users", "Quản trị", "Administration", ("admin",), "管理"))
    app[NAV_KEY].append(NavLink("/admin/stats", "Thống kê", "Statistics", ("supervisor",), "统计"))
