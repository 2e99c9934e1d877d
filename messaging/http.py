"""messaging's REST API and /ws/messages. Agents and supervisors send and read a patient's messages
under the card's rule (agents: their own and unassigned patients); supervisors read the message log
and the gateway settings; reception and the kiosk (by the ticket's own link) opt a waiting patient in
to "your turn is near"; the HTTP gateway posts its delivery receipts (by token or HMAC, no login)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from clinicall.auth.access import public, require
from clinicall.auth.live import watch_socket
from clinicall.auth.middleware import check_socket_origin
from clinicall.auth.service import Principal
from clinicall.bus import Event
from clinicall.client_address import client_address
from clinicall.db import utcnow
from clinicall.keys import BUS_KEY, DB_KEY, SETTINGS_KEY, WEBSOCKETS_KEY
from clinicall.problem import Day, Problem, int_param, parse_body, parse_query
from crm_bridge import service as crm
from messaging import receipts
from messaging.events import MESSAGE_UPDATED
from messaging.keys import DISPATCHER_KEY, MESSAGING_KEY, SEND_COUNTS_KEY
from messaging.service import NO_GATEWAY, LogFilter, StoredMessage
from queue_display import service as queue
from queue_display.events import local_name

routes = web.RouteTableDef()
STAFF = ("agent", "supervisor")
SECRET_FIELDS = ("smpp_password", "http_basic_password", "http_receipt_token", "http_receipt_hmac_secret")
QUEUE_LIMIT = 200
NOT_YOURS_ANY_MORE = 4403  # websocket close code: the patient is no longer this user's to see


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template_id: int | None = Field(None, gt=0, lt=2**63, description="Render this template for the patient")
    text: str | None = Field(None, max_length=5000, description="The text as the agent wrote or edited it")
    send_on: dt.date | None = Field(None, description="Send at 08:00 clinic time on this day (e.g. the day before a "
                                                      "re-visit); today or earlier: at once")


SEND_HOUR = dt.time(8, 0)
SCHEDULE_DAYS = 400


def send_time(request: web.Request, day: dt.date | None) -> dt.datetime | None:
    """08:00 clinic time on `day` (None: at once). A day in the past sends at once; too far ahead is refused."""
    if day is None:
        return None
    zone = request.app[SETTINGS_KEY].clinic.zone()
    today = dt.datetime.now(zone).date()
    if day > today + dt.timedelta(days=SCHEDULE_DAYS):
        raise Problem(422, "Send day too far ahead", f"A message can be scheduled at most {SCHEDULE_DAYS} days ahead.",
                      code="send_on_invalid",
                      errors=[{"field": "send_on", "code": "send_on_invalid", "message": "too far ahead"}])
    return dt.datetime.combine(day, SEND_HOUR, zone).astimezone(dt.UTC) if day > today else None


class PatientMessagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(50, ge=1, le=500)


class LogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(None, pattern="^(queued|sent|delivered|failed)$")
    origin: str | None = Field(None, max_length=64, pattern="^[a-z_:0-9]*$")
    patient_id: int | None = Field(None, gt=0, lt=2**63)
    day_from: Day | None = Field(None, alias="from")
    day_to: Day | None = Field(None, alias="to")
    limit: int = Field(200, ge=1, le=5000)
    export: str | None = Field(None, pattern="^(xlsx|csv)$")
    lang: str | None = Field(None, pattern="^(vi|en|zh)$")


class TurnNearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket_id: int = Field(gt=0, lt=2**63)
    phone: str = Field(min_length=1, max_length=40)


class TurnNearSelfBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1, max_length=40)


class SocketQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: int = Field(gt=0, lt=2**63)


def message_json(request: web.Request, message: StoredMessage) -> dict[str, Any]:
    out = message.json()
    if message.status == "queued" and request.app.get(DISPATCHER_KEY) is None:
        out["waiting_for"] = NO_GATEWAY
    return out


async def checked_patient(request: web.Request, who: Principal, patient_id: int) -> None:
    """The card's rule: 404 for no such patient, 403 not_your_patient (audited) for someone else's."""
    db = request.app[DB_KEY]
    if await crm.patient_brief(db, patient_id) is None:
        raise Problem(404, "Patient not found", "No patient with that id exists; search for the patient again.")
    if not await crm.agent_may_access(db, who, patient_id, zone=request.app[SETTINGS_KEY].clinic.zone()):
        await crm.record_access(db, who.user_id, patient_id, "denied", f"{request.method} {request.path}"[:200])
        raise Problem(403, "Not your patient",
                      "This patient is assigned to another agent; ask a supervisor to transfer them to you.",
                      code="not_your_patient")


@routes.post("/api/patients/{id}/messages")
async def send_to_patient(request: web.Request) -> web.Response:
    """Send a text to the patient's first phone: a template rendered for them (template_id), or the
    agent's own text (text, with template_id to record which template it came from). Stored as queued;
    the status follows on /ws/messages."""
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    body = await parse_body(request, SendBody)
    await checked_patient(request, who, patient_id)
    limit = request.app[SETTINGS_KEY].messaging.sends_per_minute_per_user
    count, remaining = await request.app[SEND_COUNTS_KEY].incr(str(who.user_id), 60)
    if count > limit:
        wait = max(1, math.ceil(remaining))
        raise Problem(429, "Too many texts", f"You sent {limit} texts in the last minute; wait {wait} s.",
                      code="rate_limited", retry_after=wait, headers={"Retry-After": str(wait)})
    service = request.app[MESSAGING_KEY]
    not_before = send_time(request, body.send_on)
    if body.text is not None:
        message = await service.send(text=body.text, patient_id=patient_id, template_id=body.template_id,
                                     sent_by=who.user_id, origin="agent", not_before=not_before)
    elif body.template_id is not None:
        message = await service.send_template(template_id=body.template_id, patient_id=patient_id,
                                              sent_by=who.user_id, origin="agent")
    else:
        raise Problem(422, "Template or text needed", "Choose a template or write the text.", code="message_empty",
                      errors=[{"field": "template_id", "code": "message_empty", "message": "template or text"}])
    await crm.record_access(request.app[DB_KEY], who.user_id, patient_id, "message",
                            f"message {message.id}" + (f" template {body.template_id}" if body.template_id else ""))
    return web.json_response({"message": message_json(request, message)}, status=201)


@routes.get("/api/patients/{id}/messages")
async def patient_messages(request: web.Request) -> web.Response:
    """The patient's messages, newest first, with status, attempts and the gateway's answer."""
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    query = parse_query(request, PatientMessagesQuery)
    await checked_patient(request, who, patient_id)
    crm.audit_views(request, [patient_id], "messages")
    messages = await request.app[MESSAGING_KEY].for_patient(patient_id, query.limit)
    return web.json_response({"items": [message_json(request, m) for m in messages],
                              "gateway": request.app[SETTINGS_KEY].messaging.adapter})


@routes.get("/api/messages")
async def message_log(request: web.Request) -> web.Response:
    """The message log (supervisors): filters status, origin (agent, turn_near, campaign...), patient_id,
    from and to (local days); ?export=xlsx|csv."""
    require(request, "supervisor")
    query = parse_query(request, LogQuery)
    zone = request.app[SETTINGS_KEY].clinic.zone()

    def start_of(day: dt.date | None) -> dt.datetime | None:
        return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC) if day else None

    service = request.app[MESSAGING_KEY]
    messages = await service.log(LogFilter(
        status=query.status, origin=query.origin or None, patient_id=query.patient_id, day_from=start_of(query.day_from),
        day_to=start_of(query.day_to + dt.timedelta(days=1)) if query.day_to else None, limit=query.limit))
    crm.audit_views(request, sorted({m.patient_id for m in messages if m.patient_id}), "messages")
    return web.json_response({"items": [message_json(request, m) for m in messages], "counts": await service.counts()})


@routes.get("/api/messaging/gateway")
async def gateway_view(request: web.Request) -> web.Response:
    """The messaging settings as in force (passwords and header values hidden), which adapter is active,
    and its health."""
    require(request, "supervisor")
    settings = request.app[SETTINGS_KEY].messaging
    shown = settings.model_dump()
    for name in SECRET_FIELDS:
        shown[name] = "••••" if shown[name] else ""
    shown["http_headers"] = {name: "••••" for name in settings.http_headers}
    shown["http_url"] = shown_url(settings.http_url)
    dispatcher = request.app.get(DISPATCHER_KEY)
    health = dispatcher.sender.health() if dispatcher else {"ok": False, "adapter": "none", "detail": NO_GATEWAY}
    return web.json_response({"adapter": settings.adapter, "configured": dispatcher is not None, "health": health,
                              "settings": shown, "counts": await request.app[MESSAGING_KEY].counts()})


def shown_url(url: str) -> str:
    """The gateway's URL without what may be a secret: the user info (basic auth) and the query string
    (some gateways take their key there)."""
    base, query = url.split("?", 1) if "?" in url else (url, None)
    scheme, sep, rest = base.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        base = f"{scheme}://••••@{rest.split('@', 1)[1]}"
    return base if query is None else base + "?••••"


async def ticket_now(request: web.Request, ticket_id: int) -> dict[str, Any] | None:
    """The ticket as the queue stands (position, estimated wait), if it is waiting."""
    settings = request.app[SETTINGS_KEY]
    state = await queue.load_state(request.app[DB_KEY], settings)
    ticket = state.waiting_ticket(ticket_id)
    if ticket is None:
        return None
    service = state.services.get(ticket.service_id)
    return {"id": ticket.id, "number": ticket.number, "status": ticket.status, "position": ticket.position,
            "estimated_wait_seconds": ticket.estimated_wait_seconds,
            "service_name": local_name(service.names, settings.clinic.language) if service else ""}


async def opt_in(request: web.Request, ticket: Any, phone: str, who: Principal | None) -> web.Response:
    if ticket.status != "waiting":
        raise Problem(409, "Ticket not waiting", "This ticket is no longer waiting; no message is needed.",
                      code="ticket_not_waiting")
    settings = request.app[SETTINGS_KEY]
    if ticket.local_day != utcnow().astimezone(settings.clinic.zone()).date():
        raise Problem(409, "Not today's ticket", "This ticket is from another day; only today's waiting tickets can "
                      "be texted when their turn is near.", code="ticket_not_today")
    result = await request.app[MESSAGING_KEY].opt_in(
        ticket_id=ticket.id, phone=phone, patient_id=ticket.patient_id, created_by=who.user_id if who else None,
        current=await ticket_now(request, ticket.id), client=None if who else client_address(request)[:64])
    return web.json_response(result, status=201)


@routes.post("/api/turn-near")
async def turn_near_reception(request: web.Request) -> web.Response:
    """Reception: text this waiting ticket's patient once when their turn is near (messaging.turn_near_*)."""
    who = require(request, "reception")
    body = await parse_body(request, TurnNearBody)
    ticket = await queue.get_ticket(request.app[DB_KEY], body.ticket_id)
    return await opt_in(request, ticket, body.phone, who)


@routes.post("/api/t/{token}/turn-near")
@public
async def turn_near_self(request: web.Request) -> web.Response:
    """The kiosk or the patient's own page (the ticket's link is the proof): text me when my turn is near."""
    body = await parse_body(request, TurnNearSelfBody)
    ticket = await queue.ticket_by_token(request.app[DB_KEY], request.app[SETTINGS_KEY], request.match_info["token"])
    return await opt_in(request, ticket, body.phone, None)


@routes.post("/api/messaging/receipts")
@public
async def gateway_receipts(request: web.Request) -> web.Response:
    """Delivery receipts posted by the HTTP gateway (authenticated by messaging.http_receipt_token or an
    HMAC-SHA256 signature): each moves the message with that gateway id to delivered or failed. Idempotent
    (a repeated receipt changes nothing); 404 when receipts are not configured. JSON (one receipt, an array,
    or a batch field) or a form."""
    settings = request.app[SETTINGS_KEY].messaging
    if not receipts.enabled(settings):
        raise Problem(404, "Receipts not configured", "This service takes no delivery receipts: set "
                      "messaging.http_receipt_token or http_receipt_hmac_secret.", code="receipts_not_configured")
    too_large = Problem(413, "Receipt too large", f"At most {receipts.MAX_BODY} bytes.", code="receipt_too_large")
    if (request.content_length or 0) > receipts.MAX_BODY:
        raise too_large
    body = await request.read()
    if len(body) > receipts.MAX_BODY:
        raise too_large
    if not receipts.authentic(settings, request.headers, request.query, body):
        raise Problem(401, "Receipt not authenticated", "The receipt's token or signature is missing or wrong (a signed "
                      "receipt also needs a timestamp within messaging.http_receipt_max_age_seconds).",
                      code="receipt_unauthorized")
    items = receipts.parse(settings, receipts.decode(request.content_type, body))
    service, dispatcher = request.app[MESSAGING_KEY], request.app.get(DISPATCHER_KEY)
    results = []
    for item in items:
        result = "ignored"
        if item.outcome is not None:
            result = await service.receipt_result(item.receipt(settings.http_receipt_status_field))
            if result == "waiting" and dispatcher is not None:
                dispatcher.retry_later(item.gateway_id)
        results.append({"id": item.gateway_id, "status": item.status, "result": result})
    return web.json_response({"results": results})


@routes.get("/api/turn-near/channel")
@public
async def turn_near_channel(request: web.Request) -> web.Response:
    """How "your turn is near" reaches the patient here: "sms", or "call" (no SMS gateway, a spoken call)."""
    return web.json_response({"channel": request.app[MESSAGING_KEY].turn_near_channel_name})


@routes.get("/ws/messages")
async def messages_socket(request: web.Request) -> web.WebSocketResponse:
    """The patient's messages as they change (message.updated), for the card: ?patient_id=."""
    who = require(request, *STAFF)
    query = parse_query(request, SocketQuery)
    check_socket_origin(request, who)
    await checked_patient(request, who, query.patient_id)
    crm.audit_views(request, [query.patient_id], "messages")
    ws = web.WebSocketResponse(heartbeat=request.app[SETTINGS_KEY].display.heartbeat_seconds)
    await ws.prepare(request)
    request.app[WEBSOCKETS_KEY].add(ws)
    unwatch = watch_socket(request, ws, lambda now: now.has_any(*STAFF))
    outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_LIMIT)

    async def on_event(event: Event) -> None:
        if event.data.get("patient_id") == query.patient_id:
            message = dict(event.data["message"])
            if message.get("status") == "queued" and request.app.get(DISPATCHER_KEY) is None:
                message["waiting_for"] = NO_GATEWAY
            with contextlib.suppress(asyncio.QueueFull):
                outbox.put_nowait(json.dumps({"type": event.type, "data": message}, ensure_ascii=False))

    async def pump() -> None:
        """Each message goes out only while the card's rule still lets this user see the patient: a patient
        moved to another agent (or out of reception's days) closes the socket instead."""
        db, zone = request.app[DB_KEY], request.app[SETTINGS_KEY].clinic.zone()
        while True:
            frame = await outbox.get()
            if not await crm.agent_may_access(db, who, query.patient_id, zone=zone):
                await ws.close(code=NOT_YOURS_ANY_MORE, message=b"not_your_patient")
                return
            await ws.send_str(frame)

    unsubscribe = request.app[BUS_KEY].subscribe(MESSAGE_UPDATED, on_event)
    sender = asyncio.create_task(pump(), name=f"ws-messages-{who.user_id}")
    try:
        await ws.send_str(json.dumps({"type": "hello", "data": {"patient_id": query.patient_id}}))
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        unwatch()
        unsubscribe()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
    return ws
