"""`/ws/agent`: live progress of the agent's own calls and the screen pops addressed to them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from clinicall.auth.access import require
from clinicall.auth.middleware import allowed_origin
from clinicall.auth.service import Principal
from clinicall.bus import Event
from clinicall.keys import BUS_KEY, SETTINGS_KEY, WEBSOCKETS_KEY
from clinicall.problem import Problem
from telephony.events import CALL_SCREENPOP, CALL_UPDATED

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
QUEUE_LIMIT = 500


def addressed_to(who: Principal, event: Event) -> bool:
    data = event.data
    if event.type == CALL_UPDATED:
        return data.get("agent_id") == who.user_id or (
            data.get("agent_id") is None and bool(who.extension) and data.get("agent_extension") == who.extension)
    if event.type == CALL_SCREENPOP:
        return who.user_id in (data.get("agent_ids") or []) or (
            bool(who.extension) and who.extension in (data.get("agent_extensions") or []))
    return False


@routes.get("/ws/agent")
async def agent_socket(request: web.Request) -> web.WebSocketResponse:
    who = require(request, "agent", "supervisor")
    origin = request.headers.get("Origin")
    if origin and not allowed_origin(request, origin):
        raise Problem(403, "Cross-site websocket refused", "Open the agent page from clinicall itself.")
    settings = request.app[SETTINGS_KEY]
    ws = web.WebSocketResponse(heartbeat=settings.display.heartbeat_seconds)
    await ws.prepare(request)
    request.app[WEBSOCKETS_KEY].add(ws)
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_LIMIT)

    async def on_event(event: Event) -> None:
        if addressed_to(who, event):
            with contextlib.suppress(asyncio.QueueFull):
                outbox.put_nowait({"type": event.type, "data": event.data, "id": event.id, "at": event.at})

    bus = request.app[BUS_KEY]
    unsubscribe = [bus.subscribe(CALL_UPDATED, on_event), bus.subscribe(CALL_SCREENPOP, on_event)]

    async def pump() -> None:
        while True:
            message = await outbox.get()
            await ws.send_str(json.dumps(message, ensure_ascii=False, default=str))

    sender = asyncio.create_task(pump(), name=f"ws-agent-{who.user_id}")
    try:
        await ws.send_str(json.dumps({"type": "hello", "data": {"user_id": who.user_id,
                                                                "extension": who.extension}}))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str(json.dumps({"type": "pong", "data": {}}))
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        for stop in unsubscribe:
            stop()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
    return ws
