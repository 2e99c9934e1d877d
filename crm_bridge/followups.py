"""Follow-up plans: how (phone, SMS, visit), what about, when, and how far along."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, select

from clinicall.db import Database, utcnow
from clinicall.problem import Problem, check_day
from crm_bridge.audit import add_audit
from crm_bridge.care import live_patient
from crm_bridge.models import FollowUp, Patient
from crm_bridge.patients import check_agent, scope_condition
from crm_bridge.text import clean_text

METHODS = ("phone", "sms", "visit")
STATUSES = ("pending", "in_progress", "done")
VIEWS = {"week": 7, "month": 30}


def followup_json(f: FollowUp, patient_name: str | None = None) -> dict[str, Any]:
    data = {"id": f.id, "patient_id": f.patient_id, "method": f.method, "theme": f.theme,
            "due_date": f.due_date.isoformat(), "status": f.status, "agent_id": f.agent_id,
            "created_by": f.created_by, "created_at": f.created_at.isoformat(),
            "updated_at": f.updated_at.isoformat()}
    if patient_name is not None:
        data["patient_name"] = patient_name
    return data


def _check(method: str | None, status: str | None) -> None:
    if method is not None and method not in METHODS:
        raise Problem(422, "Invalid method", f"method must be one of {', '.join(METHODS)}.")
    if status is not None and status not in STATUSES:
        raise Problem(422, "Invalid status", f"status must be one of {', '.join(STATUSES)}.")


async def create_followup(db: Database, patient_id: int, *, method: str, theme: str, due_date: dt.date,
                          agent_id: int | None, created_by: int, status: str = "pending") -> dict[str, Any]:
    _check(method, status)
    check_day(due_date, "due_date")
    theme = clean_text(theme, "theme", 200)
    if not theme:
        raise Problem(422, "Theme needed", "Say what the follow-up is about in theme.")
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id)
        agent = agent_id if agent_id is not None else patient.assigned_agent_id
        await check_agent(s, agent)
        now = utcnow()
        row = FollowUp(patient_id=patient.id, method=method, theme=theme, due_date=due_date, status=status,
                       agent_id=agent, created_by=created_by, created_at=now, updated_at=now)
        s.add(row)
        await s.flush()
        add_audit(s, created_by, patient.id, "followup_add", f"follow-up {row.id} {method} {due_date}")
        return followup_json(row)


async def get_followup(db: Database, followup_id: int) -> FollowUp:
    async with db.session() as s:
        row = await s.get(FollowUp, followup_id)
    if row is None:
        raise Problem(404, "Follow-up not found", "No follow-up plan with that id exists.")
    return row


async def update_followup(db: Database, followup_id: int, changes: dict[str, Any], user_id: int) -> dict[str, Any]:
    _check(changes.get("method"), changes.get("status"))
    if "due_date" in changes:
        if changes["due_date"] is None:
            raise Problem(422, "Due date needed", "A follow-up plan needs a due date.")
        check_day(changes["due_date"], "due_date")
    if "theme" in changes:
        changes["theme"] = clean_text(changes["theme"] or "", "theme", 200)
        if not changes["theme"]:
            raise Problem(422, "Theme needed", "Say what the follow-up is about in theme.")
    for field in ("method", "status"):
        if field in changes and changes[field] is None:
            raise Problem(422, "Invalid input", f"{field} cannot be empty.")
    async with db.transaction() as s:
        row = await s.get(FollowUp, followup_id)
        if row is None:
            raise Problem(404, "Follow-up not found", "No follow-up plan with that id exists.")
        if "agent_id" in changes:
            await check_agent(s, changes["agent_id"])
        for field, value in changes.items():
            setattr(row, field, value)
        row.updated_at = utcnow()
        add_audit(s, user_id, row.patient_id, "followup_update", f"follow-up {row.id}: " + ", ".join(sorted(changes)))
        return followup_json(row)


async def list_followups(db: Database, *, start: dt.date, days: int, agent_id: int | None = None,
                         patient_id: int | None = None, include_done: bool = True,
                         agent_scope: int | None = None) -> list[dict[str, Any]]:
    """Plans due from `start` for `days` days (the 7-day and 1-month views), earliest first; with
    `agent_scope`, only plans for patients that agent may see (their own and unassigned ones)."""
    where = and_(FollowUp.due_date >= start, FollowUp.due_date < start + dt.timedelta(days=days),
                 scope_condition(agent_scope))
    if agent_id is not None:
        where = and_(where, FollowUp.agent_id == agent_id)
    if patient_id is not None:
        where = and_(where, FollowUp.patient_id == patient_id)
    if not include_done:
        where = and_(where, FollowUp.status != "done")
    async with db.session() as s:
        rows = (await s.execute(select(FollowUp, Patient.full_name).join(Patient, Patient.id == FollowUp.patient_id)
                                .where(where).order_by(FollowUp.due_date, FollowUp.id).limit(2000))).all()
    return [followup_json(f, name) for f, name in rows]
