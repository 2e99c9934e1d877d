"""The patient's own status page `/t/{token}` (public, unguessable link printed as a QR code on the
ticket), its JSON `GET /api/t/{token}` and the QR code `GET /t/{token}/qr.svg`."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

from aiohttp import web

from clinicall.auth.access import public
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.problem import Problem
from queue_display import state as qstate
from queue_display.events import back_to_json, local_name, room_brief
from queue_display.tokens import status_url, ticket_by_token

routes = web.RouteTableDef()
PAGE = Path(__file__).resolve().parent / "pages" / "ticket.html"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


async def ticket_status(request: web.Request, token: str) -> dict[str, Any]:
    db, settings = request.app[DB_KEY], request.app[SETTINGS_KEY]
    ticket = await ticket_by_token(db, settings, token)
    state = await qstate.load_state(db, settings)  # with the stored estimates: the estimator never runs here
    if ticket.status == "waiting":
        live = state.waiting_ticket(ticket.id)
        if live is not None:
            ticket = live
    language = settings.clinic.language
    service = state.services.get(ticket.service_id)
    room = state.rooms.get(ticket.room_id) if ticket.room_id and ticket.status in ("called", "in_service") else None
    waiting = ticket.status == "waiting"
    return {
        "number": ticket.number,
        "service_id": ticket.service_id,
        "service_name": local_name(service.names, language) if service else "",
        "service_names": dict(service.names) if service else {},
        "status": ticket.status,
        "position": ticket.position if waiting else None,
        "people_ahead": (ticket.position - 1) if waiting and ticket.position else None,
        "estimated_wait_seconds": ticket.estimated_wait_seconds if waiting else None,
        "estimated_wait_range": list(ticket.wait_range) if waiting and ticket.wait_range else None,
        "room": room_brief(room, language) if room else None,
        "back_to": back_to_json(ticket, state.services, state.rooms, language),
        "issued_at": ticket.issued_at.isoformat(),
        "called_at": ticket.called_at.isoformat() if ticket.called_at else None,
        "refresh_seconds": 10,
    }


@routes.get("/api/t/{token}")
@public
async def status_json(request: web.Request) -> web.Response:
    return web.json_response(await ticket_status(request, request.match_info["token"]), headers=NO_STORE)


@routes.get("/t/{token}")
@public
async def status_page(request: web.Request) -> web.Response:
    """The page; for an expired link the same page with status 410, which it then explains in the patient's language."""
    status = 200
    try:
        await ticket_by_token(request.app[DB_KEY], request.app[SETTINGS_KEY], request.match_info["token"])
    except Problem as problem:
        if problem.code != "ticket_link_expired":
            raise
        status = problem.status
    return web.Response(text=PAGE.read_text(encoding="utf-8"), status=status, content_type="text/html", headers=NO_STORE)


@routes.get("/t/{token}/qr.svg")
@public
async def status_qr(request: web.Request) -> web.Response:
    import qrcode
    import qrcode.image.svg

    ticket = await ticket_by_token(request.app[DB_KEY], request.app[SETTINGS_KEY], request.match_info["token"])
    image = qrcode.make(status_url(request.app[SETTINGS_KEY], ticket.token),
                        image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    out = BytesIO()
    image.save(out)
    return web.Response(body=out.getvalue(), content_type="image/svg+xml", headers=NO_STORE)
