"""The care workflow: care-status life cycle, the customer-status list, care notes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.auth.models import User
from clinicall.db import Database, utcnow
from clinicall.problem import Problem, check_day
from crm_bridge.audit import add_audit
from crm_bridge.models import CARE_STATUSES, CareNote, CareStatusChange, CustomerStatus, Patient
from crm_bridge.text import clean_text

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("in_treatment", "care_closed"),
    "in_treatment": ("treatment_finished", "care_closed"),
    "treatment_finished": ("care_closed",),
    "care_closed": (),
}
STATUS_LABELS = {"new": "mới", "in_treatment": "đang điều trị", "treatment_finished": "kết thúc điều trị",
                 "care_closed": "đóng chăm sóc"}
MAX_NOTE = 5000


def check_transition(current: str, target: str) -> None:
    if target not in CARE_STATUSES:
        raise Problem(422, "Unknown care status",
                      f"Care status must be one of {', '.join(CARE_STATUSES)}; got {target!r}.")
    if target != current and target not in TRANSITIONS[current]:
        allowed = ", ".join(TRANSITIONS[current]) or "none (care is closed)"
        raise Problem(409, "Care status change refused", code="care_transition_refused", detail=
                      f"A patient in care status {current} cannot move to {target}; allowed next: {allowed}.")


def change_care_status(s: AsyncSession, patient: Patient, target: str, user_id: int | None, reason: str = "") -> bool:
    """Apply a validated transition inside the caller's transaction; False when nothing changes."""
    check_transition(patient.care_status, target)
    if target == patient.care_status:
        return False
    now = utcnow()
    s.add(CareStatusChange(patient_id=patient.id, from_status=patient.care_status, to_status=target,
                           changed_by=user_id, changed_at=now, reason=reason[:500]))
    add_audit(s, user_id, patient.id, "care_status", f"{patient.care_status} -> {target}")
    patient.care_status = target
    patient.care_status_changed_at = now
    patient.care_status_changed_by = user_id
    patient.last_activity_at = now
    return True


async def resolve_customer_status(s: AsyncSession, customer_status: str | None,
                                  detail_status: str | None) -> CustomerStatus | None:
    if customer_status is None:
        if detail_status is not None:
            raise Problem(422, "Detail status without a status",
                          "Choose the customer status first, then one of its detail statuses.")
        return None
    parent = await s.scalar(select(CustomerStatus).where(
        CustomerStatus.parent_id.is_(None), CustomerStatus.label == customer_status, CustomerStatus.active.is_(True)))
    if parent is None:
        raise Problem(422, "Unknown customer status",
                      f"{customer_status!r} is not in the customer-status list; pick one from /api/customer-statuses.")
    if detail_status is not None:
        child = await s.scalar(select(CustomerStatus.id).where(
            CustomerStatus.parent_id == parent.id, CustomerStatus.label == detail_status,
            CustomerStatus.active.is_(True)))
        if child is None:
            raise Problem(422, "Unknown detail status",
                          f"{detail_status!r} is not a detail status of {customer_status!r}; pick one listed under it.")
    return parent


def require_callback_date(status: CustomerStatus | None, callback_date: dt.date | None) -> None:
    """A "call back" outcome without a date would drop the patient out of every worklist."""
    if status is not None and status.callback_required and callback_date is None:
        raise Problem(422, "Call-back date needed", f"{status.label!r} means calling back; give callback_date.",
                      code="callback_date_required",
                      errors=[{"field": "callback_date", "code": "callback_date_required",
                               "message": "A call-back outcome needs a call-back date."}])


async def live_patient(s: AsyncSession, patient_id: int, *, lock: bool = False) -> Patient:
    """The patient, following merges to the surviving record; 404 if there is none."""
    for _ in range(10):
        query = select(Patient).where(Patient.id == patient_id)
        if lock:
            query = query.with_for_update()
        patient = await s.scalar(query)
        if patient is None:
            break
        if patient.merged_into_id is None:
            return patient
        patient_id = patient.merged_into_id
    raise Problem(404, "Patient not found", "No patient with that id exists; search for the patient again.")


async def add_care_note(db: Database, *, patient_id: int, author_id: int, call_id: int | None = None,
                        customer_status: str | None = None, detail_status: str | None = None,
                        note: str = "", callback_date: dt.date | None = None, booking_date: dt.date | None = None,
                        arrival_date: dt.date | None = None, care_status: str | None = None,
                        reached: bool | None = None) -> int:
    """Record one contact with a patient; returns the note id. Validates everything before writing."""
    note = clean_text(note or "", "note", MAX_NOTE, multiline=True)
    if customer_status is not None:
        customer_status = clean_text(customer_status, "customer_status", 120)
    if detail_status is not None:
        detail_status = clean_text(detail_status, "detail_status", 120)
    for value, field in ((callback_date, "callback_date"), (booking_date, "booking_date"),
                         (arrival_date, "arrival_date")):
        check_day(value, field)
    if call_id is not None and not 0 < call_id < 2**63:
        raise Problem(422, "Invalid call id", "call_id must be a positive call id.")
    async with db.transaction() as s:
        if await s.scalar(select(func.count()).select_from(User).where(User.id == author_id)) == 0:
            raise Problem(422, "Unknown author", "The note's author is not a user; log in again.")
        patient = await live_patient(s, patient_id, lock=True)
        status = await resolve_customer_status(s, customer_status, detail_status)
        require_callback_date(status, callback_date)
        if reached is None and status is not None:
            reached = not status.not_reached
        if care_status is not None:
            change_care_status(s, patient, care_status, author_id, reason="care note")
        now = utcnow()
        row = CareNote(patient_id=patient.id, author_id=author_id, call_id=call_id, customer_status=customer_status,
                       detail_status=detail_status, note=note, callback_date=callback_date,
                       booking_date=booking_date, arrival_date=arrival_date, reached=reached,
                       care_status=care_status, created_at=now)
        s.add(row)
        patient.callback_date = callback_date
        if booking_date is not None:
            patient.booking_date = booking_date
        if arrival_date is not None:
            patient.arrival_date = arrival_date
        patient.last_contact_at = now
        patient.last_contact_reached = reached
        patient.last_activity_at = now
        await s.flush()
        add_audit(s, author_id, patient.id, "note", f"care note {row.id}" + (f" for call {call_id}" if call_id else ""))
        return row.id


def note_json(n: CareNote) -> dict[str, Any]:
    return {
        "id": n.id, "patient_id": n.patient_id, "author_id": n.author_id, "call_id": n.call_id,
        "customer_status": n.customer_status, "detail_status": n.detail_status, "note": n.note,
        "callback_date": _iso(n.callback_date), "booking_date": _iso(n.booking_date),
        "arrival_date": _iso(n.arrival_date), "reached": n.reached, "care_status": n.care_status,
        "created_at": n.created_at.isoformat(),
    }


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


async def notes_for_patient(db: Database, patient_id: int, limit: int = 200) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.scalars(select(CareNote).where(CareNote.patient_id == patient_id)
                                .order_by(CareNote.created_at.desc(), CareNote.id.desc()).limit(limit))).all()
    return [note_json(n) for n in rows]


async def notes_for_calls(db: Database, call_ids: list[int]) -> dict[int, dict[str, Any]]:
    ids = sorted({int(c) for c in call_ids if isinstance(c, int) and 0 < c < 2**63})
    if not ids:
        return {}
    result: dict[int, dict[str, Any]] = {}
    async with db.session() as s:
        for start in range(0, len(ids), 500):
            rows = (await s.scalars(select(CareNote).where(CareNote.call_id.in_(ids[start:start + 500]))
                                    .order_by(CareNote.created_at, CareNote.id))).all()
            for n in rows:
                result[n.call_id] = note_json(n)  # type: ignore[index]  # latest note per call wins
    return result


async def status_history(db: Database, patient_id: int) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.scalars(select(CareStatusChange).where(CareStatusChange.patient_id == patient_id)
                                .order_by(CareStatusChange.changed_at, CareStatusChange.id))).all()
    return [{"id": r.id, "from": r.from_status, "to": r.to_status, "changed_by": r.changed_by,
             "changed_at": r.changed_at.isoformat(), "reason": r.reason} for r in rows]
