"""The reception console page (/reception) and its script, and the arrivals that booking statistics need."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from clinicall.auth.access import require
from clinicall.db import Database
from clinicall.nav import NAV_KEY, NavLink

WEB_DIR = Path(__file__).resolve().parent / "web"
routes = web.RouteTableDef()


@routes.get("/reception")
async def reception_page(request: web.Request) -> web.StreamResponse:
    require(request, "reception")
    return web.FileResponse(WEB_DIR / "reception.html", headers={"Cache-Control": "no-store"})


@routes.get("/static/reception/reception.js")
async def reception_script(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "reception.js", headers={"Content-Type": "text/javascript; charset=utf-8"})


def setup_reception(app: web.Application) -> None:
    app.router.add_routes(routes)
    app[NAV_KEY].append(NavLink("/reception", "Lễ tân", "Reception", ("reception",)))


async def patient_arrival_days(db: Database, patient_ids: Collection[int], day_from: dt.date,
                               day_to: dt.date) -> dict[int, set[dt.date]]:
    """Local days on which each of these patients got a ticket (checked in or linked at reception);
    used by crm_bridge's booking -> arrival statistics."""
    from queue_display.models import Ticket  # the queue's own table, read here inside the queue room

    ids = sorted({int(i) for i in patient_ids})
    days: dict[int, set[dt.date]] = {i: set() for i in ids}
    async with db.session() as s:
        for start in range(0, len(ids), 500):
            rows = (await s.execute(select(Ticket.patient_id, Ticket.local_day).where(
                Ticket.patient_id.in_(ids[start:start + 500]), Ticket.local_day >= day_from,
                Ticket.local_day <= day_to))).all()
            for patient_id, day in rows:
                days[patient_id].add(day)
    return days
