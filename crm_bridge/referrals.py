"""Referring doctors (role referrer): the patients they send, their four lists, what each sees of a
patient, and the referral statistics (referred -> booked -> arrived -> in treatment)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, select, update

from clinicall.auth.models import User
from clinicall.auth.service import create_user, hash_token, new_token
from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from crm_bridge.audit import add_audit
from crm_bridge.filestore import FileStore
from crm_bridge.models import (
    CareNote,
    CareStatusChange,
    Patient,
    PatientNameKey,
    PatientPhone,
    ReferrerInvite,
)
from crm_bridge.names import search_keys
from crm_bridge.patients import checked_name, checked_phone, patient_json
from crm_bridge.results import Upload, store_files
from crm_bridge.service import ArrivalDays
from crm_bridge.text import clean_text

LISTS = {"new": "new", "in_treatment": "in_treatment", "finished": "treatment_finished", "closed": "care_closed"}
MAX_LIST = 500


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=1, max_length=64)
    service_of_interest: str = Field("", max_length=200)
    note: str = Field("", max_length=5000)


async def create_referral(db: Database, store: FileStore, data: ReferralIn, uploads: list[Upload], referrer_id: int,
                          referrer_name: str, region: str) -> int:
    """The patient, their phone and the files the referrer attached, in one transaction."""
    name, folded = checked_name(data.full_name)
    e164 = checked_phone(data.phone, region, field="phone")
    service = clean_text(data.service_of_interest, "service_of_interest", 200)
    note = clean_text(data.note, "note", 5000, multiline=True)
    async with db.transaction() as s:
        now = utcnow()
        patient = Patient(full_name=name, name_folded=folded, care_status="new", referrer_id=referrer_id,
                          referring_doctor=referrer_name[:200], service_of_interest=service, referral_note=note,
                          address="", notes="", created_at=now, updated_at=now, last_activity_at=now)
        s.add(patient)
        await s.flush()
        s.add_all(PatientNameKey(patient_id=patient.id, key=k[:200]) for k in search_keys(folded))
        s.add(PatientPhone(patient_id=patient.id, e164=e164, raw=clean_text(data.phone, "phone", 64), label=""))
        add_audit(s, referrer_id, patient.id, "create", f"referred {name}")
        if uploads:
            await store_files(s, store, patient.id, uploads, group="referral", visible_to_patient=False,
                              visible_to_referrer=True, user_id=referrer_id)
        return patient.id


async def referral_lists(db: Database, referrer_id: int | None, kind: str, limit: int = 100,
                         offset: int = 0) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Counts of the four lists and one list's patients (newest first); referrer_id None: every referral."""
    if kind not in LISTS:
        raise Problem(422, "Unknown list", f"list must be one of {', '.join(LISTS)}.", code="referral_list_unknown")
    mine = Patient.referrer_id == referrer_id if referrer_id is not None else Patient.referrer_id.is_not(None)
    where = and_(mine, Patient.merged_into_id.is_(None))
    async with db.session() as s:
        counted = dict((await s.execute(select(Patient.care_status, func.count()).where(where)
                                        .group_by(Patient.care_status))).all())
        rows = (await s.scalars(select(Patient).where(where, Patient.care_status == LISTS[kind])
                                .order_by(Patient.created_at.desc(), Patient.id.desc()).limit(limit).offset(offset))).all()
        items = [referral_json(p) for p in rows]
    return {name: int(counted.get(status, 0)) for name, status in LISTS.items()}, items


def referral_json(p: Patient) -> dict[str, Any]:
    """What a referrer sees of a patient he sent: no agent, no internal notes."""
    full = patient_json(p)
    keep = ("id", "full_name", "service_of_interest", "care_status", "care_status_changed_at", "booking_date",
            "arrival_date", "created_at", "referral_note")
    return {k: full[k] for k in keep}


async def referred_patient(db: Database, patient_id: int, referrer_id: int | None) -> Patient | None:
    """The patient when this referrer sent them (any referrer when referrer_id is None)."""
    async with db.session() as s:
        p = await s.get(Patient, patient_id)
    if p is None or p.merged_into_id is not None or p.referrer_id is None:
        return None
    return p if referrer_id is None or p.referrer_id == referrer_id else None


async def referral_stats(db: Database, day_from: dt.date, day_to: dt.date, zone: Any,
                         arrival_days: ArrivalDays | None) -> dict[str, Any]:
    """Per referrer, the patients referred in the local days [from, to] and how far they came."""
    start = dt.datetime.combine(day_from, dt.time(0, 0), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(day_to + dt.timedelta(days=1), dt.time(0, 0), zone).astimezone(dt.UTC)
    async with db.session() as s:
        patients = (await s.execute(select(Patient.id, Patient.referrer_id, Patient.booking_date, Patient.arrival_date)
                                    .where(Patient.referrer_id.is_not(None), Patient.created_at >= start,
                                           Patient.created_at < end, Patient.merged_into_id.is_(None)))).all()
        ids = [p.id for p in patients]
        booked = set((await s.scalars(select(CareNote.patient_id).where(
            CareNote.patient_id.in_(ids), CareNote.booking_date.is_not(None)))).all()) if ids else set()
        treated = set((await s.scalars(select(CareStatusChange.patient_id).where(
            CareStatusChange.patient_id.in_(ids), CareStatusChange.to_status == "in_treatment"))).all()) if ids else set()
        names = dict((await s.execute(select(User.id, User.display_name).where(
            User.id.in_({p.referrer_id for p in patients})))).all()) if ids else {}
    came = await arrival_days(db, ids, day_from, dt.date(9999, 12, 31)) if arrival_days and ids else {}
    rows: dict[int, dict[str, Any]] = {}
    for p in patients:
        row = rows.setdefault(p.referrer_id, {"referrer_id": p.referrer_id, "referrer_name": names.get(p.referrer_id, ""),
                                              "referred": 0, "booked": 0, "arrived": 0, "in_treatment": 0})
        row["referred"] += 1
        row["booked"] += p.id in booked or p.booking_date is not None
        row["arrived"] += bool(came.get(p.id)) or p.arrival_date is not None
        row["in_treatment"] += p.id in treated
    out = sorted(rows.values(), key=lambda r: (-r["referred"], r["referrer_name"]))
    for row in out:
        row["conversion"] = round(row["in_treatment"] / row["referred"], 4) if row["referred"] else 0.0
    totals = {k: sum(r[k] for r in out) for k in ("referred", "booked", "arrived", "in_treatment")}
    return {"from": day_from.isoformat(), "to": day_to.isoformat(), "referrers": out, "totals": totals}


async def create_invite(db: Database, display_name: str, days: int, by: int | None) -> tuple[str, dt.datetime]:
    """A one-use invitation (its token is shown once; only its hash is kept)."""
    name = clean_text(display_name, "display_name", 200)
    if not name:
        raise Problem(422, "Name needed", "Write the doctor's name.", code="invalid_input",
                      errors=[{"field": "display_name", "code": "missing", "message": "empty"}])
    token = new_token()
    expires = utcnow() + dt.timedelta(days=days)
    async with db.transaction() as s:
        s.add(ReferrerInvite(token_hash=hash_token(token), display_name=name, created_by=by, created_at=utcnow(),
                             expires_at=expires))
    return token, expires


async def open_invite(db: Database, token: str) -> ReferrerInvite:
    async with db.session() as s:
        invite = await s.scalar(select(ReferrerInvite).where(ReferrerInvite.token_hash == hash_token(token)))
    if invite is None or invite.used_by is not None or invite.expires_at <= utcnow():
        raise Problem(404, "Invitation not valid", "This invitation link is unknown, used or expired; ask the clinic "
                      "for a new one.", code="invite_invalid")
    return invite


async def accept_invite(db: Database, token: str, username: str, password: str) -> User:
    """The referrer's own account from the invitation; the link works once."""
    invite = await open_invite(db, token)
    user = await create_user(db, username, password, ["referrer"], display_name=invite.display_name)
    async with db.transaction() as s:
        used = await s.execute(update(ReferrerInvite).where(ReferrerInvite.id == invite.id,
                                                            ReferrerInvite.used_by.is_(None)).values(used_by=user.id))
        if not used.rowcount:  # type: ignore[attr-defined]
            await s.execute(update(User).where(User.id == user.id).values(active=False))
    if not used.rowcount:  # type: ignore[attr-defined]
        raise Problem(404, "Invitation not valid", "This invitation link was used meanwhile.", code="invite_invalid")
    return user
