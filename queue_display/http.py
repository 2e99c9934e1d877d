"""The queue's HTTP API: services and rooms (admin), tickets (reception, kiosk), room operations
(doctor, reception), the queue, the display snapshot and statistics."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import DBAPIError

from clinicall.auth.access import display_feed, principal, public, require
from clinicall.auth.service import Principal
from clinicall.client_address import client_address
from clinicall.db import utcnow
from clinicall.keys import DB_KEY, HOT_PATH_KEY, SETTINGS_KEY
from clinicall.problem import Problem, check_day, int_param, parse_body
from crm_bridge.service import agent_may_access, audit_views, front_desk_window, patient_brief, record_access
from queue_display import service
from queue_display.display import check_token_scope
from queue_display.events import room_json, service_json
from queue_display.models import ACTIVE_STATUSES, STATUSES, QueueRoom, Ticket
from queue_display.runtime import RUNTIME_KEY, QueueRuntime
from queue_display.state import load_state, masked_names, tickets_json
from queue_display.stats import parse_range
from queue_display.ticket_printer import print_ticket
from queue_display.tickets import local_day

routes = web.RouteTableDef()
RETRIES = 3
RETRYABLE = {"40P01", "40001"}  # deadlock_detected, serialization_failure
OPERATORS = ("doctor", "reception")
Priority = Literal["emergency", "elderly", "pregnant", "disabled", "booked", "normal"]


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_id: int = Field(ge=1, lt=2**31)
    patient_id: int | None = Field(None, ge=1, lt=2**63)
    priority: Priority = "normal"


class KioskTicketIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    service_id: int = Field(ge=1, lt=2**31)
    kiosk: str | None = Field(None, max_length=64, description="the kiosk's name (queue.kiosk_printers)")


class CheckinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: int = Field(ge=1, lt=2**63)
    service_id: int = Field(ge=1, lt=2**31)
    priority: Priority | None = None


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    room_id: int = Field(ge=1, lt=2**31)


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_id: int = Field(ge=1, lt=2**31)
    return_to_room: bool = True


def _runtime(request: web.Request) -> QueueRuntime:
    return request.app[RUNTIME_KEY]


async def _run(request: web.Request, operation: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Runs one queue operation; on SQLite, one at a time in this process (see QueueRuntime.serialised)."""
    for attempt in range(RETRIES):
        try:
            async with _runtime(request).serialised():
                return await operation(request.app[DB_KEY], request.app[SETTINGS_KEY], *args, **kwargs)
        except Exception as exc:
            # PostgreSQL chose this transaction as a deadlock victim (or could not serialise it): it was
            # rolled back whole, so running it again is safe (asyncpg's own error on the raw call-next path,
            # SQLAlchemy's DBAPIError around it elsewhere)
            if _sqlstate(exc) not in RETRYABLE or attempt == RETRIES - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc.orig if isinstance(exc, DBAPIError) else exc, "sqlstate", None)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def staff_ticket(ticket: Ticket, public_data: dict[str, Any], request: web.Request) -> dict[str, Any]:
    """A ticket for staff and for whoever got it: adds the patient id, every timestamp and the status link."""
    settings = request.app[SETTINGS_KEY]
    stamps = {name: (value.isoformat() if value else None) for name in (
        "issued_at", "enqueued_at", "called_at", "recalled_at", "started_at", "done_at", "skipped_at", "noshow_at",
        "held_at", "resumed_at", "restored_at", "transferred_at") for value in [getattr(ticket, name)]}
    return {**public_data, **stamps, "patient_id": ticket.patient_id, "local_day": ticket.local_day.isoformat(),
            "return_service_id": ticket.return_service_id, "return_room_id": ticket.return_room_id,
            "preferred_room_id": ticket.preferred_room_id,
            "status_url": service.status_url(settings, ticket.token),
            "qr_svg_url": f"/t/{ticket.token}/qr.svg"}


async def _respond(request: web.Request, outcome: service.Outcome | None, status: int = 200) -> web.Response:
    return _json(await _body(request, outcome), status)


async def _body(request: web.Request, outcome: service.Outcome | None) -> dict[str, Any]:
    applied = await _runtime(request).applied(outcome)
    if outcome is None or applied.ticket is None or applied.row is None:
        return {"ticket": None, "finished": []}
    return {"ticket": staff_ticket(applied.row, applied.ticket, request), "finished": applied.finished,
            **{k: v for k, v in outcome.detail.items() if k not in ("ticket", "finished")}}


# ------------------------------------------------------------------------------ services and rooms

@routes.get("/api/services")
async def services_list(request: web.Request) -> web.Response:
    require(request)
    language = request.app[SETTINGS_KEY].clinic.language
    return _json({"services": [service_json(x, language) for x in await service.list_services(request.app[DB_KEY])]})


@routes.post("/api/services")
async def services_create(request: web.Request) -> web.Response:
    require(request, "admin")
    data = await parse_body(request, service.ServiceIn)
    created = await service.create_service(request.app[DB_KEY], data)
    await _runtime(request).apply(None)
    await _runtime(request).catalog_changed()
    return _json({"service": service_json(created, request.app[SETTINGS_KEY].clinic.language)}, 201)


@routes.patch("/api/services/{id}")
async def services_update(request: web.Request) -> web.Response:
    require(request, "admin")
    service_id = int_param(request, "id")
    patch = await parse_body(request, service.ServicePatch)
    updated = await service.update_service(request.app[DB_KEY], service_id, patch)
    await _runtime(request).refresh_and_publish({updated.id})
    await _runtime(request).catalog_changed()
    return _json({"service": service_json(updated, request.app[SETTINGS_KEY].clinic.language)})


@routes.get("/api/rooms")
async def rooms_list(request: web.Request) -> web.Response:
    require(request)
    language = request.app[SETTINGS_KEY].clinic.language
    return _json({"rooms": [room_json(r, language) for r in await service.list_rooms(request.app[DB_KEY])]})


@routes.post("/api/rooms")
async def rooms_create(request: web.Request) -> web.Response:
    require(request, "admin")
    data = await parse_body(request, service.RoomIn)
    created = await service.create_room(request.app[DB_KEY], data)
    await _runtime(request).refresh_and_publish(set(created.service_ids))
    await _runtime(request).catalog_changed()
    return _json({"room": room_json(created, request.app[SETTINGS_KEY].clinic.language)}, 201)


@routes.delete("/api/rooms/{id}")
async def rooms_delete(request: web.Request) -> web.Response:
    """A room set up by mistake (nobody was ever called to it); one with history is closed instead (409)."""
    require(request, "admin")
    deleted = await service.delete_room(request.app[DB_KEY], int_param(request, "id"))
    await _runtime(request).refresh_and_publish(set(deleted.service_ids))
    await _runtime(request).catalog_changed()
    return web.Response(status=204)


ROOM_FIELDS_FOR_OPERATORS = {"open", "doctor_name", "doctor_user_id"}


async def checked_room(request: web.Request, who: Principal, room_id: int | None) -> None:
    """A doctor works their own room's queue: a room another doctor is on duty in (doctor_user_id) is refused
    (403 not_your_room); a room with nobody on duty is anyone's. Reception and admins run every room."""
    if room_id is None or who.has_any("reception"):
        return
    async with request.app[DB_KEY].session() as s:
        on_duty = await s.scalar(select(QueueRoom.doctor_user_id).where(QueueRoom.id == room_id))
    if on_duty not in (None, who.user_id):
        raise Problem(403, "Not your room", "Another doctor is on duty in this room; reception can change who is.",
                      code="not_your_room")


async def checked_ticket_room(request: web.Request, who: Principal, ticket_id: int) -> None:
    if not who.has_any("reception"):
        await checked_room(request, who, (await service.get_ticket(request.app[DB_KEY], ticket_id)).room_id)


@routes.patch("/api/rooms/{id}")
async def rooms_update(request: web.Request) -> web.Response:
    who = require(request, "admin", *OPERATORS)
    room_id = int_param(request, "id")
    patch = await parse_body(request, service.RoomPatch)
    if not who.has_any("admin") and set(patch.model_fields_set) - ROOM_FIELDS_FOR_OPERATORS:
        raise Problem(403, "Not allowed", "Doctors and reception may only open or close a room and set the doctor "
                      "on duty; ask an admin to change anything else.")
    await checked_room(request, who, room_id)
    if not who.has_any("reception") and patch.doctor_user_id not in (None, who.user_id):
        raise Problem(403, "Not your room", "A doctor puts only themselves on duty; reception can name another.",
                      code="not_your_room")
    before = next((r.open for r in await service.list_rooms(request.app[DB_KEY]) if r.id == room_id), None)
    updated = await service.update_room(request.app[DB_KEY], room_id, patch, user_id=who.user_id)
    changed = set(updated.service_ids)
    if before is not None and before != updated.open:
        await _runtime(request).room_state_changed(updated.id, updated.open, utcnow())
    if (before is not None and before != updated.open) or "service_ids" in patch.model_fields_set:
        # the lab's and X-ray's lines too: their patients' way back names this room only while it is open (and
        # serves their doctor's service)
        changed |= {x.id for x in await service.list_services(request.app[DB_KEY])}
    await _runtime(request).refresh_and_publish(changed)
    if set(patch.model_fields_set) - {"open"}:  # renamed, other services, another doctor: screens resync
        await _runtime(request).catalog_changed()
    return _json({"room": room_json(updated, request.app[SETTINGS_KEY].clinic.language)})


# ------------------------------------------------------------------------------------------ tickets

def check_front_desk_day(request: web.Request, who: Principal, day: dt.date) -> None:
    """Reception and doctors see the days a patient's card allows them (yesterday to tomorrow)."""
    first, last = front_desk_window(local_day(utcnow(), request.app[SETTINGS_KEY]))
    if not who.has_any("supervisor") and not first <= day <= last:
        raise Problem(403, "Outside your days", f"Reception and doctors see tickets from {first.isoformat()} "
                      f"to {last.isoformat()}; ask a supervisor for other days.", code="date_outside_window")


async def checked_patient(request: web.Request, who: Principal, patient_id: int | None) -> None:
    """A ticket is issued in a patient's name only when the card's rule lets this user open the patient
    (reception: booked or expected yesterday..tomorrow); anyone else gets a ticket without a name."""
    if patient_id is None:
        return
    db = request.app[DB_KEY]
    if await patient_brief(db, patient_id) is None:
        raise Problem(404, "Patient not found", "No patient with that id; search the patient first.")
    if not await agent_may_access(db, who, patient_id, zone=request.app[SETTINGS_KEY].clinic.zone()):
        await record_access(db, who.user_id, patient_id, "denied", f"{request.method} {request.path}"[:200])
        raise Problem(403, "Not your patient", "Reception checks in patients booked or expected from yesterday to "
                      "tomorrow; give anyone else a ticket without a patient.", code="not_your_patient")


@routes.post("/api/tickets")
async def tickets_issue(request: web.Request) -> web.Response:
    who = require(request, "reception")
    body = await parse_body(request, TicketIn)
    await checked_patient(request, who, body.patient_id)
    outcome = await _run(request, service.issue, service_id=body.service_id,
                                  source="reception", priority=body.priority, patient_id=body.patient_id,
                                  user_id=who.user_id)
    return await _respond(request, outcome, 201)


@routes.post("/api/kiosk/tickets")
@public
async def kiosk_issue(request: web.Request) -> web.Response:
    body = await parse_body(request, KioskTicketIn)
    settings, client = request.app[SETTINGS_KEY].queue, client_address(request)
    printer = settings.kiosk_printers.get(body.kiosk or "")
    if printer and not settings.kiosk_may_print(body.kiosk or "", client):
        raise Problem(403, "Not this kiosk's printer", "Tickets print on a kiosk's printer only from that kiosk "
                      "(queue.kiosk_clients); open the kiosk page on the kiosk itself.", code="kiosk_not_allowed")
    if wait := await _runtime(request).kiosk_wait(client):
        raise Problem(429, "Too many tickets", "Too many tickets from this kiosk in the last minute; "
                      "please wait a moment or ask at reception.", code="rate_limited", retry_after=wait,
                      headers={"Retry-After": str(wait)})
    outcome = await _run(request, service.issue, service_id=body.service_id,
                                  source="kiosk")
    issued = await _body(request, outcome)
    if printer and issued["ticket"]:
        issued["printed"] = await print_ticket(request.app[SETTINGS_KEY], printer, issued["ticket"])
    return _json(issued, 201)


@routes.post("/api/checkins")
async def checkins_create(request: web.Request) -> web.Response:
    who = require(request, "reception")
    body = await parse_body(request, CheckinIn)
    await checked_patient(request, who, body.patient_id)
    outcome = await _run(request, service.checkin, patient_id=body.patient_id,
                                    service_id=body.service_id, user_id=who.user_id, priority=body.priority)
    return await _respond(request, outcome, 201)


@routes.get("/api/tickets")
async def tickets_list(request: web.Request) -> web.Response:
    """Tickets of one local day (default today), newest first; filters: patient_ids=1,2 service_id= status=.
    Today's list also holds the past days' tickets that are not finished (called or in a room across midnight,
    then set aside: the day's end expired what was waiting, so these are what a room still has to deal with)."""
    who = require(request, *OPERATORS, "supervisor")
    settings, db = request.app[SETTINGS_KEY], request.app[DB_KEY]
    query = request.query
    try:
        day = dt.date.fromisoformat(query["date"]) if query.get("date") else local_day(utcnow(), settings)
    except ValueError:
        raise Problem(422, "Invalid date", "Give date as YYYY-MM-DD, e.g. date=2026-11-22.") from None
    check_day(day, "date")
    check_front_desk_day(request, who, day)
    patient_ids = _ids(query.get("patient_ids"), "patient_ids", limit=500)
    service_ids = _ids(query.get("service_id"), "service_id")
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise Problem(422, "Invalid status", f"status must be one of {', '.join(STATUSES)}.")
    async with db.session() as s:
        statement = select(Ticket).where(_of_day(day, settings))
        if patient_ids:
            statement = statement.where(Ticket.patient_id.in_(patient_ids))
        if service_ids:
            statement = statement.where(Ticket.service_id.in_(service_ids))
        if status:
            statement = statement.where(Ticket.status == status)
        rows = (await s.scalars(statement.order_by(Ticket.issued_at.desc(), Ticket.id.desc()).limit(2000))).all()
    state = await load_state(db, settings)
    names = await masked_names(db, settings, rows)
    tickets = []
    for ticket in rows:
        current = state.waiting_ticket(ticket.id) or ticket
        public_data = tickets_json(state, [current], settings.clinic.language, names)[0]
        tickets.append(staff_ticket(current, public_data, request))
    audit_views(request, [t.patient_id for t in rows if t.patient_id is not None], "tickets")
    return _json({"date": day.isoformat(), "tickets": tickets})


def _of_day(day: dt.date, settings: Any) -> Any:
    """A day's tickets; today's with the past days' still open ones (see tickets_list)."""
    if day != local_day(utcnow(), settings):
        return Ticket.local_day == day
    began = dt.datetime.combine(day, dt.time(), settings.clinic.zone())
    carried = and_(Ticket.local_day < day, or_(Ticket.status.in_(ACTIVE_STATUSES),
                                               and_(Ticket.status == "noshow", Ticket.noshow_at >= began)))
    return or_(Ticket.local_day == day, carried)


@routes.get("/api/tickets/{id}")
async def tickets_get(request: web.Request) -> web.Response:
    who = require(request, *OPERATORS, "supervisor")
    ticket = await service.get_ticket(request.app[DB_KEY], int_param(request, "id"))
    check_front_desk_day(request, who, ticket.local_day)
    audit_views(request, [ticket.patient_id] if ticket.patient_id is not None else [], "tickets")
    data = await _runtime(request).ticket_data(ticket.id)
    assert data is not None
    return _json({"ticket": staff_ticket(ticket, data, request)})


@routes.post("/api/tickets/{id}/slip")
async def tickets_slip(request: web.Request) -> web.Response:
    """Reception prints a ticket's slip again: the same number; the print is kept in the ticket's history."""
    who = require(request, "reception")
    ticket = await service.get_ticket(request.app[DB_KEY], int_param(request, "id"))
    check_front_desk_day(request, who, ticket.local_day)
    printed = await service.record_slip(request.app[DB_KEY], ticket.id, who.user_id)
    data = await _runtime(request).ticket_data(ticket.id)
    assert data is not None
    return _json({"ticket": staff_ticket(ticket, data, request), "printed": printed,
                  "clinic": request.app[SETTINGS_KEY].clinic.name})


@routes.get("/api/queue")
async def queue_view(request: web.Request) -> web.Response:
    require(request, *OPERATORS, "supervisor")
    snapshot = await service.display_snapshot(request.app[DB_KEY], request.app[SETTINGS_KEY], None, None)
    return _json({"at": snapshot["at"], "services": snapshot["services"], "rooms": snapshot["rooms"]})


@routes.post("/api/rooms/{id}/call-next")
async def room_call_next(request: web.Request) -> web.Response:
    who = require(request, *OPERATORS)
    room_id = int_param(request, "id")
    await checked_room(request, who, room_id)
    with request.app[HOT_PATH_KEY].call():
        outcome = await _run(request, service.call_next, room_id, user_id=who.user_id)
        if outcome is not None and outcome.detail.get("nobody_waiting"):
            applied = await _runtime(request).applied(outcome)
            finished = [*applied.finished, *([applied.ticket] if applied.ticket is not None else [])]
            return _json({"ticket": None, "finished": finished, "detail": "Nobody is waiting for this room's services."})
        return await _respond(request, outcome)


@routes.post("/api/tickets/{id}/call")
async def ticket_call(request: web.Request) -> web.Response:
    who = require(request, *OPERATORS)
    ticket_id = int_param(request, "id")
    body = await parse_body(request, CallIn)
    await checked_room(request, who, body.room_id)
    with request.app[HOT_PATH_KEY].call():
        outcome = await _run(request, service.call_ticket, ticket_id, body.room_id, user_id=who.user_id)
        return await _respond(request, outcome)


SIMPLE_OPERATIONS = {
    "recall": service.recall, "skip": service.skip, "hold": service.hold, "resume": service.resume,
    "restore": service.restore, "start": service.start, "done": service.done,
}


@routes.post("/api/tickets/{id}/{operation:recall|skip|hold|resume|restore|start|done}")
async def ticket_operation(request: web.Request) -> web.Response:
    who = require(request, *OPERATORS)
    ticket_id = int_param(request, "id")
    operation = SIMPLE_OPERATIONS[request.match_info["operation"]]
    await checked_ticket_room(request, who, ticket_id)
    with request.app[HOT_PATH_KEY].call():  # a recall is news; the others are shown at once too
        outcome = await _run(request, operation, ticket_id, user_id=who.user_id)
        return await _respond(request, outcome)


@routes.post("/api/tickets/{id}/transfer")
async def ticket_transfer(request: web.Request) -> web.Response:
    who = require(request, *OPERATORS)
    ticket_id = int_param(request, "id")
    body = await parse_body(request, TransferIn)
    await checked_ticket_room(request, who, ticket_id)
    outcome = await _run(request, service.transfer, ticket_id, body.service_id,
                                     return_to_room=body.return_to_room, user_id=who.user_id)
    return await _respond(request, outcome)


# ------------------------------------------------------------------------------- display and stats

def _ids(raw: str | None, name: str, limit: int = 200) -> list[int] | None:
    if not raw:
        return None
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise Problem(422, "Invalid filter", f"{name} must be a comma-separated list of ids, e.g. {name}=1,3.") from None
    if any(not 0 < v < 2**63 for v in values) or len(values) > limit:
        raise Problem(422, "Invalid filter", f"{name} must list at most {limit} positive ids.")
    return values


@routes.get("/api/display/snapshot")
@display_feed
async def display_snapshot(request: web.Request) -> web.Response:
    rooms = _ids(request.query.get("rooms"), "rooms")
    services = _ids(request.query.get("services"), "services")
    who = principal(request)
    if who is not None and who.kind == "display":  # a screen's token limits what it may see
        check_token_scope(who, rooms, services)
        if who.room_ids:
            rooms = [r for r in (rooms or who.room_ids) if r in who.room_ids]
            if not rooms:
                raise Problem(403, "Not this screen's rooms", "This display token may only show its own rooms.",
                              code="not_on_display_token")
        if who.service_ids:
            services = [x for x in (services or who.service_ids) if x in who.service_ids]
            if not services:
                raise Problem(403, "Not this screen's services", "This display token may only show its own services.",
                              code="not_on_display_token")
    data = await service.display_snapshot(request.app[DB_KEY], request.app[SETTINGS_KEY], rooms, services)
    return _json(data)


@routes.get("/api/stats/queue")
async def stats_queue(request: web.Request) -> web.Response:
    require(request, "supervisor")
    settings = request.app[SETTINGS_KEY]
    day_from, day_to = parse_range(request.query.get("from"), request.query.get("to"), local_day(utcnow(), settings))
    return _json(await service.queue_stats(request.app[DB_KEY], settings, day_from, day_to))
