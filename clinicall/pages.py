"""The home page, and the page a user sees when their roles may not open a page (in their language)."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from clinicall.auth.access import principal

routes = web.RouteTableDef()
WEB_DIR = Path(__file__).resolve().parent / "web"
HOME_PAGE = WEB_DIR / "home.html"
ROLE_NAMES_VI = {"admin": "Quản trị", "supervisor": "Giám sát", "agent": "Tổng đài viên", "reception": "Lễ tân",
                 "doctor": "Bác sĩ"}


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(HOME_PAGE, headers={"Cache-Control": "no-store"})


def wants_page(request: web.Request) -> bool:
    """A browser opening a page (not a script calling an API)."""
    return (request.method == "GET" and not request.path.startswith(("/api/", "/ws/", "/static/"))
            and "text/html" in request.headers.get("Accept", ""))


def forbidden_page(request: web.Request, roles: list[str]) -> web.Response:
    """403 as a page: which roles the page is for, the user's own, a link home. The script shows it in the
    language the user chose on the other pages; the Vietnamese text is there without scripts too."""
    who = principal(request)
    mine = sorted(who.roles) if who is not None else []
    shown = [r for r in ["admin", *roles] if r in ROLE_NAMES_VI]
    why = (f"Trang này dành cho: {', '.join(ROLE_NAMES_VI[r] for r in dict.fromkeys(shown))}. "
           f"Tài khoản của bạn có vai trò: {', '.join(ROLE_NAMES_VI.get(r, r) for r in mine) or '—'}.")
    text = (WEB_DIR / "forbidden.html").read_text(encoding="utf-8")
    text = (text.replace("%ROLES%", html.escape(",".join(dict.fromkeys(shown)))).replace("%MINE%", html.escape(",".join(mine)))
            .replace("%WHY%", html.escape(why)))
    return web.Response(status=403, text=text, content_type="text/html", headers={"Cache-Control": "no-store"})
