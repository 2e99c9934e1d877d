"""Likely duplicate patients (same E.164 phone; same accent-free name and birth date) and their
merge after review. The merged record stays as a tombstone pointing at the survivor
(merged_into_id); its notes, phones, follow-ups, status history and transfers move over. Calls and
tickets live in other rooms: they learn of the merge from the bus event `patient.merged`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.auth.models import ApiToken, Session, User
from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from crm_bridge.audit import add_audit
from crm_bridge.models import (
    CareNote,
    CareStatusChange,
    FollowUp,
    Patient,
    PatientAccount,
    PatientFile,
    PatientNameKey,
    PatientPhone,
    TransferRequest,
    TreatmentEntry,
)
from crm_bridge.patients import patients_json

FILLABLE = ("date_of_birth", "gender", "address", "referring_doctor", "service_of_interest", "assigned_agent_id",
            "callback_date", "booking_date", "arrival_date", "referrer_id", "referral_note")


async def find_duplicates(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    live = Patient.merged_into_id.is_(None)
    async with db.session() as s:
        by_phone = (await s.execute(
            select(PatientPhone.e164, func.count(func.distinct(PatientPhone.patient_id)).label("n"))
            .join(Patient, Patient.id == PatientPhone.patient_id).where(live)
            .group_by(PatientPhone.e164).having(func.count(func.distinct(PatientPhone.patient_id)) > 1)
            .order_by(PatientPhone.e164).limit(limit))).all()
        for e164, _ in by_phone:
            ids = select(PatientPhone.patient_id).where(PatientPhone.e164 == e164)
            rows = list((await s.scalars(select(Patient).where(Patient.id.in_(ids), live).order_by(Patient.id))).all())
            groups.append({"reason": "same_phone", "key": e164, "patients": await patients_json(s, rows)})
        by_name = (await s.execute(
            select(Patient.name_folded, Patient.date_of_birth).where(live, Patient.date_of_birth.is_not(None))
            .group_by(Patient.name_folded, Patient.date_of_birth).having(func.count() > 1)
            .order_by(Patient.name_folded).limit(limit))).all()
        for folded, dob in by_name:
            rows = list((await s.scalars(select(Patient).where(
                live, Patient.name_folded == folded, Patient.date_of_birth == dob).order_by(Patient.id))).all())
            groups.append({"reason": "same_name_and_birth_date", "key": f"{folded} {dob.isoformat()}",
                           "patients": await patients_json(s, rows)})
    return groups


async def same_phone_patients(db: Database, patient_id: int) -> list[int]:
    """Other live patients sharing a phone with this one (shown when a record is created)."""
    async with db.session() as s:
        numbers = select(PatientPhone.e164).where(PatientPhone.patient_id == patient_id)
        ids = (await s.scalars(select(func.distinct(PatientPhone.patient_id)).join(
            Patient, Patient.id == PatientPhone.patient_id).where(
            PatientPhone.e164.in_(numbers), PatientPhone.patient_id != patient_id, Patient.merged_into_id.is_(None)))).all()
    return sorted(ids)


async def move_account(s: AsyncSession, from_id: int, into_id: int) -> None:
    """The patient's login follows the merge when the survivor has none. Else the merged record's login is
    closed at once (deactivated, its sessions ended, its API tokens revoked): the survivor's account is the
    one that logs in, and the merged one must not open the survivor's page."""
    if await s.scalar(select(PatientAccount.id).where(PatientAccount.patient_id == into_id)) is None:
        await s.execute(update(PatientAccount).where(PatientAccount.patient_id == from_id).values(patient_id=into_id))
        return
    user_id = await s.scalar(select(PatientAccount.user_id).where(PatientAccount.patient_id == from_id))
    if user_id is not None:
        await s.execute(update(User).where(User.id == user_id).values(active=False))
        await s.execute(delete(Session).where(Session.user_id == user_id))
        await s.execute(update(ApiToken).where(ApiToken.user_id == user_id).values(revoked=True))


async def merge_patients(db: Database, from_id: int, into_id: int, user_id: int | None) -> dict[str, Any]:
    if from_id == into_id:
        raise Problem(422, "Same patient", "Choose two different patient records to merge.")
    async with db.transaction() as s:
        rows = {p.id: p for p in (await s.scalars(
            select(Patient).where(Patient.id.in_([from_id, into_id])).order_by(Patient.id).with_for_update())).all()}
        source, target = rows.get(from_id), rows.get(into_id)
        if source is None or target is None:
            raise Problem(404, "Patient not found", "Both patient records must exist; check the ids.")
        if source.merged_into_id is not None or target.merged_into_id is not None:
            raise Problem(409, "Already merged", "One of these records was already merged; reload the duplicates list.")
        moved: dict[str, int] = {}
        for model in (CareNote, FollowUp, CareStatusChange, TransferRequest, TreatmentEntry, PatientFile):
            result = await s.execute(update(model).where(model.patient_id == source.id).values(patient_id=target.id))
            moved[model.__tablename__] = result.rowcount or 0  # type: ignore[attr-defined]
        target_numbers = set((await s.scalars(select(PatientPhone.e164).where(PatientPhone.patient_id == target.id))).all())
        phones_moved = 0
        for phone in (await s.scalars(select(PatientPhone).where(PatientPhone.patient_id == source.id))).all():
            if phone.e164 in target_numbers:
                await s.delete(phone)  # the same number twice: the survivor's row stands for both
            else:
                phone.patient_id = target.id
                target_numbers.add(phone.e164)
                phones_moved += 1
        moved["patient_phones"] = phones_moved
        await move_account(s, source.id, target.id)
        for field in FILLABLE:
            if getattr(target, field) in (None, "") and getattr(source, field) not in (None, ""):
                setattr(target, field, getattr(source, field))
        if source.notes:
            target.notes = (target.notes + "\n" if target.notes else "") + source.notes
        if source.last_contact_at and (target.last_contact_at is None or source.last_contact_at > target.last_contact_at):
            target.last_contact_at, target.last_contact_reached = source.last_contact_at, source.last_contact_reached
        if target.his_id is None and source.his_id is not None:
            his_id, source.his_id = source.his_id, None
            await s.flush()
            target.his_id = his_id
        await s.execute(delete(PatientNameKey).where(PatientNameKey.patient_id == source.id))
        now = utcnow()
        source.merged_into_id = target.id
        source.updated_at = target.updated_at = target.last_activity_at = now
        add_audit(s, user_id, source.id, "merge", f"merged into {target.id}")
        add_audit(s, user_id, target.id, "merge", f"absorbed {source.id}: " +
                  ", ".join(f"{k} {v}" for k, v in moved.items()))
        return {"from_id": source.id, "into_id": target.id, "moved": moved}
