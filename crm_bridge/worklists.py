"""Agents' worklists, by the clinic's local day:

- due_today: the call-back date is today;
- overdue: the call-back date is `overdue_days` (settings.crm.overdue_days) or more days past;
- not_reached: the last contact was today and did not reach the patient (a care note with
  reached=False, or whose customer status is marked "not reached", e.g. "Không liên lạc được");
- new: care status new and never contacted;
- unassigned: no agent yet (care not closed).
In "new" and "unassigned", referrals not yet contacted come first.

An agent's lists hold the patients assigned to them ("unassigned" excepted); supervisors and
admins see everyone's, or one agent's with agent_id."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select

from clinicall.db import Database
from crm_bridge.models import Patient
from crm_bridge.patients import patients_json

KINDS = ("due_today", "overdue", "not_reached", "new", "unassigned")


def clinic_today(zone: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    """The clinic's local date at `now` (default: this instant)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(zone).date()


def local_day_start(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0, 0), zone).astimezone(dt.UTC)


def referrals_first() -> Any:
    """Order key: patients a referring doctor sent, not yet contacted, come first."""
    return case((and_(Patient.referrer_id.is_not(None), Patient.last_contact_at.is_(None)), 0), else_=1)


def worklist_condition(kind: str, today: dt.date, zone: ZoneInfo, overdue_days: int,
                       agent_id: int | None) -> tuple[Any, Any]:
    """(where, order_by) of one worklist."""
    open_care = Patient.care_status != "care_closed"
    live = Patient.merged_into_id.is_(None)
    owner = Patient.assigned_agent_id == agent_id if agent_id is not None else True
    if kind == "due_today":
        return and_(live, open_care, owner, Patient.callback_date == today), (Patient.name_folded, Patient.id)
    if kind == "overdue":
        limit = today - dt.timedelta(days=overdue_days)
        return (and_(live, open_care, owner, Patient.callback_date <= limit),
                (Patient.callback_date, Patient.name_folded, Patient.id))
    if kind == "not_reached":
        start = local_day_start(today, zone)
        end = local_day_start(today + dt.timedelta(days=1), zone)
        return (and_(live, open_care, owner, Patient.last_contact_at >= start, Patient.last_contact_at < end,
                     Patient.last_contact_reached.is_(False)), (Patient.last_contact_at, Patient.id))
    if kind == "new":
        return (and_(live, owner, Patient.care_status == "new", Patient.last_contact_at.is_(None)),
                (referrals_first(), Patient.created_at, Patient.id))
    if kind == "unassigned":
        return (and_(live, open_care, Patient.assigned_agent_id.is_(None)),
                (referrals_first(), Patient.created_at, Patient.id))
    raise ValueError(kind)


async def worklist(db: Database, kind: str, *, today: dt.date, zone: ZoneInfo, overdue_days: int,
                   agent_id: int | None, limit: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    where, order = worklist_condition(kind, today, zone, overdue_days, agent_id)
    async with db.session() as s:
        count = await s.scalar(select(func.count()).select_from(Patient).where(where)) or 0
        rows = list((await s.scalars(select(Patient).where(where).order_by(*order).limit(limit).offset(offset))).all())
        return count, await patients_json(s, rows)


async def worklist_counts(db: Database, *, today: dt.date, zone: ZoneInfo, overdue_days: int,
                          agent_id: int | None) -> dict[str, int]:
    counts = {}
    async with db.session() as s:
        for kind in KINDS:
            where, _ = worklist_condition(kind, today, zone, overdue_days, agent_id)
            counts[kind] = await s.scalar(select(func.count()).select_from(Patient).where(where)) or 0
    return counts
