"""The patient's own login: made when care moves to in_treatment. The user name is the patient's phone
number (national digits; a second patient on the same number gets "-2"), the first password is a
random one-time password (never the phone number) that must be changed at the first login, and the
clinic's SMS text (settings.crm.account_message) is prepared with {fullName}, {link} and {password}."""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import select

from clinicall.auth import service as auth
from clinicall.auth.models import User
from clinicall.db import Database
from clinicall.problem import Problem
from crm_bridge.audit import record_access
from crm_bridge.models import Patient, PatientAccount, PatientPhone
from crm_bridge.phones import normalise

OTP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
OTP_GROUP = f"[{re.escape(OTP_ALPHABET)}]{{4}}"
ONE_TIME_PASSWORD = re.compile(rf"(?<![0-9A-Za-z]){OTP_GROUP}-{OTP_GROUP}-{OTP_GROUP}(?![0-9A-Za-z])")
MASKED_PASSWORD = "••••-••••-••••"


def one_time_password() -> str:
    """12 characters in three groups (no 0/o, 1/l/i): long enough for the policy, easy to type from an SMS."""
    while True:
        raw = "".join(secrets.choice(OTP_ALPHABET) for _ in range(12))
        if len(set(raw)) >= 6:
            return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def mask_one_time_passwords(text: str) -> str:
    """The text with every one-time password (as one_time_password writes them) masked: what staff may read
    of an account's SMS in the message log; the patient's phone gets the text itself."""
    return ONE_TIME_PASSWORD.sub(MASKED_PASSWORD, text)


def national_digits(e164: str) -> str:
    return "0" + e164[3:] if e164.startswith("+84") else e164.lstrip("+")


async def account_of_patient(db: Database, patient_id: int) -> PatientAccount | None:
    """The account of a live record (a record merged away keeps its closed login, which is never reopened)."""
    async with db.session() as s:
        return await s.scalar(select(PatientAccount).join(Patient, Patient.id == PatientAccount.patient_id)
                              .where(PatientAccount.patient_id == patient_id, Patient.merged_into_id.is_(None)))


async def patient_of_user(db: Database, user_id: int) -> PatientAccount | None:
    """The account of this login, only while its record is live: a record merged away leads to the survivor,
    whose page is not this login's to open (its own account is the survivor's)."""
    async with db.session() as s:
        return await s.scalar(select(PatientAccount).join(Patient, Patient.id == PatientAccount.patient_id)
                              .where(PatientAccount.user_id == user_id, Patient.merged_into_id.is_(None)))


def account_text(template: str, full_name: str, link: str, password: str) -> str:
    return template.format(fullName=full_name, link=link, password=password, visit="", revisitDate="")


async def create_account(db: Database, patient_id: int, *, template: str, link: str,
                         by: int | None) -> dict[str, Any] | None:
    """The new account with its one-time password and the SMS text; None when the patient has one already
    or no phone to log in with."""
    if await account_of_patient(db, patient_id) is not None:
        return None
    async with db.session() as s:
        patient = await s.get(Patient, patient_id)
        phone = await s.scalar(select(PatientPhone.e164).where(PatientPhone.patient_id == patient_id)
                               .order_by(PatientPhone.id).limit(1))
    if patient is None or phone is None:
        return None
    base = national_digits(phone)
    password = one_time_password()
    for n in range(1, 20):
        username = base if n == 1 else f"{base}-{n}"
        if await auth.user_by_name(db, username) is None:
            break
    user = await auth.create_user(db, username, password, ["patient"], display_name=patient.full_name)
    async with db.transaction() as s:
        s.add(PatientAccount(patient_id=patient_id, user_id=user.id, must_change_password=True))
    await record_access(db, by, patient_id, "account", f"account {username} created")
    return {"username": username, "one_time_password": password,
            "message": account_text(template, patient.full_name, link, password)}


async def account_if_treated(db: Database, patient_id: int, *, template: str, link: str,
                             by: int | None) -> dict[str, Any] | None:
    """A patient in treatment gets an account (once): its one-time password and SMS text, shown once."""
    async with db.session() as s:
        patient = await s.get(Patient, patient_id)
    if patient is None or patient.care_status != "in_treatment":
        return None
    return await create_account(db, patient.id, template=template, link=link, by=by)


async def reset_account(db: Database, patient_id: int, *, template: str, link: str, by: int | None) -> dict[str, Any]:
    account = await account_of_patient(db, patient_id)
    if account is None:
        raise Problem(404, "No account", "This patient has no account yet; it is made when treatment starts.",
                      code="patient_account_missing")
    password = one_time_password()
    user = await auth.update_user(db, account.user_id, password=password, active=True)
    async with db.transaction() as s:
        row = await s.get(PatientAccount, account.id)
        if row is not None:
            row.must_change_password = True
    await record_access(db, by, patient_id, "account", "password reset")
    return {"username": user.username, "one_time_password": password,
            "message": account_text(template, user.display_name, link, password)}


async def set_active(db: Database, patient_id: int, active: bool, by: int | None) -> None:
    account = await account_of_patient(db, patient_id)
    if account is None:
        raise Problem(404, "No account", "This patient has no account yet; it is made when treatment starts.",
                      code="patient_account_missing")
    await auth.update_user(db, account.user_id, active=active)
    await record_access(db, by, patient_id, "account", "enabled" if active else "disabled")


async def change_password(db: Database, user_id: int, current: str, new: str) -> None:
    """The patient's own change (the first one is required); the phone number and user name are refused."""
    account = await patient_of_user(db, user_id)
    user = await auth.get_user(db, user_id)
    if account is None or user is None:
        raise Problem(404, "Not a patient account", "Only a patient's own account changes its password here.",
                      code="patient_account_missing")
    if await auth.authenticate(db, user.username, current) is None:
        raise Problem(422, "Current password wrong", "The current (one-time) password is not right.",
                      code="current_password_wrong",
                      errors=[{"field": "current_password", "code": "current_password_wrong", "message": "wrong"}])
    if current == new:
        raise Problem(422, "Password not changed", "Choose a new password, not the one-time password.",
                      code="password_unchanged",
                      errors=[{"field": "new_password", "code": "password_unchanged", "message": "same"}])
    digits = user.username.split("-")[0]
    if digits and digits[-9:] in new.replace(" ", "").replace(".", "").replace("-", ""):
        raise Problem(422, "Password not accepted", "The password must not contain your phone number.",
                      code="password_contains_phone",
                      errors=[{"field": "new_password", "code": "password_contains_phone", "message": "phone"}])
    await auth.set_password(db, user_id, new)
    async with db.transaction() as s:
        row = await s.get(PatientAccount, account.id)
        if row is not None:
            row.must_change_password = False
    await record_access(db, user_id, account.patient_id, "account", "password changed by the patient")


async def usernames_for_phone(db: Database, raw: str, region: str) -> list[str]:
    """The accounts a patient may log in to with this phone number (any written form)."""
    e164 = normalise(raw, region)
    if e164 is None:
        return []
    async with db.session() as s:
        rows = (await s.scalars(
            select(User.username).join(PatientAccount, PatientAccount.user_id == User.id)
            .join(PatientPhone, PatientPhone.patient_id == PatientAccount.patient_id)
            .where(PatientPhone.e164 == e164).order_by(User.id))).all()
    return list(dict.fromkeys(rows))


async def list_accounts(db: Database) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.execute(
            select(PatientAccount, User.username, User.active, Patient.full_name)
            .join(User, User.id == PatientAccount.user_id).join(Patient, Patient.id == PatientAccount.patient_id)
            .order_by(PatientAccount.id.desc()).limit(1000))).all()
    return [{"patient_id": a.patient_id, "user_id": a.user_id, "username": username, "active": active,
             "full_name": name, "must_change_password": a.must_change_password, "created_at": a.created_at.isoformat()}
            for a, username, active, name in rows]
