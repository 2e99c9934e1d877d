"""What automated outreach (reminder campaigns, turn-near calls) reads from and writes to the patients'
care: who is due a reminder, the do-not-call flag (of a patient, or of anyone on a number), each
campaign's result as a care note (author: none, the note says which campaign) that puts the patient
where an agent expects them, and plain automated notes that change no list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select

from clinicall.db import Database, utcnow
from crm_bridge.audit import add_audit
from crm_bridge.care import live_patient
from crm_bridge.models import CareNote, FollowUp, Patient, PatientPhone
from crm_bridge.worklists import worklist_condition

OUTREACH_KINDS = ("appointment", "revisit", "callback")
RESULTS = ("confirmed", "callback", "not_reached")


@dataclass(frozen=True)
class OutreachCandidate:
    patient_id: int
    full_name: str
    do_not_call: bool
    day: dt.date  # the booked / follow-up / call-back day the reminder is about
    phones: list[tuple[int, str, str]]  # (phone id, E.164, as written), first one first


def _condition(kind: str, day: dt.date, zone: ZoneInfo) -> tuple[object, object]:
    """(where, the day column) of patients due a reminder of this kind on `day`."""
    live = and_(Patient.merged_into_id.is_(None), Patient.care_status != "care_closed")
    if kind == "appointment":
        unconfirmed = (Patient.booking_confirmed_on.is_(None)) | (Patient.booking_confirmed_on != Patient.booking_date)
        return and_(live, Patient.booking_date == day, unconfirmed), Patient.booking_date
    if kind == "callback":  # the agents' "due today" worklist of that day
        where, _ = worklist_condition("due_today", day, zone, 1, None)
        return where, Patient.callback_date
    raise ValueError(kind)


async def outreach_candidates(db: Database, kind: str, day: dt.date, zone: ZoneInfo) -> list[OutreachCandidate]:
    """appointment: booked on `day` and not confirmed yet; revisit: a phone follow-up plan due on `day`
    (not done); callback: the call-back date is `day`. Merged-away and closed-care patients are left out."""
    if kind not in OUTREACH_KINDS:
        raise ValueError(kind)
    async with db.session() as s:
        if kind == "revisit":
            rows = (await s.execute(
                select(Patient.id, Patient.full_name, Patient.do_not_call, FollowUp.due_date)
                .join(FollowUp, FollowUp.patient_id == Patient.id)
                .where(FollowUp.due_date == day, FollowUp.method == "phone", FollowUp.status != "done",
                       Patient.merged_into_id.is_(None), Patient.care_status != "care_closed")
                .order_by(Patient.id))).all()
        else:
            where, column = _condition(kind, day, zone)
            rows = (await s.execute(select(Patient.id, Patient.full_name, Patient.do_not_call, column)
                                    .where(where).order_by(Patient.id))).all()
        seen: dict[int, tuple[str, bool, dt.date]] = {}
        for pid, name, dnc, when in rows:
            seen.setdefault(pid, (name, bool(dnc), when))
        phones: dict[int, list[tuple[int, str, str]]] = {pid: [] for pid in seen}
        ids = sorted(seen)
        for start in range(0, len(ids), 500):
            for ph in (await s.scalars(select(PatientPhone).where(PatientPhone.patient_id.in_(ids[start:start + 500]))
                                       .order_by(PatientPhone.id))).all():
                phones[ph.patient_id].append((ph.id, ph.e164, ph.raw))
    return [OutreachCandidate(pid, name, dnc, when, phones[pid]) for pid, (name, dnc, when) in seen.items()]


async def do_not_call(db: Database, patient_id: int) -> bool:
    """The flag now (a campaign checks it again right before each call)."""
    async with db.session() as s:
        patient = await live_patient(s, patient_id)
        return bool(patient.do_not_call)


async def number_do_not_call(db: Database, e164: str) -> bool:
    """Whether any live patient with this number asked for no automated calls (a number without a
    patient on the ticket: whoever owns it decides)."""
    async with db.session() as s:
        found = await s.scalar(select(Patient.id).join(PatientPhone, PatientPhone.patient_id == Patient.id).where(
            PatientPhone.e164 == e164, Patient.do_not_call.is_(True), Patient.merged_into_id.is_(None)).limit(1))
    return found is not None


async def add_automated_note(db: Database, *, patient_id: int, call_id: int | None, note: str) -> int:
    """One care note without an author (e.g. a turn-near call's result) on the patient's timeline; it
    changes no worklist (no contact, no call-back)."""
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        row = CareNote(patient_id=patient.id, author_id=None, call_id=call_id, note=note[:5000], reached=None,
                       created_at=utcnow())
        s.add(row)
        await s.flush()
        add_audit(s, None, patient.id, "note", f"care note {row.id} (automated)")
        return row.id


async def record_outreach_result(db: Database, *, patient_id: int, result: str, call_id: int | None, note: str,
                                 day: dt.date | None, today: dt.date) -> int:
    """One care note for a campaign's final result, and the patient where an agent expects them:
    confirmed -> the booking is marked confirmed (when `day` is still the booking date);
    callback -> the call-back date is today (the agents' "due today" list);
    not_reached -> last contact today, not reached (the agents' "not reached today" list)."""
    if result not in RESULTS:
        raise ValueError(result)
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        now = utcnow()
        reached = result != "not_reached"
        callback = today if result == "callback" else None
        row = CareNote(patient_id=patient.id, author_id=None, call_id=call_id, note=note[:5000], reached=reached,
                       callback_date=callback, created_at=now)
        s.add(row)
        if result == "confirmed" and day is not None and patient.booking_date == day:
            patient.booking_confirmed_on = day
        if callback is not None:
            patient.callback_date = callback
        patient.last_contact_at = now
        patient.last_contact_reached = reached
        patient.last_activity_at = now
        await s.flush()
        add_audit(s, None, patient.id, "note", f"care note {row.id} ({result}, automated)")
        return row.id
