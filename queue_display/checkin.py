"""Check-in of a booked or expected patient (crm_bridge's expected arrivals) into a service's line."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from clinicall.settings import Settings
from queue_display.tickets import Outcome, issue, local_day


def _crm() -> Any:
    try:
        from crm_bridge import service as crm
    except ImportError:
        raise Problem(503, "Patient records unavailable",
                      "The patient records are not available; issue a ticket without a patient.") from None
    return crm


async def expected_today(db: Database, settings: Settings, now: dt.datetime | None = None) -> list[Any]:
    return list(await _crm().expected_arrivals(db, local_day(now or utcnow(), settings)))


async def checkin(db: Database, settings: Settings, *, patient_id: int, service_id: int, user_id: int | None,
                  priority: str | None = None, now: dt.datetime | None = None) -> Outcome:
    """Issues a check-in ticket linked to the patient. A patient booked or expected today gets the
    "booked" priority unless reception gives a stronger one (emergency, elderly, ...)."""
    now = now or utcnow()
    crm = _crm()
    brief = await crm.patient_brief(db, patient_id)
    if brief is None:
        raise Problem(404, "Patient not found", "No patient with that id; search the patient first.")
    expected = {p.id for p in await crm.expected_arrivals(db, local_day(now, settings))}
    booked = brief.id in expected
    chosen = priority or ("booked" if booked else "normal")
    if booked and chosen == "normal":
        chosen = "booked"
    outcome = await issue(db, settings, service_id=service_id, source="checkin", priority=chosen,
                          patient_id=brief.id, user_id=user_id, now=now)
    outcome.detail = {**outcome.detail, "booked": booked}
    return outcome
