"""Retention of reminder calls: a campaign done before the cutoff goes with its targets, attempts and
claimed numbers; turn-near calls of old days go once settled; running campaigns and unsettled calls stay."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from clinicall.db import Database, utcnow
from clinicall.retention import purge as purge_all
from clinicall.settings import Settings
from reminders.models import Attempt, Campaign, NumberDay, Target, TurnNearCall


async def count(db: Database, model: type) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def campaign(db: Database, day: dt.date, state: str, number: str) -> None:
    async with db.transaction() as s:
        row = Campaign(kind="appointment", day=day, about=day, source=f"daily-{number}", state=state)
        s.add(row)
        await s.flush()
        target = Target(campaign_id=row.id, patient_id=1, number=number, state="confirmed")
        s.add(target)
        await s.flush()
        s.add_all([Attempt(target_id=target.id, disposition="answered", key="1"),
                   NumberDay(day=day, number=number, target_id=target.id)])


def turn_near(ticket_id: int, day: dt.date, state: str) -> TurnNearCall:
    return TurnNearCall(ticket_id=ticket_id, ticket_number="A001", number="+84912000111", day=day, lang="vi",
                        speech=["x"], state=state)


async def test_old_reminder_calls_are_purged_and_live_ones_kept(db: Database, make_settings, db_url: str) -> None:
    now = utcnow()
    old, recent = (now - dt.timedelta(days=40)).date(), now.date()
    await campaign(db, old, "done", "+84912000001")
    await campaign(db, old, "paused", "+84912000002")  # never finished: kept
    await campaign(db, recent, "done", "+84912000003")
    async with db.transaction() as s:
        s.add_all([turn_near(1, old, "answered"), turn_near(2, old, "calling"), turn_near(3, recent, "skipped")])

    kept: Settings = make_settings(db_url)
    assert "reminder campaigns" not in await purge_all(db, kept, now)  # retention off: nothing goes
    settings: Settings = make_settings(db_url, retention={"call_log_days": 30})
    removed = await purge_all(db, settings, now)
    assert {k: removed[k] for k in ("reminder campaigns", "reminder targets", "turn-near calls")} == {
        "reminder campaigns": 1, "reminder targets": 1, "turn-near calls": 1}
    assert removed["numbers called"] == 1  # the paused campaign's old claim: spent with its day
    assert (await count(db, Campaign), await count(db, Target), await count(db, Attempt)) == (2, 2, 2)
    assert await count(db, NumberDay) == 1
    async with db.session() as s:
        assert sorted((await s.execute(select(TurnNearCall.ticket_id))).scalars()) == [2, 3]
