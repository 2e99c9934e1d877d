"""Wires the telephony room into the app: the AMI link, click-to-call, the call log, /ws/agent,
the demo PBX, and (telephony.agi) FastAGI caller identification."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from clinicall.bus import Event
from clinicall.keys import BUS_KEY, DB_KEY, HEALTH_KEY, SETTINGS_KEY
from clinicall.metrics import METRICS_KEY
from clinicall.sole import SoleRole
from crm_bridge.events import PATIENT_MERGED

if TYPE_CHECKING:
    from telephony.ami import AmiLink
    from telephony.calllog import CallLog

log = logging.getLogger(__name__)
DEMO_AGENT_CHANNEL = "Local/{ext}@agents"


def uses_demo_pbx(app: web.Application) -> bool:
    settings = app[SETTINGS_KEY].telephony
    return not settings.ami_host and settings.demo_pbx


def fastagi_address(app: web.Application) -> tuple[str, int] | None:
    """Where the FastAGI server really listens (its port may be chosen by the OS)."""
    settings = app[SETTINGS_KEY].telephony
    if not settings.agi_enabled:
        return None
    try:
        from telephony.agi import FASTAGI_KEY
    except ImportError:
        return settings.agi_host, settings.agi_port
    server = app.get(FASTAGI_KEY)
    return (server.host, server.port) if server is not None else (settings.agi_host, settings.agi_port)


async def telephony_ctx(app: web.Application) -> AsyncIterator[None]:
    from telephony.ami import AmiLink
    from telephony.calllog import CallLog, cel_source_for
    from telephony.demo_pbx import DemoPbx
    from telephony.keys import AMI_LINK_KEY, CALL_LOG_KEY, DEMO_PBX_KEY, RATE_LIMIT_KEY, TELEPHONY_METRICS_KEY
    from telephony.ratelimit import RateLimiter

    settings = app[SETTINGS_KEY].telephony
    app[RATE_LIMIT_KEY] = RateLimiter(settings.calls_per_minute_per_agent, app[SETTINGS_KEY].bus.redis_url)
    calllog = CallLog(app[DB_KEY], app[BUS_KEY], settings, region=app[SETTINGS_KEY].clinic.phone_region,
                      cel_source=cel_source_for(settings))
    app[CALL_LOG_KEY] = calllog
    unsubscribe = app[BUS_KEY].subscribe(PATIENT_MERGED, partial(_follow_merge, app))
    if not settings.ami_host:  # with a real Asterisk, hold_link loads them when it takes the link
        reopened = await calllog.load_open_calls()
        if reopened:
            log.info("following %d call(s) that were in progress at the last stop", reopened)
    pbx: DemoPbx | None = None
    host, port, secret = settings.ami_host, settings.ami_port, settings.ami_secret or ""
    if uses_demo_pbx(app):
        secret = secrets.token_urlsafe(12)
        agi = fastagi_address(app)
        reminders = app[SETTINGS_KEY].reminders
        pbx = DemoPbx(username=settings.ami_username, secret=secret, agi_host=agi[0] if agi else None,
                      agi_port=agi[1] if agi else None, time_scale=settings.demo_time_scale,
                      playback_contexts=(reminders.context,),
                      inbound_scripts=("identify", "queue_position") if reminders.queue_position else ("identify",))
        host, port = "127.0.0.1", await pbx.start()
        log.info("demo PBX (AMI) listening on 127.0.0.1:%d", port)
    app[DEMO_PBX_KEY] = pbx
    link: AmiLink | None = None
    holder: asyncio.Task[None] | None = None
    role = SoleRole(app[DB_KEY], "asterisk-link")
    if host:
        link = AmiLink(host=host, port=port, username=settings.ami_username, secret=secret, calllog=calllog,
                       max_delay=settings.reconnect_max_seconds, demo=pbx is not None,
                       metrics=app[TELEPHONY_METRICS_KEY])
        if pbx is not None:
            await link.start()
        else:
            holder = asyncio.create_task(hold_link(link, role, calllog, settings.link_check_seconds),
                                         name="ami-link-holder")
    app[AMI_LINK_KEY] = link
    try:
        yield
    finally:
        unsubscribe()
        if holder is not None:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
        if link is not None:
            await link.stop()
        await role.release()
        if pbx is not None:
            await pbx.close()
        await app[RATE_LIMIT_KEY].close()


async def hold_link(link: AmiLink, role: SoleRole, calllog: CallLog, every: float) -> None:
    """Only one instance on a database talks to Asterisk (two links would each project half the events):
    the others stand by and take over when the holder stops or dies."""
    while True:
        if not await role.try_take():
            link.set_state("standby", "another clinicall instance holds the Asterisk link")
            await asyncio.sleep(every)
            continue
        reopened = await calllog.take_over()
        if reopened:
            log.info("following %d call(s) in progress before this instance took the link", reopened)
        await link.start()
        await role.watch(every)
        log.warning("lost the Asterisk-link lock (database connection gone); standing by")
        await link.stop()


async def _follow_merge(app: web.Application, event: Event) -> None:
    from telephony.service import repoint_patient

    moved = await repoint_patient(app[DB_KEY], int(event.data["from_id"]), int(event.data["into_id"]))
    log.info("patient %s merged into %s: %d call(s) re-pointed", event.data["from_id"], event.data["into_id"], moved)


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from telephony import agi, stats, ws
    from telephony import http as telephony_http
    from telephony.keys import AMI_LINK_KEY, TELEPHONY_METRICS_KEY
    from telephony.telemetry import TelephonyMetrics

    settings = app[SETTINGS_KEY].telephony
    if uses_demo_pbx(app):
        settings.agent_channel = DEMO_AGENT_CHANNEL
    app[TELEPHONY_METRICS_KEY] = TelephonyMetrics(app[METRICS_KEY].registry)
    agi.setup(app)  # caller identification: FastAGI server and GET /api/callers/identify
    app.router.add_routes(telephony_http.routes)
    ws.setup(app)  # /ws/agent on the app's websocket hub
    stats.setup_stats(app)  # consoles: GET /api/stats/calls
    app.cleanup_ctx.append(telephony_ctx)

    async def asterisk_health() -> dict[str, Any]:
        link = app.get(AMI_LINK_KEY)
        if link is None:
            return {"ok": True, "optional": True, "configured": False, "detail": "no Asterisk configured"}
        return link.health()

    app[HEALTH_KEY]["asterisk"] = asterisk_health
