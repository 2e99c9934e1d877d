"""The supervisors' messaging page /messages (message log, gateway settings) and static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from clinicall.auth.access import require
from clinicall.nav import NAV_KEY, NavLink

WEB_DIR = Path(__file__).resolve().parent / "web"
routes = web.RouteTableDef()


@routes.get("/messages")
async def messages_page(request: web.Request) -> web.StreamResponse:
    require(request, "supervisor")
    return web.FileResponse(WEB_DIR / "messages.html", headers={"Cache-Control": "no-store"})


def setup_pages(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_static("/static/messaging/", WEB_DIR)
    app[NAV_KEY].append(NavLink("/messages", "Tin nhắn", "Messages", ("supervisor",), "短信"))
