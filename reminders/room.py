"""Wires the reminders room into the app: the dialler task, the FastAGI scripts, the page and API, and
the spoken "your turn is near" call as messaging's channel where no SMS gateway is configured."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from clinicall.bus import Event
from clinicall.keys import BUS_KEY, DB_KEY, HEALTH_KEY, HOT_PATH_KEY, SETTINGS_KEY
from clinicall.nav import NAV_KEY, NavLink

DEMO_DIAL_CHANNEL = "Local/{number}@patient"  # the demo PBX's patients (telephony.demo_playback)


async def reminders_ctx(app: web.Application) -> AsyncIterator[None]:
    from audio.service import make_renderer
    from reminders.agi_scripts import queue_position_script, reminder_script, turn_near_script
    from reminders.engine import Dialler
    from reminders.events import CONSUMES, is_reminder_end
    from reminders.keys import DIALLER_KEY
    from telephony.agi import FASTAGI_KEY
    from telephony.keys import AMI_LINK_KEY, CALL_LOG_KEY

    settings = app[SETTINGS_KEY]
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reminders-online-fill")
    dialler = Dialler(app[DB_KEY], app[BUS_KEY], settings, link=lambda: app.get(AMI_LINK_KEY),
                      calllog=lambda: app.get(CALL_LOG_KEY), renderer=make_renderer(settings.audio, background),
                      clear=app[HOT_PATH_KEY].clear)
    app[DIALLER_KEY] = dialler
    server = app.get(FASTAGI_KEY)
    if server is not None:
        server.scripts["reminder"] = reminder_script(app)
        server.scripts["queue_position"] = queue_position_script(app)
        server.scripts["turn_near"] = turn_near_script(app)

    async def on_call(event: Event) -> None:
        if is_reminder_end(event):
            dialler.wake.set()

    unsubscribe = [app[BUS_KEY].subscribe(pattern, on_call) for pattern in CONSUMES]
    task = asyncio.create_task(dialler.run(), name="reminders-dialler")
    try:
        yield
    finally:
        for stop in unsubscribe:
            stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        background.shutdown(wait=False, cancel_futures=True)


def setup(app: web.Application) -> None:
    from clinicall.exports import register_exports
    from reminders.exports import EXPORTS
    from reminders.http import WEB_DIR, routes
    from reminders.keys import DIALLER_KEY
    from telephony.room import uses_demo_pbx

    settings = app[SETTINGS_KEY]
    if uses_demo_pbx(app):
        settings.reminders.dial_channel = DEMO_DIAL_CHANNEL
    if settings.reminders.turn_near_calls and (settings.telephony.ami_host or uses_demo_pbx(app)):
        from messaging.keys import TURN_NEAR_CHANNEL_KEY
        from reminders.turn_near import CallChannel

        app[TURN_NEAR_CHANNEL_KEY] = CallChannel(app)  # messaging uses it only with no SMS gateway
    app.router.add_routes(routes)
    register_exports(app, EXPORTS)
    app.router.add_static("/static/reminders/", WEB_DIR)
    app[NAV_KEY].append(NavLink("/reminders", "Cuộc gọi nhắc lịch", "Reminder calls", ("supervisor",), "提醒电话"))
    app.cleanup_ctx.append(reminders_ctx)

    async def health() -> dict[str, Any]:
        dialler = app.get(DIALLER_KEY)
        return dialler.health() if dialler else {"ok": False, "optional": True, "error": "not started"}

    app[HEALTH_KEY]["reminders"] = health
