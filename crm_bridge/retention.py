"""Retention of the patient audit trail (clinicall/retention.py calls purge)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete

from clinicall.db import Database
from clinicall.retention import cutoff
from clinicall.settings import Settings
from crm_bridge.models import PatientAudit


async def purge(db: Database, settings: Settings, now: dt.datetime) -> dict[str, int]:
    oldest = cutoff(now, settings.retention.audit_days)
    if oldest is None:
        return {}
    async with db.transaction() as s:
        result = await s.execute(delete(PatientAudit).where(PatientAudit.at < oldest))
    return {"audit": result.rowcount or 0}
