"""The care loop's pages: the referring doctor's /referrer, the staff's /treatment (treatment entries and
result files of one patient), and the patient's own phone-sized /me (no login needed to open the page;
its data needs the patient's login)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from clinicall.auth.access import public, require
from clinicall.nav import NAV_KEY, NavLink

WEB_DIR = Path(__file__).resolve().parent / "web"
routes = web.RouteTableDef()
NO_STORE = {"Cache-Control": "no-store"}


@routes.get("/referrer")
async def referrer_page(request: web.Request) -> web.StreamResponse:
    require(request, "referrer")
    return web.FileResponse(WEB_DIR / "referrer.html", headers=NO_STORE)


@routes.get("/referrer/join")
@public
async def referrer_join_page(request: web.Request) -> web.StreamResponse:
    """The invited referring doctor makes his account (the token in the link is checked when he sends the form)."""
    return web.FileResponse(WEB_DIR / "join.html", headers={**NO_STORE, "Referrer-Policy": "no-referrer"})


@routes.get("/treatment")
async def treatment_page(request: web.Request) -> web.StreamResponse:
    require(request, "agent", "supervisor", "doctor")
    return web.FileResponse(WEB_DIR / "treatment.html", headers=NO_STORE)


@routes.get("/me")
@public
async def patient_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "me.html", headers=NO_STORE)


def setup_care_pages(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[NAV_KEY].append(NavLink("/referrer", "Bệnh nhân giới thiệu", "Referred patients", ("referrer",), "转诊患者"))
    app[NAV_KEY].append(NavLink("/treatment", "Điều trị", "Treatment", ("agent", "supervisor", "doctor"), "治疗"))
