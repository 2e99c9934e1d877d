"""The home page: links to the pages the user's roles may open."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()
HOME_PAGE = Path(__file__).resolve().parent / "web" / "home.html"


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(HOME_PAGE, headers={"Cache-Control": "no-store"})
