"""The audit trail of patient records: who viewed or changed which record, when, and what."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.db import Database, utcnow
from crm_bridge.models import PatientAudit

MAX_DETAIL = 2000


def audit_row(user_id: int | None, patient_id: int, action: str, detail: str = "") -> PatientAudit:
    return PatientAudit(at=utcnow(), user_id=user_id, patient_id=patient_id, action=action[:40],
                        detail=detail[:MAX_DETAIL])


def add_audit(s: AsyncSession, user_id: int | None, patient_id: int, action: str, detail: str = "") -> None:
    s.add(audit_row(user_id, patient_id, action, detail))


async def record_access(db: Database, user_id: int | None, patient_id: int, action: str, detail: str = "") -> None:
    async with db.transaction() as s:
        add_audit(s, user_id, patient_id, action, detail)


async def record_export(db: Database, user_id: int | None, patient_ids: list[int], detail: str) -> None:
    """One "export" entry per patient whose data left in an export file."""
    async with db.transaction() as s:
        for patient_id in patient_ids:
            add_audit(s, user_id, patient_id, "export", detail)


async def list_audit(db: Database, *, patient_id: int | None = None, user_id: int | None = None,
                     since: dt.datetime | None = None, until: dt.datetime | None = None,
                     action: str | None = None, limit: int = 200, offset: int = 0) -> list[dict[str, object]]:
    query = select(PatientAudit).order_by(PatientAudit.at.desc(), PatientAudit.id.desc())
    if patient_id is not None:
        query = query.where(PatientAudit.patient_id == patient_id)
    if user_id is not None:
        query = query.where(PatientAudit.user_id == user_id)
    if since is not None:
        query = query.where(PatientAudit.at >= since)
    if until is not None:
        query = query.where(PatientAudit.at < until)
    if action:
        query = query.where(PatientAudit.action == action)
    async with db.session() as s:
        rows = (await s.scalars(query.limit(limit).offset(offset))).all()
    return [{"id": r.id, "at": r.at.isoformat(), "user_id": r.user_id, "patient_id": r.patient_id,
             "action": r.action, "detail": r.detail} for r in rows]
