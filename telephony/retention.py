"""Retention of the call log and call recordings (clinicall/retention.py calls purge)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import delete, select, update

from clinicall.db import Database
from clinicall.retention import cutoff
from clinicall.settings import Settings
from telephony.models import Call, CallEvent

log = logging.getLogger(__name__)


async def purge(db: Database, settings: Settings, now: dt.datetime) -> dict[str, int]:
    removed = {"recordings": await _purge_recordings(db, settings, now)}
    if (oldest := cutoff(now, settings.retention.call_log_days)) is not None:
        async with db.transaction() as s:
            # Only calls that ended: a call still in progress keeps its row whatever its age.
            result = await s.execute(delete(Call).where(Call.created_at < oldest, Call.ended_at.is_not(None)))
            # The journal the purged rows were projected from goes with them (a rebuild covers the rest).
            events = await s.execute(delete(CallEvent).where(CallEvent.at < oldest, CallEvent.received_at < oldest))
        removed["calls"] = result.rowcount or 0
        removed["call events"] = events.rowcount or 0
    return removed


async def _purge_recordings(db: Database, settings: Settings, now: dt.datetime) -> int:
    oldest = cutoff(now, settings.retention.recording_days)
    if oldest is None:
        return 0
    async with db.transaction() as s:
        rows = (await s.execute(select(Call.id, Call.recording_path).where(
            Call.created_at < oldest, Call.ended_at.is_not(None), Call.recording_path.is_not(None)))).all()
        removed = sum(_unlink(settings, path) for _id, path in rows)
        if rows:
            await s.execute(update(Call).where(Call.id.in_([row.id for row in rows])).values(recording_path=None))
    removed += _purge_loose_files(Path(settings.telephony.recording_dir), oldest)
    return removed


def _unlink(settings: Settings, path: str | None) -> int:
    if not path:
        return 0
    file = Path(path)
    root = Path(settings.telephony.recording_dir).resolve()
    if not file.resolve().is_relative_to(root):
        log.warning("recording %s is outside telephony.recording_dir; not deleted", path)
        return 0
    try:
        file.unlink()
        return 1
    except FileNotFoundError:
        return 0


def _purge_loose_files(directory: Path, oldest: dt.datetime) -> int:
    """Recordings with no call row left (a call log purged earlier, or a recording Asterisk made alone)."""
    if not directory.is_dir():
        return 0
    removed = 0
    limit = oldest.timestamp()
    for file in directory.iterdir():
        if file.is_file() and file.stat().st_mtime < limit:
            file.unlink(missing_ok=True)
            removed += 1
    return removed
