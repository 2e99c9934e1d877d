"""The reception console page (/reception) and its script; a patient's tickets for the agent console's card
(GET /api/patient-tickets?patient_id=); the arrival days that crm_bridge's booking statistics need."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from clinicall.auth.access import require
from clinicall.db import Database
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.nav import NAV_KEY, NavLink
from clinicall.problem import Problem

WEB_DIR = Path(__file__).resolve().parent / "web"
routes = web.RouteTableDef()
MAX_TICKETS = 50


@routes.get("/reception")
async def reception_page(request: web.Request) -> web.StreamResponse:
    require(request, "reception")
    return web.FileResponse(WEB_DIR / "reception.html", headers={"Cache-Control": "no-store"})


@routes.get("/reception/tickets/{id}/slip")
async def slip_page(request: web.Request) -> web.StreamResponse:
    """A ticket's slip, laid out for a receipt printer, printed again when the patient lost theirs."""
    require(request, "reception")
    return web.FileResponse(WEB_DIR / "slip.html", headers={"Cache-Control": "no-store"})


@routes.get("/static/reception/slip.js")
async def slip_script(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "slip.js", headers={"Content-Type": "text/javascript; charset=utf-8"})


@routes.get("/static/reception/reception.js")
async def reception_script(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "reception.js", headers={"Content-Type": "text/javascript; charset=utf-8"})


@routes.get("/api/patient-tickets")
async def patient_tickets(request: web.Request) -> web.Response:
    """GET /api/patient-tickets?patient_id=: one patient's latest tickets, for the agent console's card
    (the queue's own GET /api/tickets lists a day's tickets for reception and doctors)."""
    from crm_bridge.service import agent_may_access, audit_views, front_desk_window, local_today
    from queue_display.models import Ticket

    who = require(request, "agent", "supervisor", "reception", "doctor")
    raw = request.query.get("patient_id", "")
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
        raise Problem(400, "Patient id needed", "Give ?patient_id= as the numeric id of a patient.")
    patient_id = int(raw)
    settings = request.app[SETTINGS_KEY]
    db = request.app[DB_KEY]
    if not await agent_may_access(db, who, patient_id, zone=settings.clinic.zone()):
        raise Problem(403, "Not your patient", "You may only see the tickets of patients you may open.",
                      code="not_your_patient")
    query = select(Ticket).where(Ticket.patient_id == patient_id).limit(MAX_TICKETS)
    if not who.has_any("agent", "supervisor"):  # reception and doctors: the days they see (yesterday..tomorrow)
        first, last = front_desk_window(local_today(settings.clinic.zone()))
        query = query.where(Ticket.local_day >= first, Ticket.local_day <= last)
    audit_views(request, [patient_id], "tickets")
    return web.json_response({"tickets": await _tickets_json(db, settings.clinic.language, query)})


async def _tickets_json(db: Database, language: str, query: Any) -> list[dict[str, Any]]:
    from queue_display.events import back_to_json, ticket_json
    from queue_display.models import QueueRoom, QueueService, Ticket

    async with db.session() as s:
        tickets = (await s.scalars(query.order_by(Ticket.issued_at.desc(), Ticket.id.desc()))).all()
        services = {x.id: x for x in (await s.scalars(select(QueueService))).all()}
        rooms = {x.id: x for x in (await s.scalars(select(QueueRoom))).all()}
    return [{**ticket_json(t, services.get(t.service_id), rooms.get(t.room_id) if t.room_id else None, language,
                           back=back_to_json(t, services, rooms, language)),
             "patient_id": t.patient_id, "local_day": t.local_day.isoformat()} for t in tickets]


async def tickets_of_day(db: Database, patient_id: int, day: dt.date) -> list[dict[str, Any]]:
    """One patient's tickets of one local day, named in Vietnamese (crm_bridge's patient page asks through
    TICKETS_OF_DAY_KEY)."""
    from queue_display.models import Ticket

    return await _tickets_json(db, "vi", select(Ticket).where(Ticket.patient_id == patient_id, Ticket.local_day == day))


def setup_reception(app: web.Application) -> None:
    from crm_bridge.service import ARRIVAL_DAYS_KEY, TICKETS_OF_DAY_KEY
    from queue_display import booking_stats

    app[ARRIVAL_DAYS_KEY] = patient_arrival_days
    app[TICKETS_OF_DAY_KEY] = tickets_of_day
    app.router.add_routes(routes)
    booking_stats.setup_stats(app)
    app[NAV_KEY].append(NavLink("/reception", "Lễ tân", "Reception", ("reception",)))


async def patient_arrival_days(db: Database, patient_ids: Collection[int], day_from: dt.date,
                               day_to: dt.date) -> dict[int, set[dt.date]]:
    """Local days on which each of these patients got a ticket (checked in or linked at reception);
    used by the booking -> arrival statistics (queue_display/booking_stats.py)."""
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
