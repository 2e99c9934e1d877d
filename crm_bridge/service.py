"""crm_bridge's service functions: what telephony, the queue and the consoles call (see the
cross-room contract). No HTTP here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import Connection, bindparam, or_, select

from clinicall.auth.service import Principal
from clinicall.db import Database
from clinicall.keys import BUS_KEY
from crm_bridge.accounts import mask_one_time_passwords
from crm_bridge.audit import audit_pushed, audit_views, pg_audit_insert, record_access, record_access_in
from crm_bridge.caller_lookup import MATCHES, CallerLookup, CallerMatch, best_matches, caller_e164, lookup_key
from crm_bridge.care import add_care_note, notes_for_calls
from crm_bridge.events import PATIENT_MERGED, WORKLISTS_CHANGED
from crm_bridge.models import Patient, PatientPhone
from crm_bridge.names import masked_name
from crm_bridge.outreach import (
    OutreachCandidate,
    add_automated_note,
    do_not_call,
    number_do_not_call,
    outreach_candidates,
    record_outreach_result,
)
from crm_bridge.phones import normalise
from crm_bridge.templates import render_template

__all__ = [
    "ARRIVAL_DAYS_KEY", "TICKETS_OF_DAY_KEY", "CallerLookup", "CallerMatch", "OutreachCandidate", "PatientBrief",
    "PhoneBrief", "add_automated_note", "add_care_note", "agent_may_access", "audit_pushed", "audit_views", "caller_e164",
    "do_not_call", "expected_arrivals", "front_desk_window", "lookup_caller", "mask_one_time_passwords", "masked_name",
    "masked_names", "may_see",
    "notes_for_calls", "number_do_not_call", "outreach_candidates", "patient_brief", "patient_phone", "patients_merged",
    "phone_to_call", "phone_to_call_in",
    "pg_audit_insert", "record_access", "record_access_in", "record_outreach_result", "render_template",
    "worklists_changed",
    "visible_patients",
]

DEFAULT_ZONE = "Asia/Ho_Chi_Minh"
# What the queue tells crm_bridge without crm_bridge reading its tables (queue_display sets both at setup):
# the local days on which patients got a ticket (referral statistics: "arrived"), and a patient's tickets
# of one local day as the queue's ticket JSON (the patient's own page).
ArrivalDays = Callable[[Database, Collection[int], dt.date, dt.date], Awaitable[dict[int, set[dt.date]]]]
TicketsOfDay = Callable[[Database, int, dt.date], Awaitable[list[dict[str, Any]]]]
ARRIVAL_DAYS_KEY = web.AppKey("crm_arrival_days", ArrivalDays)
TICKETS_OF_DAY_KEY = web.AppKey("crm_tickets_of_day", TicketsOfDay)
MAX_MERGE_HOPS = 10


@dataclass(frozen=True)
class PhoneBrief:
    id: int
    e164: str
    raw: str
    label: str


@dataclass(frozen=True)
class PatientBrief:
    id: int
    full_name: str
    care_status: str
    assigned_agent_id: int | None
    phones: list[PhoneBrief]


def phone_brief(p: PatientPhone) -> PhoneBrief:
    return PhoneBrief(id=p.id, e164=p.e164, raw=p.raw, label=p.label)


async def lookup_caller(db: Database, raw_number: str, region: str = "VN") -> CallerMatch | None:
    """The patient behind a caller's number in any written form; None when unknown or not a number.
    Several patients on one number: the one with the most recent activity. (FastAGI uses the batched
    `caller_lookup.CallerLookup`, which also writes the audit row.)"""
    e164 = lookup_key(raw_number, region if isinstance(region, str) else "VN") if isinstance(raw_number, str) else None
    if e164 is None:
        return None
    async with db.session() as s:
        return best_matches((await s.execute(MATCHES, {"numbers": [e164]})).all()).get(e164)


async def _surviving(db: Database, patient_id: int) -> Patient | None:
    async with db.session() as s:
        for _ in range(MAX_MERGE_HOPS):
            patient = await s.get(Patient, patient_id)
            if patient is None:
                return None
            if patient.merged_into_id is None:
                return patient
            patient_id = patient.merged_into_id
    return None


async def briefs(db: Database, patients: list[Patient]) -> list[PatientBrief]:
    ids = [p.id for p in patients]
    phones: dict[int, list[PhoneBrief]] = {i: [] for i in ids}
    if ids:
        async with db.session() as s:
            for start in range(0, len(ids), 500):
                rows = (await s.scalars(select(PatientPhone).where(PatientPhone.patient_id.in_(ids[start:start + 500]))
                                        .order_by(PatientPhone.id))).all()
                for p in rows:
                    phones[p.patient_id].append(phone_brief(p))
    return [PatientBrief(id=p.id, full_name=p.full_name, care_status=p.care_status,
                         assigned_agent_id=p.assigned_agent_id, phones=phones[p.id]) for p in patients]


async def patient_brief(db: Database, patient_id: int) -> PatientBrief | None:
    """The patient (following a merge to the surviving record) with their phones; None if unknown."""
    if not isinstance(patient_id, int) or not 0 < patient_id < 2**63:
        return None
    patient = await _surviving(db, patient_id)
    if patient is None:
        return None
    return (await briefs(db, [patient]))[0]


async def full_names(db: Database, patient_ids: Iterable[int]) -> dict[int, str]:
    """patient id -> full name, for staff lists that name the patients they already show (the caller audits)."""
    wanted = sorted({i for i in patient_ids if isinstance(i, int) and 0 < i < 2**63})
    names: dict[int, str] = {}
    async with db.session() as s:
        for start in range(0, len(wanted), 500):
            rows = await s.execute(select(Patient.id, Patient.full_name).where(Patient.id.in_(wanted[start:start + 500])))
            names.update({pid: name for pid, name in rows.all()})
    return names


async def masked_names(db: Database, patient_ids: Iterable[int]) -> dict[int, str]:
    """patient id -> masked name ("Nguyễn V. A."), following merges, in one query (more only for merged ids)."""
    wanted = list(patient_ids)
    async with db.session() as s:
        return await s.run_sync(lambda session: masked_names_in(session.connection(), wanted))


def masked_names_in(conn: Connection, patient_ids: Iterable[int]) -> dict[int, str]:
    """masked_names inside the caller's own transaction (a hot path's Database.run_sync)."""
    wanted = {i for i in patient_ids if isinstance(i, int) and 0 < i < 2**63}
    names: dict[int, str] = {}
    asked = {i: [i] for i in wanted}  # the id looked up now -> the ids it answers for
    for _ in range(MAX_MERGE_HOPS):
        if not asked:
            break
        rows = conn.execute(select(Patient.id, Patient.full_name, Patient.merged_into_id)
                            .where(Patient.id.in_(list(asked)))).all()
        following: dict[int, list[int]] = {}
        for row in rows:
            if row.merged_into_id is None:
                names.update(dict.fromkeys(asked[row.id], masked_name(row.full_name)))
            else:
                following.setdefault(row.merged_into_id, []).extend(asked[row.id])
        asked = following
    return names


async def patient_phone(db: Database, patient_id: int, phone_id: int) -> PhoneBrief | None:
    if not all(isinstance(v, int) and 0 < v < 2**63 for v in (patient_id, phone_id)):
        return None
    patient = await _surviving(db, patient_id)
    if patient is None:
        return None
    async with db.session() as s:
        phone = await s.scalar(select(PatientPhone).where(PatientPhone.id == phone_id,
                                                          PatientPhone.patient_id == patient.id))
    return phone_brief(phone) if phone else None


async def phone_to_call(db: Database, who: Principal, patient_id: int, phone_id: int, *,
                        zone: ZoneInfo | str | None = None) -> tuple[bool, PhoneBrief | None]:
    """Click-to-call in one read hand-off (Database.read_sync): (may `who` reach this patient, as
    agent_may_access says; the phone, as patient_phone finds it)."""
    if not _may_ask(who, patient_id, phone_id):
        return False, None
    today = local_today(zone)
    if db.is_postgres:
        return _phone_to_call_answer(who, await _phone_to_call_pg(db, patient_id, phone_id), today)
    return await db.read_sync(lambda connection: phone_to_call_in(connection, who, patient_id, phone_id, today))


def phone_to_call_in(connection: Connection, who: Principal, patient_id: int, phone_id: int,
                     today: dt.date) -> tuple[bool, PhoneBrief | None]:
    """phone_to_call inside the caller's own transaction (a hot path's Database.run_sync)."""
    if not _may_ask(who, patient_id, phone_id):
        return False, None
    return _phone_to_call_answer(who, _phone_to_call_row(connection, patient_id, phone_id), today)


def _may_ask(who: Principal, patient_id: int, phone_id: int) -> bool:
    return all(isinstance(v, int) and 0 < v < 2**63 for v in (patient_id, phone_id)) and who is not None \
        and who.is_user


def _phone_to_call_answer(who: Principal, row: Any, today: dt.date) -> tuple[bool, PhoneBrief | None]:
    if row is None or row["merged_into_id"] is not None:
        return False, None
    allowed = may_see(who, row["assigned_agent_id"], (row["booking_date"], row["arrival_date"]), today)
    phone = PhoneBrief(id=row["phone_id"], e164=row["e164"], raw=row["raw"], label=row["label"]) \
        if row["phone_id"] else None
    return allowed, phone


def _phone_to_call_row(connection: Connection, patient_id: int, phone_id: int) -> Any:
    row = None
    for _ in range(MAX_MERGE_HOPS):  # one statement unless the record was merged
        row = connection.execute(PHONE_TO_CALL, {"patient_id": patient_id, "phone_id": phone_id}).first()
        if row is None or row.merged_into_id is None:
            break
        patient_id = row.merged_into_id
    return row._mapping if row is not None else None


async def _phone_to_call_pg(db: Database, patient_id: int, phone_id: int) -> Any:
    row = None
    for _ in range(MAX_MERGE_HOPS):  # one prepared statement, one round trip, unless the record was merged
        rows = await db.pg_fetch(PG_PHONE_TO_CALL, patient_id, phone_id)
        row = rows[0] if rows else None
        if row is None or row["merged_into_id"] is None:
            break
        patient_id = row["merged_into_id"]
    return row


PG_PHONE_TO_CALL = """
SELECT p.merged_into_id, p.assigned_agent_id, p.booking_date, p.arrival_date,
       ph.id AS phone_id, ph.e164, ph.raw, ph.label
FROM patients AS p LEFT OUTER JOIN patient_phones AS ph ON ph.patient_id = p.id AND ph.id = $2
WHERE p.id = $1"""


PHONE_TO_CALL = (
    select(Patient.merged_into_id, Patient.assigned_agent_id, Patient.booking_date, Patient.arrival_date,
           PatientPhone.id.label("phone_id"), PatientPhone.e164, PatientPhone.raw, PatientPhone.label)
    .outerjoin(PatientPhone, (PatientPhone.patient_id == Patient.id) & (PatientPhone.id == bindparam("phone_id")))
    .where(Patient.id == bindparam("patient_id"))
)


def local_today(zone: ZoneInfo | str | None = None) -> dt.date:
    tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone or DEFAULT_ZONE)
    return dt.datetime.now(tz).date()


async def agent_may_access(db: Database, who: Principal, patient_id: int, *,
                           zone: ZoneInfo | str | None = None) -> bool:
    """Agents: their own and unassigned patients; supervisors and admins: everyone; reception and
    doctors: patients booked or expected from yesterday to tomorrow (the clinic's local days)."""
    if who is None or not who.is_user:
        return False
    patient = await _surviving(db, patient_id) if isinstance(patient_id, int) and 0 < patient_id < 2**63 else None
    if patient is None:
        return False
    return may_see(who, patient.assigned_agent_id, (patient.booking_date, patient.arrival_date), local_today(zone))


async def visible_patients(db: Database, who: Principal, patient_ids: Iterable[int], *,
                           zone: ZoneInfo | str | None = None) -> set[int]:
    """Of these patients, the ones the card's rule lets `who` see now (a list's rows, in one query;
    a merged-away id is followed to its surviving record)."""
    wanted = {i for i in patient_ids if isinstance(i, int) and 0 < i < 2**63}
    if not wanted or who.has_any("supervisor"):
        return wanted if who.is_user else set()
    today = local_today(zone)
    async with db.session() as s:
        rows = (await s.execute(select(Patient.id, Patient.merged_into_id, Patient.assigned_agent_id,
                                       Patient.booking_date, Patient.arrival_date)
                                .where(Patient.id.in_(wanted)))).all()
    visible = {r.id for r in rows if r.merged_into_id is None
               and may_see(who, r.assigned_agent_id, (r.booking_date, r.arrival_date), today)}
    for row in rows:
        if row.merged_into_id is not None and await agent_may_access(db, who, row.id, zone=zone):
            visible.add(row.id)
    return visible


def front_desk_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """The local days reception and doctors may see: yesterday to tomorrow."""
    return today - dt.timedelta(days=1), today + dt.timedelta(days=1)


def may_see(who: Principal, assigned_agent_id: int | None, days: tuple[dt.date | None, ...], today: dt.date) -> bool:
    """The one rule for the card and for every list: supervisors and admins see every patient; agents
    their own and unassigned ones; reception and doctors those booked or expected (`days`) from
    yesterday to tomorrow."""
    if not who.is_user:
        return False
    if who.has_any("supervisor"):
        return True
    if "agent" in who.roles and assigned_agent_id in (None, who.user_id):
        return True
    if who.roles & {"reception", "doctor"}:
        first, last = front_desk_window(today)
        return any(day is not None and first <= day <= last for day in days)
    return False


async def expected_arrivals(db: Database, day: dt.date) -> list[PatientBrief]:
    """Patients booked or expected to arrive on that (local) day, by name."""
    async with db.session() as s:
        rows = list((await s.scalars(
            select(Patient).where(Patient.merged_into_id.is_(None),
                                  or_(Patient.booking_date == day, Patient.arrival_date == day))
            .order_by(Patient.name_folded, Patient.id)
        )).all())
    return await briefs(db, rows)


def normalise_phone(raw: str | None, region: str = "VN") -> str | None:
    """Any written form of a phone number to E.164, or None: what other rooms call (pure)."""
    return normalise(raw, region)


async def bookings_in(db: Database, day_from: dt.date, day_to: dt.date) -> set[tuple[int, dt.date]]:
    """(patient id, booked local day) pairs in the range, from care notes' booking dates and the
    patients' current booking dates (merged-away records left out)."""
    from crm_bridge.models import CareNote

    async with db.session() as s:
        noted = (await s.execute(select(CareNote.patient_id, CareNote.booking_date).where(
            CareNote.booking_date >= day_from, CareNote.booking_date <= day_to))).all()
        current = (await s.execute(select(Patient.id, Patient.booking_date).where(
            Patient.booking_date >= day_from, Patient.booking_date <= day_to, Patient.merged_into_id.is_(None)))).all()
    return {(p, d) for p, d in [*noted, *current] if d is not None}


async def worklists_changed(app: web.Application, patient_id: int | None, reason: str) -> None:
    """The agents' consoles and the care lists read their lists again (who is on which list changed)."""
    await app[BUS_KEY].publish(WORKLISTS_CHANGED, {"patient_id": patient_id, "reason": reason})


async def patients_merged(app: web.Application, from_id: int, into_id: int) -> None:
    """Telephony re-points the merged record's calls; the lists are read again."""
    await app[BUS_KEY].publish(PATIENT_MERGED, {"from_id": from_id, "into_id": into_id})
    await worklists_changed(app, into_id, "merged")
