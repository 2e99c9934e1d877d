"""Retention: deletes call logs, recordings and audit rows older than the retention settings.
Each room that keeps such records purges its own through an optional `<room>/retention.py` with
`async def purge(db, settings, now) -> dict[str, int]`; `clinicall purge` and serve's daily task
call them all."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from clinicall.db import Database, is_unavailable, utcnow
from clinicall.keys import DB_KEY, SETTINGS_KEY, TASKS_KEY
from clinicall.rooms import ROOM_NAMES
from clinicall.settings import Settings

log = logging.getLogger(__name__)


def cutoff(now: dt.datetime, days: int) -> dt.datetime | None:
    """The oldest time kept, or None when `days` is 0 (keep everything)."""
    return now - dt.timedelta(days=days) if days > 0 else None


async def purge(db: Database, settings: Settings, now: dt.datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    removed: dict[str, int] = {}
    for room in ROOM_NAMES:
        try:
            module = importlib.import_module(f"{room}.retention")
        except ModuleNotFoundError as exc:
            if exc.name != f"{room}.retention":
                raise
            continue
        removed.update(await module.purge(db, settings, now))
    return removed


def enabled(settings: Settings) -> bool:
    r = settings.retention
    return any(days > 0 for days in (r.call_log_days, r.recording_days, r.audit_days, r.message_days))


async def _daily(app: web.Application) -> None:
    settings = app[SETTINGS_KEY]
    while True:
        try:
            removed = await purge(app[DB_KEY], settings)
            if any(removed.values()):
                log.info("retention purge: %s", ", ".join(f"{k} {v}" for k, v in removed.items()))
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("retention purge skipped: the database is unavailable")
        await asyncio.sleep(settings.retention.interval_hours * 3600)


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Purges at start-up and then every retention.interval_hours, when any retention is set."""
    if enabled(app[SETTINGS_KEY]):
        app[TASKS_KEY].spawn(_daily(app), name="retention-purge")
    yield
