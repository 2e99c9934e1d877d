"""Patient records: create, update, phones, the card, listing and search."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.auth.models import User
from clinicall.db import Database, utcnow
from clinicall.problem import Problem, check_day
from crm_bridge.audit import add_audit
from crm_bridge.care import change_care_status, live_patient
from crm_bridge.models import CARE_STATUSES, GENDERS, Patient, PatientNameKey, PatientPhone
from crm_bridge.names import clean_name, fold, search_keys
from crm_bridge.phones import looks_like_phone, normalise
from crm_bridge.text import clean_text

MAX_PHONES = 10
TEXT_LIMITS = {"address": 500, "referring_doctor": 200, "service_of_interest": 200, "notes": 10000}


class PhoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=64)
    label: str = Field("", max_length=40)


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: str = Field(min_length=1, max_length=200)
    date_of_birth: dt.date | None = None
    gender: str | None = Field(None, max_length=10)
    address: str = Field("", max_length=500)
    referring_doctor: str = Field("", max_length=200)
    service_of_interest: str = Field("", max_length=200)
    notes: str = Field("", max_length=10000)
    his_id: str | None = Field(None, min_length=1, max_length=64)
    assigned_agent_id: int | None = Field(None, gt=0, lt=2**63)
    phones: list[PhoneIn] = Field(default_factory=list, max_length=MAX_PHONES)


class PatientPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: str | None = Field(None, min_length=1, max_length=200)
    date_of_birth: dt.date | None = None
    gender: str | None = Field(None, max_length=10)
    address: str | None = Field(None, max_length=500)
    referring_doctor: str | None = Field(None, max_length=200)
    service_of_interest: str | None = Field(None, max_length=200)
    notes: str | None = Field(None, max_length=10000)
    his_id: str | None = Field(None, min_length=1, max_length=64)
    care_status: str | None = Field(None, max_length=24)
    care_status_reason: str = Field("", max_length=500)
    booking_date: dt.date | None = None
    arrival_date: dt.date | None = None
    do_not_call: bool | None = None


def checked_name(value: str) -> tuple[str, str]:
    name = clean_name(clean_text(value, "full_name", 200))
    folded = fold(name)
    if not name or not folded:
        raise Problem(422, "Invalid name", "Write the patient's full name with at least one letter.")
    return name, folded[:200]


def checked_gender(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in GENDERS:
        raise Problem(422, "Invalid gender", f"gender must be one of {', '.join(GENDERS)} or empty.")
    return value


def checked_his_id(value: str | None) -> str | None:
    if value is None:
        return None
    text = clean_text(value, "his_id", 64)
    if not text:
        raise Problem(422, "Invalid HIS id", "his_id must not be blank; leave it out instead.")
    return text


def checked_phone(raw: str, region: str, field: str = "number") -> str:
    """E.164 of a phone written in any form; else 422 invalid_phone naming the form's field."""
    e164 = normalise(raw, region)
    if e164 is None:
        raise Problem(422, "Invalid phone number",
                      f"{raw[:40]!r} is not a phone number we can dial; write it like 0912345678 or +84912345678.",
                      code="invalid_phone", errors=[{"field": field, "code": "invalid_phone", "message": "not a phone number"}])
    return e164


def set_name(s: AsyncSession, patient: Patient, name: str, folded: str, *, replace: bool) -> None:
    patient.full_name = name
    patient.name_folded = folded
    if replace:
        s.add_all(PatientNameKey(patient_id=patient.id, key=k[:200]) for k in search_keys(folded))


async def check_agent(s: AsyncSession, agent_id: int | None) -> None:
    if agent_id is None:
        return
    user = await s.get(User, agent_id)
    if user is None or not user.active or not {"agent", "supervisor"} & set(user.roles or []):
        raise Problem(422, "Unknown agent", f"User {agent_id} is not an active agent; pick an agent from the user list.")


async def create_patient(db: Database, data: PatientIn, user_id: int | None, region: str = "VN") -> int:
    name, folded = checked_name(data.full_name)
    check_day(data.date_of_birth, "date_of_birth")
    phones = [(checked_phone(p.number, region), clean_text(p.number, "phone", 64), clean_text(p.label, "label", 40))
              for p in data.phones]
    texts = {f: clean_text(getattr(data, f), f, n, multiline=f == "notes") for f, n in TEXT_LIMITS.items()}
    his_id = checked_his_id(data.his_id)
    gender = checked_gender(data.gender)
    async with db.transaction() as s:
        await check_agent(s, data.assigned_agent_id)
        if his_id and await s.scalar(select(Patient.id).where(Patient.his_id == his_id)) is not None:
            raise Problem(409, "HIS id taken", f"Another patient already has HIS id {his_id}; open that record instead.")
        now = utcnow()
        patient = Patient(full_name=name, name_folded=folded, date_of_birth=data.date_of_birth, gender=gender,
                          his_id=his_id, assigned_agent_id=data.assigned_agent_id, care_status="new",
                          created_at=now, updated_at=now, last_activity_at=now, **texts)
        s.add(patient)
        await s.flush()
        s.add_all(PatientNameKey(patient_id=patient.id, key=k[:200]) for k in search_keys(folded))
        seen: set[str] = set()
        for e164, raw, label in phones:
            if e164 not in seen:
                seen.add(e164)
                s.add(PatientPhone(patient_id=patient.id, e164=e164, raw=raw, label=label))
        add_audit(s, user_id, patient.id, "create", f"created {name}")
        return patient.id


async def update_patient(db: Database, patient_id: int, patch: PatientPatch, user_id: int | None) -> list[str]:
    """Apply the fields that were sent; returns their names."""
    sent = patch.model_dump(exclude_unset=True)
    sent.pop("care_status_reason", None)
    if "full_name" in sent and sent["full_name"] is None:
        raise Problem(422, "Invalid name", "full_name cannot be empty.")
    if "care_status" in sent and sent["care_status"] is None:
        raise Problem(422, "Invalid care status", f"care_status must be one of {', '.join(CARE_STATUSES)}.")
    for field in ("date_of_birth", "booking_date", "arrival_date"):
        check_day(sent.get(field), field)
    changes: dict[str, Any] = {}
    for field, limit in TEXT_LIMITS.items():
        if field in sent:
            changes[field] = clean_text(sent[field] or "", field, limit, multiline=field == "notes")
    if "gender" in sent:
        changes["gender"] = checked_gender(sent["gender"])
    if "his_id" in sent:
        changes["his_id"] = checked_his_id(sent["his_id"])
    for field in ("date_of_birth", "booking_date", "arrival_date"):
        if field in sent:
            changes[field] = sent[field]
    if sent.get("do_not_call") is not None:
        changes["do_not_call"] = bool(sent["do_not_call"])
    name = checked_name(sent["full_name"]) if "full_name" in sent else None
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        if changes.get("his_id") and await s.scalar(select(Patient.id).where(
                Patient.his_id == changes["his_id"], Patient.id != patient.id)) is not None:
            raise Problem(409, "HIS id taken", f"Another patient already has HIS id {changes['his_id']}.")
        if "care_status" in sent:
            change_care_status(s, patient, sent["care_status"], user_id, patch.care_status_reason)
        for field, value in changes.items():
            setattr(patient, field, value)
        if name is not None:
            await s.execute(delete(PatientNameKey).where(PatientNameKey.patient_id == patient.id))
            set_name(s, patient, *name, replace=True)
        patient.updated_at = patient.last_activity_at = utcnow()
        fields = sorted(sent)
        add_audit(s, user_id, patient.id, "update", "changed " + ", ".join(fields))
        return fields


async def assign_patient(s: AsyncSession, patient: Patient, agent_id: int | None, user_id: int | None) -> None:
    await check_agent(s, agent_id)
    before = patient.assigned_agent_id
    patient.assigned_agent_id = agent_id
    patient.updated_at = patient.last_activity_at = utcnow()
    add_audit(s, user_id, patient.id, "assign", f"agent {before} -> {agent_id}")


async def set_assignment(db: Database, patient_id: int, agent_id: int | None, user_id: int | None) -> None:
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        await assign_patient(s, patient, agent_id, user_id)


async def take_patient(db: Database, patient_id: int, agent_id: int, user_id: int | None) -> None:
    """An agent takes an unassigned patient. Checked under the row's lock: of two agents taking one patient at
    once, the second is told that someone else took them (409 already_assigned), not refused as unauthorised."""
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        if patient.assigned_agent_id == agent_id:
            return
        if patient.assigned_agent_id is not None:
            raise Problem(409, "Already taken", "Another agent took this patient meanwhile; ask a supervisor, "
                          "or request a transfer.", code="already_assigned")
        await assign_patient(s, patient, agent_id, user_id)


async def add_phone(db: Database, patient_id: int, number: str, label: str, user_id: int | None,
                    region: str = "VN") -> int:
    e164 = checked_phone(number, region)
    raw = clean_text(number, "phone", 64)
    label = clean_text(label, "label", 40)
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        existing = (await s.scalars(select(PatientPhone).where(PatientPhone.patient_id == patient.id))).all()
        if any(p.e164 == e164 for p in existing):
            raise Problem(409, "Phone already recorded", f"{e164} is already one of this patient's phones.",
                          code="phone_exists")
        if len(existing) >= MAX_PHONES:
            raise Problem(422, "Too many phones", f"A patient can have at most {MAX_PHONES} phones; remove one first.")
        phone = PatientPhone(patient_id=patient.id, e164=e164, raw=raw, label=label)
        s.add(phone)
        await s.flush()
        add_audit(s, user_id, patient.id, "phone_add", e164)
        return phone.id


async def remove_phone(db: Database, patient_id: int, phone_id: int, user_id: int | None) -> None:
    async with db.transaction() as s:
        patient = await live_patient(s, patient_id, lock=True)
        phone = await s.scalar(select(PatientPhone).where(PatientPhone.id == phone_id,
                                                          PatientPhone.patient_id == patient.id))
        if phone is None:
            raise Problem(404, "Phone not found", "This patient has no phone with that id.")
        await s.delete(phone)
        add_audit(s, user_id, patient.id, "phone_remove", phone.e164)


def patient_json(p: Patient, phones: list[PatientPhone] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": p.id, "full_name": p.full_name, "date_of_birth": _iso(p.date_of_birth), "gender": p.gender,
        "address": p.address, "referring_doctor": p.referring_doctor, "service_of_interest": p.service_of_interest,
        "care_status": p.care_status, "care_status_changed_at": _iso(p.care_status_changed_at),
        "care_status_changed_by": p.care_status_changed_by, "assigned_agent_id": p.assigned_agent_id,
        "notes": p.notes, "his_id": p.his_id, "callback_date": _iso(p.callback_date),
        "booking_date": _iso(p.booking_date), "arrival_date": _iso(p.arrival_date),
        "last_contact_at": _iso(p.last_contact_at), "last_contact_reached": p.last_contact_reached,
        "do_not_call": bool(p.do_not_call),
        "booking_confirmed": p.booking_date is not None and p.booking_confirmed_on == p.booking_date,
        "created_at": _iso(p.created_at), "updated_at": _iso(p.updated_at),
        "referrer_id": p.referrer_id, "referral_note": p.referral_note,
    }
    if phones is not None:
        data["phones"] = [{"id": ph.id, "e164": ph.e164, "raw": ph.raw, "label": ph.label} for ph in phones]
    return data


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def phones_of(s: AsyncSession, ids: list[int]) -> dict[int, list[PatientPhone]]:
    result: dict[int, list[PatientPhone]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        rows = (await s.scalars(select(PatientPhone).where(PatientPhone.patient_id.in_(ids[start:start + 500]))
                                .order_by(PatientPhone.id))).all()
        for ph in rows:
            result[ph.patient_id].append(ph)
    return result


async def patients_json(s: AsyncSession, patients: list[Patient]) -> list[dict[str, Any]]:
    phones = await phones_of(s, [p.id for p in patients])
    return [patient_json(p, phones[p.id]) for p in patients]


async def patients_by_ids(db: Database, ids: list[int]) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = list((await s.scalars(select(Patient).where(Patient.id.in_(ids)).order_by(Patient.id))).all()) if ids else []
        return await patients_json(s, rows)


async def get_patient(db: Database, patient_id: int) -> dict[str, Any]:
    async with db.session() as s:
        patient = await live_patient(s, patient_id)
        return patient_json(patient, (await phones_of(s, [patient.id]))[patient.id])


def scope_condition(agent_scope: int | None) -> Any:
    """Agents see their own and unassigned patients."""
    if agent_scope is None:
        return Patient.merged_into_id.is_(None)
    return and_(Patient.merged_into_id.is_(None),
                or_(Patient.assigned_agent_id == agent_scope, Patient.assigned_agent_id.is_(None)))


def key_prefix_condition(db: Database, prefix: str) -> Any:
    """Folded keys hold only [a-z0-9 ]: a binary range is a prefix match that every btree serves."""
    return and_(PatientNameKey.key >= prefix, PatientNameKey.key < prefix + "~")


# A skipped-words search ("nguyen an") reads at most this many names starting with its rarest
# word: the worst case stays bounded when every word is common and the combination is rare.
SKIPPED_WORDS_SCAN = 10_000
RAREST_PROBE = SKIPPED_WORDS_SCAN


async def _ordered_ids(s: AsyncSession, condition: Any, limit: int) -> list[int]:
    """Distinct patient ids matching `condition`, in name-key order, at most `limit`."""
    rows = (await s.execute(
        select(PatientNameKey.patient_id).join(Patient, Patient.id == PatientNameKey.patient_id).where(condition)
        .order_by(PatientNameKey.key, PatientNameKey.patient_id).limit(limit * 2))).scalars().all()
    return list(dict.fromkeys(rows))[:limit]


async def rarest_word(s: AsyncSession, db: Database, words: list[str]) -> str:
    """The query word that starts the fewest name keys (counting at most RAREST_PROBE each); on a
    tie the later word, as Vietnamese given names (last) are rarer than family names (first)."""
    best, best_count = words[-1], None
    for word in dict.fromkeys(reversed(words)):
        probe = select(PatientNameKey.id).where(key_prefix_condition(db, word)).limit(RAREST_PROBE).subquery()
        count = await s.scalar(select(func.count()).select_from(probe)) or 0
        if best_count is None or count < best_count:
            best, best_count = word, count
    return best


async def search_patients(db: Database, q: str, *, agent_scope: int | None = None, limit: int = 50,
                          region: str = "VN") -> list[dict[str, Any]]:
    """A phone in any form, or a name without accents. First the query as a prefix of a word-suffix
    of the folded name ("van a" finds "Nguyễn Văn An"), in key order; if that finds nothing,
    names where every query word starts a word, in any order ("an nguyen")."""
    text = q.strip()
    async with db.session() as s:
        if looks_like_phone(text):
            e164 = normalise(text, region)
            if e164 is None:
                return []
            ids_query = select(PatientPhone.patient_id).where(PatientPhone.e164 == e164)
            rows = list((await s.scalars(select(Patient).where(Patient.id.in_(ids_query), scope_condition(agent_scope))
                                         .order_by(Patient.last_activity_at.desc()).limit(limit))).all())
            return await patients_json(s, rows)
        folded = fold(text)[:200]
        if not folded:
            return []
        # Ids first (an index-only walk in key order), then only the patients shown are loaded.
        ids = await _ordered_ids(s, and_(key_prefix_condition(db, folded), scope_condition(agent_scope)), limit)
        words = folded.split()
        if not ids and len(words) > 1:
            # Nothing starts with the query as typed: words skipped or in another order ("nguyen an",
            # "an nguyen"). The rarest word drives an index range scan over the name keys; the others
            # must each start a word of the name.
            driver = await rarest_word(s, db, words)
            candidates = (select(PatientNameKey.patient_id, PatientNameKey.key)
                          .where(key_prefix_condition(db, driver))
                          .order_by(PatientNameKey.key, PatientNameKey.patient_id).limit(SKIPPED_WORDS_SCAN).subquery())
            condition = scope_condition(agent_scope)
            for word in words:
                if word != driver:
                    condition = and_(condition, or_(Patient.name_folded.like(word + "%"),
                                                    Patient.name_folded.like("% " + word + "%")))
            rows = (await s.execute(
                select(candidates.c.patient_id).join(Patient, Patient.id == candidates.c.patient_id).where(condition)
                .order_by(candidates.c.key, candidates.c.patient_id).limit(limit * 2))).scalars().all()
            ids = list(dict.fromkeys(rows))[:limit]
        loaded = {p.id: p for p in (await s.scalars(select(Patient).where(Patient.id.in_(ids)))).all()} if ids else {}
        rows = [loaded[i] for i in ids if i in loaded]
        return await patients_json(s, rows)


async def list_patients(db: Database, *, agent_scope: int | None = None, care_status: str | None = None,
                        assigned_agent_id: int | None = None, unassigned: bool = False,
                        limit: int = 50, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    condition = scope_condition(agent_scope)
    if care_status:
        condition = and_(condition, Patient.care_status == care_status)
    if assigned_agent_id is not None:
        condition = and_(condition, Patient.assigned_agent_id == assigned_agent_id)
    if unassigned:
        condition = and_(condition, Patient.assigned_agent_id.is_(None))
    async with db.session() as s:
        total = await s.scalar(select(func.count()).select_from(Patient).where(condition)) or 0
        rows = list((await s.scalars(select(Patient).where(condition).order_by(Patient.name_folded, Patient.id)
                                     .limit(limit).offset(offset))).all())
        return total, await patients_json(s, rows)
