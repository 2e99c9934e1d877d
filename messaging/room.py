"""Wires the messaging room into the app: the service, the gateway adapter and its dispatcher (a
cleanup_ctx), the queue and merge subscriptions, routes, pages, exports and the health check."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from clinicall.bus import Event
from clinicall.counters import WindowCounters
from clinicall.exports import register_exports
from clinicall.keys import BUS_KEY, DB_KEY, HEALTH_KEY, SETTINGS_KEY
from clinicall.settings import MessagingSettings
from messaging.events import PATIENT_MERGED, QUEUE_CHANGED
from messaging.keys import (
    DISPATCHER_KEY,
    MESSAGING_KEY,
    SEND_COUNTS_KEY,
    TURN_NEAR_CHANNEL_KEY,
    TURN_NEAR_WATCH_KEY,
)
from messaging.senders.base import Sender
from messaging.service import NO_GATEWAY, MessagingService
from messaging.turn_near_watch import TurnNearWatch
from messaging.worker import Dispatcher

log = logging.getLogger(__name__)


def make_sender(settings: MessagingSettings) -> Sender | None:
    """The configured adapter; None when no gateway is configured (messages wait, queued)."""
    if settings.adapter == "smpp":
        from messaging.senders.smpp import SmppSender

        return SmppSender(settings)
    if settings.adapter == "http":
        from messaging.senders.http_gateway import HttpGatewaySender

        return HttpGatewaySender(settings)
    return None


async def messaging_ctx(app: web.Application) -> AsyncIterator[None]:
    bus = app[BUS_KEY]
    sender = make_sender(app[SETTINGS_KEY].messaging)
    fallback = app.get(TURN_NEAR_CHANNEL_KEY) if sender is None else None
    service = app[MESSAGING_KEY] = MessagingService(app[DB_KEY], bus, app[SETTINGS_KEY], turn_near_channel=fallback)

    watch = app[TURN_NEAR_WATCH_KEY] = TurnNearWatch(service)
    watch.start()

    async def on_merge(event: Event) -> None:
        try:
            moved = await service.repoint_patient(int(event.data["from_id"]), int(event.data["into_id"]))
        except Exception:
            log.exception("messaging: patient merge not followed")
        else:
            log.info("patient %s merged into %s: %d message(s) re-pointed", event.data["from_id"],
                     event.data["into_id"], moved)

    unsubscribe = [bus.subscribe(QUEUE_CHANGED, watch.offer), bus.subscribe(PATIENT_MERGED, on_merge)]
    app[SEND_COUNTS_KEY] = WindowCounters("clinicall:texts-sent:", app[SETTINGS_KEY].bus.redis_url)
    dispatcher = Dispatcher(service, sender, app[SETTINGS_KEY].messaging) if sender else None
    app[DISPATCHER_KEY] = dispatcher
    if dispatcher is not None:
        await dispatcher.start()
    else:
        log.info("messaging: %s; messages are stored and wait (queued)", NO_GATEWAY)
    try:
        yield
    finally:
        for stop in unsubscribe:
            stop()
        await watch.close()
        if dispatcher is not None:
            await dispatcher.stop()
        await app[SEND_COUNTS_KEY].close()


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from messaging import http, pages
    from messaging.exports import EXPORTS

    app.router.add_routes(http.routes)
    pages.setup_pages(app)
    register_exports(app, EXPORTS)
    app.cleanup_ctx.append(messaging_ctx)

    async def gateway_health() -> dict[str, Any]:
        dispatcher = app.get(DISPATCHER_KEY)
        if dispatcher is None:
            return {"ok": True, "optional": True, "configured": False, "detail": NO_GATEWAY}
        return {**dispatcher.sender.health(), "optional": True, "configured": True}

    app[HEALTH_KEY]["messaging"] = gateway_health
