"""Treatment follow-through: progress entries of the care sheet (each with a "visible to the patient"
and a "for the referring doctor" switch, both off by default), re-visits ("Tái khám lần N") and the
call-back the day before a re-visit, with the reminder text prepared to copy."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from clinicall.db import Database, utcnow
from clinicall.problem import Problem, check_day
from crm_bridge.audit import add_audit
from crm_bridge.care import change_care_status, live_patient
from crm_bridge.models import Patient, TreatmentEntry
from crm_bridge.text import clean_text

MAX_TEXT = 5000


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: dt.date
    doctor: str = Field("", max_length=200)
    technician: str = Field("", max_length=200)
    progress: str = Field("", max_length=MAX_TEXT)
    orders: str = Field("", max_length=MAX_TEXT)
    revisit_date: dt.date | None = None
    visible_to_patient: bool = False
    visible_to_referrer: bool = False


class EntryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visible_to_patient: bool | None = None
    visible_to_referrer: bool | None = None


def callback_day(revisit: dt.date, today: dt.date) -> dt.date:
    """The patient is called the day before the re-visit (today when that day has passed)."""
    return max(revisit - dt.timedelta(days=1), today)


async def add_entry(db: Database, patient_id: int, data: EntryIn, user_id: int | None, today: dt.date) -> tuple[int, bool]:
    """Returns (entry id, whether treatment started with it: a new patient moves to in_treatment)."""
    texts = {"doctor": clean_text(data.doctor, "doctor", 200), "technician": clean_text(data.technician, "technician", 200),
             "progress": clean_text(data.progress, "progress", MAX_TEXT, multiline=True),
             "orders": clean_text(data.orders, "orders", MAX_TEXT, multiline=True)}
    check_day(data.day, "day")
    check_day(data.revisit_date, "revisit_date")
    if data.revisit_date is not None and data.revisit_date < data.day:
        raise Problem(422, "Re-visit before the visit", "The re-visit date must be on or after the entry's date.",
                      code="revisit_before_visit",
                      errors=[{"field": "revisit_date", "code": "revisit_before_visit", "message": "before the visit"}])
    if not any(texts[f] for f in ("progress", "orders")):
        raise Problem(422, "Empty entry", "Write the progress or the orders.", code="treatment_entry_empty",
                      errors=[{"field": "progress", "code": "treatment_entry_empty", "message": "empty"}])
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        started = patient.care_status == "new" and change_care_status(s, patient, "in_treatment", user_id,
                                                                       "treatment entry")
        row = TreatmentEntry(patient_id=patient.id, day=data.day, revisit_date=data.revisit_date,
                             visible_to_patient=data.visible_to_patient, visible_to_referrer=data.visible_to_referrer,
                             author_id=user_id, created_at=utcnow(), **texts)
        s.add(row)
        if data.revisit_date is not None and data.revisit_date >= today:
            patient.callback_date = callback_day(data.revisit_date, today)
        patient.last_activity_at = utcnow()
        await s.flush()
        add_audit(s, user_id, patient.id, "treatment", f"entry {row.id}"
                  + (f", re-visit {data.revisit_date.isoformat()}" if data.revisit_date else ""))
        return row.id, started


async def set_entry_visibility(db: Database, entry_id: int, changes: dict[str, bool | None],
                               user_id: int | None) -> dict[str, Any]:
    async with db.transaction() as s:
        row = await s.get(TreatmentEntry, entry_id)
        if row is None:
            raise Problem(404, "Entry not found", "No treatment entry with that id exists.", code="entry_not_found")
        for field, value in changes.items():
            if value is not None:
                setattr(row, field, value)
        add_audit(s, user_id, row.patient_id, "treatment_visibility", f"entry {row.id} {changes}")
        return entry_json(row)


async def entry_patient(db: Database, entry_id: int) -> int | None:
    async with db.session() as s:
        return await s.scalar(select(TreatmentEntry.patient_id).where(TreatmentEntry.id == entry_id))


def entry_json(e: TreatmentEntry) -> dict[str, Any]:
    return {"id": e.id, "patient_id": e.patient_id, "day": e.day.isoformat(), "doctor": e.doctor,
            "technician": e.technician, "progress": e.progress, "orders": e.orders,
            "revisit_date": e.revisit_date.isoformat() if e.revisit_date else None,
            "visible_to_patient": e.visible_to_patient, "visible_to_referrer": e.visible_to_referrer,
            "author_id": e.author_id, "created_at": e.created_at.isoformat()}


async def entries_for(db: Database, patient_id: int, audience: str = "staff") -> list[dict[str, Any]]:
    query = select(TreatmentEntry).where(TreatmentEntry.patient_id == patient_id)
    if audience == "patient":
        query = query.where(TreatmentEntry.visible_to_patient.is_(True))
    elif audience == "referrer":
        query = query.where(TreatmentEntry.visible_to_referrer.is_(True))
    async with db.session() as s:
        rows = (await s.scalars(query.order_by(TreatmentEntry.day, TreatmentEntry.id))).all()
    return [entry_json(e) for e in rows]


async def visits(db: Database, patient_id: int) -> list[dict[str, Any]]:
    """The first visit (the earliest entry's day), then every re-visit date in order: "Tái khám lần N".
    Dates only: every audience may see them."""
    async with db.session() as s:
        rows = (await s.execute(select(TreatmentEntry.day, TreatmentEntry.revisit_date)
                                .where(TreatmentEntry.patient_id == patient_id)
                                .order_by(TreatmentEntry.day, TreatmentEntry.id))).all()
    if not rows:
        return []
    out = [{"visit": 0, "date": rows[0].day.isoformat(), "label": "Khám lần đầu"}]
    for n, day in enumerate(sorted({r.revisit_date for r in rows if r.revisit_date is not None}), start=1):
        out.append({"visit": n, "date": day.isoformat(), "label": f"Tái khám lần {n}"})
    return out


def next_revisit(visit_list: list[dict[str, Any]], today: dt.date) -> dict[str, Any] | None:
    return next((v for v in visit_list if v["visit"] > 0 and dt.date.fromisoformat(v["date"]) >= today), None)


def revisit_text(template: str, patient: Patient | dict[str, Any], visit: dict[str, Any], link: str) -> str:
    name = patient["full_name"] if isinstance(patient, dict) else patient.full_name
    day = dt.date.fromisoformat(visit["date"])
    return template.format(fullName=name, visit=visit["visit"], revisitDate=day.strftime("%d/%m/%Y"), link=link,
                           password="")
