"""Retention of text messages (clinicall/retention.py calls purge): messages older than
retention.message_days that are no longer queued, their parts, and spent turn-near opt-ins."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select

from clinicall.db import Database
from clinicall.retention import cutoff
from clinicall.settings import Settings
from messaging.models import Message, MessagePart, TurnNearOptIn


async def purge(db: Database, settings: Settings, now: dt.datetime) -> dict[str, int]:
    oldest = cutoff(now, settings.retention.message_days)
    if oldest is None:
        return {}
    async with db.transaction() as s:
        old = select(Message.id).where(Message.created_at < oldest, Message.status != "queued")
        await s.execute(delete(MessagePart).where(MessagePart.message_id.in_(old)))
        messages = await s.execute(delete(Message).where(Message.id.in_(old)))
        optins = await s.execute(delete(TurnNearOptIn).where(TurnNearOptIn.created_at < oldest))
    return {"messages": messages.rowcount or 0, "turn-near opt-ins": optins.rowcount or 0}  # type: ignore[attr-defined]
