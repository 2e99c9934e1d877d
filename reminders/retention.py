"""Retention of reminder calls (clinicall/retention.py calls purge): with retention.call_log_days,
campaigns done before the cutoff go with their targets, attempts and claimed numbers, and so do
turn-near calls of clinic days before it. A campaign still running or paused, and a turn-near call not
yet settled, keep their rows whatever their age, as calls in progress do in the call log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select

from clinicall.db import Database
from clinicall.retention import cutoff
from clinicall.settings import Settings
from reminders.models import Attempt, Campaign, NumberDay, Target, TurnNearCall


async def purge(db: Database, settings: Settings, now: dt.datetime) -> dict[str, int]:
    oldest = cutoff(now, settings.retention.call_log_days)
    if oldest is None:
        return {}
    async with db.transaction() as s:
        campaigns = select(Campaign.id).where(Campaign.state == "done", Campaign.day < oldest.date())
        targets = select(Target.id).where(Target.campaign_id.in_(campaigns))
        await s.execute(delete(Attempt).where(Attempt.target_id.in_(targets)))
        await s.execute(delete(NumberDay).where(NumberDay.target_id.in_(targets)))
        removed_targets = await s.execute(delete(Target).where(Target.id.in_(targets)))
        removed_campaigns = await s.execute(delete(Campaign).where(Campaign.id.in_(campaigns)))
        spent_days = await s.execute(delete(NumberDay).where(NumberDay.day < oldest.date()))
        turn_near = await s.execute(delete(TurnNearCall).where(
            TurnNearCall.day < oldest.date(), TurnNearCall.state.not_in(("pending", "calling"))))
    return {"reminder campaigns": removed_campaigns.rowcount or 0,  # type: ignore[attr-defined]
            "reminder targets": removed_targets.rowcount or 0,  # type: ignore[attr-defined]
            "numbers called": spent_days.rowcount or 0,  # type: ignore[attr-defined]
            "turn-near calls": turn_near.rowcount or 0}  # type: ignore[attr-defined]
