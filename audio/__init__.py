"""audio room: announcement wording, text-to-speech with a cache and fallbacks, announcement clips,
and the speaker client."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


async def audio_ctx(app: web.Application) -> AsyncIterator[None]:
    from audio.announcer import Announcer
    from audio.events import CONSUMES
    from audio.keys import ANNOUNCER_KEY
    from audio.paging import Pager
    from audio.service import clips_dir, make_builder, make_renderer
    from clinicall.keys import BUS_KEY, HEALTH_KEY, SETTINGS_KEY, TASKS_KEY

    audio = app[SETTINGS_KEY].audio
    workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="audio-render")
    pieces = ThreadPoolExecutor(max_workers=4, thread_name_prefix="audio-pieces")
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio-online-fill")
    renderer = make_renderer(audio, background)
    announcer = Announcer(make_builder(audio, renderer, pieces), app[BUS_KEY], app[TASKS_KEY], workers,
                          Pager(audio, app))
    app[ANNOUNCER_KEY] = announcer
    unsubscribe = [app[BUS_KEY].subscribe(pattern, announcer.on_ticket) for pattern in CONSUMES]

    async def health() -> dict[str, Any]:
        engines = {e.name: e.available() for e in renderer.engines}
        breakers = {name: {"resting": not b.allow(), "last_error": b.last_error} for name, b in renderer.breakers.items()}
        return {"ok": any(ok for name, ok in engines.items() if name != "gtts"), "optional": True, "engines": engines,
                "online": breakers, "published": announcer.published, "failed": announcer.failed,
                "paging": {"on": announcer.pager.enabled, "paged": announcer.pager.paged,
                           "skipped": announcer.pager.skipped} if announcer.pager else None}

    app[HEALTH_KEY]["audio"] = health
    app[TASKS_KEY].spawn(prune_clips_hourly(clips_dir(audio), audio.clip_keep_hours * 3600), name="audio-prune-clips")
    yield
    for stop in unsubscribe:
        stop()
    workers.shutdown(wait=False, cancel_futures=True)
    pieces.shutdown(wait=False, cancel_futures=True)
    background.shutdown(wait=False, cancel_futures=True)


async def prune_clips_hourly(folder: Path, keep_seconds: float) -> None:
    from audio.announcement import prune_clips

    while True:
        removed = await asyncio.to_thread(prune_clips, folder, keep_seconds)
        if removed:
            log.info("deleted %d announcement clip(s) unused for %.0f h", removed, keep_seconds / 3600)
        await asyncio.sleep(3600)


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from audio.http import routes

    app.router.add_routes(routes)
    app.cleanup_ctx.append(audio_ctx)


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from audio.cli import register

    register(subparsers)
