"""`/ws/agent`: live progress of the agent's own calls, the screen pops addressed to them, and
`worklists.changed` (crm_bridge: who is on which list changed).

The agents' feed on the app's websocket hub (clinicall/hub.py): one group per (user, extension), each
event encoded once for everyone it is addressed to. An agent whose socket falls behind loses nothing
silently: its backlog is replaced by `{"type": "resync"}`, on which the console reloads the call state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from typing import Any

from aiohttp import WSMsgType, web

from clinicall.auth.access import require
from clinicall.auth.live import watch_socket
from clinicall.auth.middleware import check_socket_origin
from clinicall.bus import Event
from clinicall.hub import Feed, Frame, encode
from clinicall.keys import BUS_KEY, HUB_KEY, SETTINGS_KEY, WEBSOCKETS_KEY
from crm_bridge.events import WORKLISTS_CHANGED
from telephony.events import CALL_SCREENPOP, CALL_UPDATED

routes = web.RouteTableDef()
AGENT_FEED_KEY = web.AppKey("agent_feed", Feed)


def addressed_to(user_id: int | None, extension: str | None, event: Event) -> bool:
    data = event.data
    if event.type == CALL_UPDATED:
        return data.get("agent_id") == user_id or (
            data.get("agent_id") is None and bool(extension) and data.get("agent_extension") == extension)
    if event.type == CALL_SCREENPOP:
        return user_id in (data.get("agent_ids") or []) or (
            bool(extension) and extension in (data.get("agent_extensions") or []))
    return event.type == WORKLISTS_CHANGED  # every console: the unassigned list is everyone's


def agent_key(user_id: int | None, extension: str | None, sees_everyone: bool = False) -> Hashable:
    return (user_id, extension or None, sees_everyone)


def others_patient(data: dict[str, Any], user_id: int | None, sees_everyone: bool) -> bool:
    """A screen-pop of a patient assigned to another agent (their phone is away, so the team rings)."""
    patient = data.get("patient") or {}
    return not sees_everyone and patient.get("assigned_agent_id") not in (None, user_id)


def masked_screenpop(data: dict[str, Any]) -> dict[str, Any]:
    """What the card's rule lets an agent see of another agent's caller (as GET /api/callers/identify):
    that the caller is known, the masked name and whose patient it is."""
    from crm_bridge.service import masked_name

    patient = data["patient"]
    return {**data, "patient": {"assigned_agent_id": patient.get("assigned_agent_id")}, "other_agents_patient": True,
            "masked_name": masked_name(str(patient.get("full_name") or ""))}


def audit_screenpop(app: web.Application, user_id: int | None, data: dict[str, Any]) -> None:
    """A screen-pop shows the agent the caller's card (name, status): a view of the patient, audited per agent."""
    from crm_bridge.service import audit_pushed

    patient_id = (data.get("patient") or {}).get("id")
    if isinstance(patient_id, int):
        audit_pushed(app, user_id, [patient_id], "screenpop", f"inbound call {data.get('call_uniqueid') or ''}".strip())


@routes.get("/ws/agent")
async def agent_socket(request: web.Request) -> web.WebSocketResponse:
    who = require(request, "agent", "supervisor")
    check_socket_origin(request, who)
    settings = request.app[SETTINGS_KEY]
    ws = web.WebSocketResponse(heartbeat=settings.display.heartbeat_seconds, compress=False)
    await ws.prepare(request)
    request.app[WEBSOCKETS_KEY].add(ws)
    unwatch = watch_socket(request, ws, lambda now: now.has_any("agent", "supervisor"))
    hub = request.app[HUB_KEY]
    client = hub.add(ws, request, request.app[AGENT_FEED_KEY], agent_key(who.user_id, who.extension,
                                                                                 who.has_any("supervisor")))
    try:
        hub.send(client, encode({"type": "hello", "data": {"user_id": who.user_id, "extension": who.extension}}))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                hub.send(client, encode({"type": "pong", "data": {}}))
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        unwatch()
        await hub.remove(client)
    return ws


async def agent_feed_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB_KEY]
    feed = hub.feed("agent")
    app[AGENT_FEED_KEY] = feed

    async def on_event(event: Event) -> None:
        frames: dict[bool, Frame] = {}
        for key in feed.keys():
            user_id, extension, sees_everyone = key  # type: ignore[misc]
            if not addressed_to(user_id, extension, event):
                continue
            masked = event.type == CALL_SCREENPOP and others_patient(event.data, user_id, sees_everyone)
            if masked not in frames:
                data = masked_screenpop(event.data) if masked else event.data
                frames[masked] = encode({"type": event.type, "data": data, "id": event.id, "at": event.at})
            hub.publish(feed, key, frames[masked])
            if event.type == CALL_SCREENPOP and not masked:
                audit_screenpop(app, user_id, event.data)

    bus = app[BUS_KEY]
    unsubscribe = [bus.subscribe(CALL_UPDATED, on_event), bus.subscribe(CALL_SCREENPOP, on_event),
                   bus.subscribe(WORKLISTS_CHANGED, on_event)]
    yield
    for stop in unsubscribe:
        stop()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(agent_feed_ctx)
