"""Worklist day boundaries in the clinic's zone (Asia/Ho_Chi_Minh, UTC+7), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import update

from clinicall.db import Database
from crm_bridge.models import Patient
from crm_bridge.patients import PatientIn, create_patient
from crm_bridge.worklists import clinic_today, worklist, worklist_counts

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
TODAY = dt.date(2026, 3, 10)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_clinic_today_follows_the_zone() -> None:
    assert clinic_today(HCM, utc("2026-03-09T16:59:59")) == dt.date(2026, 3, 9)
    assert clinic_today(HCM, utc("2026-03-09T17:00:00")) == TODAY  # midnight in Ho Chi Minh City
    assert clinic_today(ZoneInfo("UTC"), utc("2026-03-09T17:00:00")) == dt.date(2026, 3, 9)


async def test_day_boundaries(db: Database, users: dict[str, int]) -> None:
    agent = users["agent"]
    ids = {}
    for name in ("just before midnight", "just after midnight", "end of day", "reached today", "due", "two days late",
                 "three days late", "closed late", "fresh", "nobody's"):
        ids[name] = await create_patient(db, PatientIn(full_name=f"Bệnh nhân {name}",
                                                       assigned_agent_id=None if name == "nobody's" else agent), agent)
    rows = {
        # not reached: the last contact, unanswered, within the local day 2026-03-10 (17:00Z on the 9th to 17:00Z on the 10th)
        "just before midnight": {"last_contact_at": utc("2026-03-09T16:59:00"), "last_contact_reached": False},
        "just after midnight": {"last_contact_at": utc("2026-03-09T17:01:00"), "last_contact_reached": False},
        "end of day": {"last_contact_at": utc("2026-03-10T16:59:00"), "last_contact_reached": False},
        "reached today": {"last_contact_at": utc("2026-03-10T03:00:00"), "last_contact_reached": True},
        "due": {"callback_date": TODAY, "last_contact_at": utc("2026-03-01T03:00:00"), "last_contact_reached": True},
        "two days late": {"callback_date": TODAY - dt.timedelta(days=2), "last_contact_at": utc("2026-03-01T03:00:00")},
        "three days late": {"callback_date": TODAY - dt.timedelta(days=3), "last_contact_at": utc("2026-03-01T03:00:00")},
        "closed late": {"callback_date": TODAY - dt.timedelta(days=9), "care_status": "care_closed",
                        "last_contact_at": utc("2026-03-01T03:00:00")},
    }
    async with db.transaction() as s:
        for name, values in rows.items():
            await s.execute(update(Patient).where(Patient.id == ids[name]).values(**values))

    async def names(kind: str, overdue_days: int = 3, agent_id: int | None = agent) -> list[str]:
        _, items = await worklist(db, kind, today=TODAY, zone=HCM, overdue_days=overdue_days, agent_id=agent_id)
        return [p["full_name"].removeprefix("Bệnh nhân ") for p in items]

    assert await names("not_reached") == ["just after midnight", "end of day"]
    assert await names("due_today") == ["due"]
    assert await names("overdue") == ["three days late"]
    assert await names("overdue", overdue_days=2) == ["three days late", "two days late"]
    assert await names("new") == ["fresh"]
    assert await names("unassigned") == ["nobody's"]
    assert await names("due_today", agent_id=users["agent2"]) == []
    counts = await worklist_counts(db, today=TODAY, zone=HCM, overdue_days=3, agent_id=agent)
    assert counts == {"due_today": 1, "overdue": 1, "not_reached": 2, "new": 1, "unassigned": 1}
    # The same instants seen from UTC: the day is cut seven hours later.
    _, items = await worklist(db, "not_reached", today=TODAY, zone=ZoneInfo("UTC"), overdue_days=3, agent_id=agent)
    assert [p["full_name"].removeprefix("Bệnh nhân ") for p in items] == ["end of day"]
