"""The care loop's API: referrals (role referrer), treatment entries and result files (staff), the
patient's own API (role patient), patient accounts and referral statistics (admin). Referrers and
patients get 404 for any record that is not theirs, the same answer as for a record that does not
exist; staff follow the card's rule (crm_bridge.service.may_see: 403 not_your_patient)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from clinicall.auth.access import public, require
from clinicall.auth.http import _set_cookie, client_address
from clinicall.auth.service import Principal, authenticate, get_user, start_session
from clinicall.auth.throttle import LOGIN_THROTTLE_KEY
from clinicall.auth.token_cache import forget_tokens
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.problem import Day, Problem, int_param, parse_body, parse_query, validate
from crm_bridge import accounts, referrals, results, treatment
from crm_bridge.audit import audit_views, record_access
from crm_bridge.filestore import FILE_STORE_KEY
from crm_bridge.http import checked_access, today
from crm_bridge.patients import get_patient
from crm_bridge.phones import normalise
from crm_bridge.service import ARRIVAL_DAYS_KEY, TICKETS_OF_DAY_KEY, worklists_changed
from crm_bridge.uploads import read_multipart

routes = web.RouteTableDef()
CARE_WRITERS = ("agent", "supervisor", "doctor")
TRUE = ("1", "true", "on", "yes")
# Served files: never rendered by the browser, never sniffed, no script, no framing.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store, private",
                "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer"}


def max_bytes(request: web.Request) -> int:
    return request.app[SETTINGS_KEY].crm.max_file_mb * 1024 * 1024


def patient_link(request: web.Request) -> str:
    return request.app[SETTINGS_KEY].http.base_url() + "/me"


def flag(fields: dict[str, str], name: str) -> bool:
    return fields.get(name, "").strip().lower() in TRUE


# ---- staff: the care sheet, treatment entries, result files --------------------------------------

async def care_sheet(request: web.Request, patient_id: int, audience: str) -> dict[str, Any]:
    db = request.app[DB_KEY]
    visit_list = await treatment.visits(db, patient_id)
    return {"entries": await treatment.entries_for(db, patient_id, audience),
            "files": await results.files_for(db, patient_id, audience), "visits": visit_list}


@routes.get("/api/patients/{id}/care")
async def patient_care(request: web.Request) -> web.Response:
    """The card's care loop: treatment entries, result and referral files, visits, the next re-visit with
    its reminder text, the referring doctor and the patient's account. Staff who treat only: reception
    checks the patient in from the card, it has no need of the treatment or the results."""
    who = require(request, *CARE_WRITERS)
    patient_id = int_param(request, "id")
    await checked_access(request, who, patient_id)
    db = request.app[DB_KEY]
    patient = await get_patient(db, patient_id)
    await record_access(db, who.user_id, patient["id"], "view", "care sheet")
    body = await care_sheet(request, patient["id"], "staff")
    upcoming = treatment.next_revisit(body["visits"], today(request))
    template = request.app[SETTINGS_KEY].crm.revisit_message
    body["next_revisit"] = upcoming
    body["revisit_message"] = treatment.revisit_text(template, patient, upcoming, patient_link(request)) if upcoming else None
    referrer = await get_user(db, patient["referrer_id"]) if patient["referrer_id"] else None
    body["referrer"] = {"id": referrer.id, "name": referrer.display_name} if referrer else None
    account = await accounts.account_of_patient(db, patient["id"])
    user = await get_user(db, account.user_id) if account else None
    body["account"] = {"username": user.username, "active": user.active,
                       "must_change_password": account.must_change_password} if account and user else None
    body["patient"] = patient
    return web.json_response(body)


async def account_if_treated(request: web.Request, patient_id: int, who: Principal) -> dict[str, Any] | None:
    patient = await get_patient(request.app[DB_KEY], patient_id)
    return await accounts.account_if_treated(request.app[DB_KEY], patient["id"],
                                             template=request.app[SETTINGS_KEY].crm.account_message,
                                             link=patient_link(request), by=who.user_id)


@routes.post("/api/patients/{id}/treatment")
async def add_treatment(request: web.Request) -> web.Response:
    """A treatment progress entry; the first one moves a new patient to in_treatment (the account is made)."""
    who = require(request, *CARE_WRITERS)
    patient_id = int_param(request, "id")
    body = await parse_body(request, treatment.EntryIn)
    await checked_access(request, who, patient_id)
    entry_id, _started = await treatment.add_entry(request.app[DB_KEY], patient_id, body, who.user_id, today(request))
    account = await account_if_treated(request, patient_id, who)
    patient = await get_patient(request.app[DB_KEY], patient_id)
    return web.json_response({"entry_id": entry_id, "care_status": patient["care_status"],
                              "callback_date": patient["callback_date"], "account": account}, status=201)


@routes.patch("/api/treatment/{id}")
async def patch_treatment(request: web.Request) -> web.Response:
    """Switch an entry's visibility to the patient or to the referring doctor."""
    who = require(request, *CARE_WRITERS)
    entry_id = int_param(request, "id")
    body = await parse_body(request, treatment.EntryPatch)
    patient_id = await treatment.entry_patient(request.app[DB_KEY], entry_id)
    if patient_id is None:
        raise Problem(404, "Entry not found", "No treatment entry with that id exists.", code="entry_not_found")
    await checked_access(request, who, patient_id)
    return web.json_response(await treatment.set_entry_visibility(request.app[DB_KEY], entry_id, body.model_dump(),
                                                                  who.user_id))


@routes.post("/api/patients/{id}/files")
async def upload_files(request: web.Request) -> web.Response:
    """Result files (multipart: group imaging|lab, visible_to_patient, visible_to_referrer, files)."""
    who = require(request, *CARE_WRITERS)
    patient_id = int_param(request, "id")
    await checked_access(request, who, patient_id)
    fields, uploads = await read_multipart(request, max_bytes(request))
    if not uploads:
        raise Problem(422, "No file", "Choose one or more files to upload.", code="file_missing",
                      errors=[{"field": "files", "code": "file_missing", "message": "no file"}])
    group = fields.get("group", "")
    if group not in ("imaging", "lab"):
        raise Problem(422, "Unknown file group", "group must be imaging or lab.", code="file_group_unknown",
                      errors=[{"field": "group", "code": "file_group_unknown", "message": group[:20]}])
    db = request.app[DB_KEY]
    async with db.transaction() as s:
        ids = await results.store_files(s, request.app[FILE_STORE_KEY], patient_id, uploads, group=group,
                                        visible_to_patient=flag(fields, "visible_to_patient"),
                                        visible_to_referrer=flag(fields, "visible_to_referrer"), user_id=who.user_id)
    files = [f for f in await results.files_for(db, patient_id) if f["id"] in ids]
    return web.json_response({"files": files}, status=201)


class FileVisibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visible_to_patient: bool | None = None
    visible_to_referrer: bool | None = None


@routes.patch("/api/files/{id}")
async def patch_file(request: web.Request) -> web.Response:
    """Switch a file's visibility to the patient or to the referring doctor."""
    who = require(request, *CARE_WRITERS)
    file_id = int_param(request, "id")
    body = await parse_body(request, FileVisibility)
    row = await results.get_file(request.app[DB_KEY], file_id)
    if row is None:
        raise Problem(404, "File not found", "No file with that id exists.", code="file_not_found")
    await checked_access(request, who, row.patient_id)
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    return web.json_response(await results.set_visibility(request.app[DB_KEY], file_id, changes, who.user_id))


async def file_audience(request: web.Request, who: Principal, patient_id: int, referrer_id: int | None) -> str | None:
    """Which audience's rule decides for this user, or None when the file is not theirs to see."""
    if who.has_any(*CARE_WRITERS):
        await checked_access(request, who, patient_id)
        return "staff"
    if "referrer" in who.roles and referrer_id == who.user_id:
        return "referrer"
    if "patient" in who.roles:
        account = await accounts.patient_of_user(request.app[DB_KEY], who.user_id or 0)
        if account is not None and account.patient_id == patient_id and not account.must_change_password:
            return "patient"
    return None


@routes.get("/api/files/{id}")
async def download_file(request: web.Request) -> web.StreamResponse:
    """The file, as an attachment (never shown inline), to staff who treat and may open the card, to the referring
    doctor (files marked for him and those he sent) and to the patient (files marked visible). Audited."""
    who = require(request)
    file_id = int_param(request, "id")
    db = request.app[DB_KEY]
    row = await results.get_file(db, file_id)
    patient = await referrals.referred_patient(db, row.patient_id, None) if row else None
    audience = await file_audience(request, who, row.patient_id, patient.referrer_id if patient else None) if row else None
    if row is None or audience is None or not results.may_open(row, audience):
        if row is not None:
            await record_access(db, who.user_id, row.patient_id, "denied", f"file {file_id}")
        raise Problem(404, "File not found", "No file with that id exists for you.", code="file_not_found")
    data = await request.app[FILE_STORE_KEY].get(row.storage_key)
    if data is None:
        raise Problem(404, "File content missing", "The file's content is no longer stored.", code="file_not_found")
    await record_access(db, who.user_id, row.patient_id, "file_view", f"file {row.id} {row.filename}")
    disposition = f"attachment; filename=\"{row.filename.encode('ascii', 'replace').decode()}\"; " \
                  f"filename*=UTF-8''{quote(row.filename)}"
    return web.Response(body=data, headers={**FILE_HEADERS, "Content-Type": row.content_type,
                                            "Content-Disposition": disposition})


# ---- referring doctors ----------------------------------------------------------------------------

@routes.post("/api/referrals")
async def create_referral(request: web.Request) -> web.Response:
    """A referring doctor sends a patient (multipart: full_name, phone, service_of_interest, note, files)."""
    who = require(request, "referrer")
    fields, uploads = await read_multipart(request, max_bytes(request))
    data = validate(referrals.ReferralIn, {k: v for k, v in fields.items() if k in referrals.ReferralIn.model_fields})
    patient_id = await referrals.create_referral(request.app[DB_KEY], request.app[FILE_STORE_KEY], data, uploads,
                                                 who.user_id or 0, who.display_name,
                                                 request.app[SETTINGS_KEY].clinic.phone_region)
    await worklists_changed(request.app, patient_id, "referral")
    return web.json_response({"id": patient_id}, status=201)


class ReferralQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    kind: str = Field("new", alias="list", max_length=20)
    limit: int = Field(100, ge=1, le=referrals.MAX_LIST)
    offset: int = Field(0, ge=0, le=10**7)


def referrer_scope(who: Principal) -> int | None:
    return None if who.has_any("supervisor") else who.user_id


@routes.get("/api/referrals")
async def list_referrals(request: web.Request) -> web.Response:
    """A referrer's own referred patients in four lists (new, in_treatment, finished, closed), with counts."""
    who = require(request, "referrer", "supervisor")
    query = parse_query(request, ReferralQuery)
    counts, items = await referrals.referral_lists(request.app[DB_KEY], referrer_scope(who), query.kind,
                                                   query.limit, query.offset)
    audit_views(request, [i["id"] for i in items], "referrals")
    return web.json_response({"list": query.kind, "counts": counts, "items": items})


@routes.get("/api/referrals/{id}")
async def referral_detail(request: web.Request) -> web.Response:
    """One referred patient as the referrer sees them: status, visits, the entries and results marked for
    him, and what he sent."""
    who = require(request, "referrer", "supervisor")
    patient_id = int_param(request, "id")
    db = request.app[DB_KEY]
    patient = await referrals.referred_patient(db, patient_id, referrer_scope(who))
    if patient is None:
        await record_access(db, who.user_id, patient_id, "denied", f"GET {request.path}")
        raise Problem(404, "Referral not found", "None of your referred patients has that id.",
                      code="referral_not_found")
    await record_access(db, who.user_id, patient.id, "view", "referral")
    return web.json_response({"patient": referrals.referral_json(patient),
                              **await care_sheet(request, patient.id, "referrer")})


# ---- the patient's own API --------------------------------------------------------------------------

class PatientLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


def throttle_name(phone: str, region: str) -> str:
    """The account a patient login counts against: the number's national form, which is the account's user
    name (so the staff login form shares the count), however the number is written (any digit script)."""
    e164 = normalise(phone, region)
    return accounts.national_digits(e164) if e164 else "phone:" + phone.strip()[:40]


@routes.post("/api/patient/login")
@public
async def patient_login(request: web.Request) -> web.Response:
    """The patient logs in with the phone number (any written form) and password; throttled like staff logins."""
    body = await parse_body(request, PatientLogin)
    db = request.app[DB_KEY]
    throttle = request.app[LOGIN_THROTTLE_KEY]
    region = request.app[SETTINGS_KEY].clinic.phone_region
    key = throttle_name(body.phone, region)
    wait = await throttle.attempt(key, client_address(request))
    if wait:
        raise Problem(429, "Too many failed logins", f"Try again in {wait} s.", code="login_throttled",
                      retry_after=wait, headers={"Retry-After": str(wait)})
    user = None
    for username in await accounts.usernames_for_phone(db, body.phone, region):
        if (user := await authenticate(db, username, body.password)) is not None:
            break
    if user is None:
        await authenticate(db, "-", body.password)  # the same cost when no account has this phone
        raise Problem(401, "Login failed", "The phone number or password is wrong.", code="login_failed")
    await throttle.succeeded(key, client_address(request))
    account = await accounts.patient_of_user(db, user.id)
    response = web.json_response({"must_change_password": bool(account and account.must_change_password)})
    _set_cookie(request, response, await start_session(db, user.id, request.app[SETTINGS_KEY].http.session_hours))
    return response


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


@routes.post("/api/patient/password")
async def patient_password(request: web.Request) -> web.Response:
    """The patient's own password change (required after the one-time password); a new session follows."""
    who = require(request, "patient")
    body = await parse_body(request, PasswordChange)
    db = request.app[DB_KEY]
    throttle, address = request.app[LOGIN_THROTTLE_KEY], client_address(request)
    if wait := await throttle.attempt(who.username, address):  # the current password is guessed like a login
        raise Problem(429, "Too many failed logins", f"Try again in {wait} s.", code="login_throttled",
                      retry_after=wait, headers={"Retry-After": str(wait)})
    try:
        await accounts.change_password(db, who.user_id or 0, body.current_password, body.new_password)
    except Problem as refused:
        if refused.code != "current_password_wrong":
            await throttle.succeeded(who.username, address)
        raise
    await throttle.succeeded(who.username, address)
    response = web.json_response({"changed": True})
    _set_cookie(request, response, await start_session(db, who.user_id or 0, request.app[SETTINGS_KEY].http.session_hours))
    return response


@routes.get("/api/patient/me")
async def patient_me(request: web.Request) -> web.Response:
    """The patient's own page: visits and re-visits, the entries and files marked visible, today's tickets."""
    who = require(request, "patient")
    db = request.app[DB_KEY]
    account = await accounts.patient_of_user(db, who.user_id or 0)
    if account is None:
        raise Problem(404, "Not a patient account", "This login belongs to no patient record.",
                      code="patient_account_missing")
    if account.must_change_password:
        raise Problem(403, "Change your password", "Choose your own password first.", code="password_change_required")
    patient = await get_patient(db, account.patient_id)
    await record_access(db, who.user_id, patient["id"], "view", "patient's own page")
    tickets_today = request.app.get(TICKETS_OF_DAY_KEY)
    tickets = await tickets_today(db, patient["id"], today(request)) if tickets_today else []
    return web.json_response({"full_name": patient["full_name"], "care_status": patient["care_status"],
                              **await care_sheet(request, patient["id"], "patient"),
                              "tickets": [{k: t.get(k) for k in ("number", "status", "service_name", "room", "position",
                                                                  "estimated_wait_seconds")} for t in tickets]})


# ---- admin: patient accounts, referral statistics ----------------------------------------------------

class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool


@routes.get("/api/patient-accounts")
async def list_accounts(request: web.Request) -> web.Response:
    require(request, "admin")
    items = await accounts.list_accounts(request.app[DB_KEY])
    audit_views(request, [i["patient_id"] for i in items], "accounts")
    return web.json_response({"items": items})


@routes.post("/api/patient-accounts/{id}/reset")
async def reset_account(request: web.Request) -> web.Response:
    """A new one-time password for the patient (id: the patient's id), with the SMS text to send it."""
    who = require(request, "admin")
    patient_id = int_param(request, "id")
    result = await accounts.reset_account(request.app[DB_KEY], patient_id,
                                          template=request.app[SETTINGS_KEY].crm.account_message,
                                          link=patient_link(request), by=who.user_id)
    await forget_tokens(request.app)  # the old password's sessions and tokens end now, in every instance
    return web.json_response(result)


@routes.patch("/api/patient-accounts/{id}")
async def patch_account(request: web.Request) -> web.Response:
    """Disable or enable a patient's account (id: the patient's id); disabling ends its sessions."""
    who = require(request, "admin")
    patient_id = int_param(request, "id")
    body = await parse_body(request, AccountPatch)
    await accounts.set_active(request.app[DB_KEY], patient_id, body.active, who.user_id)
    await forget_tokens(request.app)  # a disabled account loses access at once, in every instance
    return web.json_response({"patient_id": patient_id, "active": body.active})


class RangeQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    start: Day | None = Field(None, alias="from")
    end: Day | None = Field(None, alias="to")


@routes.get("/api/stats/referrals")
async def stats_referrals(request: web.Request) -> web.Response:
    """Referrals per referring doctor in the local days [from, to] (default: the last 30) and how far they
    came: referred -> booked -> arrived -> in treatment."""
    require(request, "admin", "supervisor")
    query = parse_query(request, RangeQuery)
    end = query.end or today(request)
    start = query.start or end - dt.timedelta(days=29)
    if start > end or (end - start).days > 366:
        raise Problem(422, "Invalid range", "from must be on or before to, at most 366 days apart.",
                      code="invalid_range")
    zone = request.app[SETTINGS_KEY].clinic.zone()
    return web.json_response(await referrals.referral_stats(request.app[DB_KEY], start, end, zone,
                                                            request.app.get(ARRIVAL_DAYS_KEY)))


# ---- referring doctors invited by link ------------------------------------------------------------------

class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str = Field(min_length=1, max_length=200)
    days: int = Field(14, ge=1, le=60)


class InviteAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=20, max_length=100)
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


@routes.post("/api/referrer-invites")
async def invite_referrer(request: web.Request) -> web.Response:
    """A one-use link (shown once) with which a referring doctor makes his own account."""
    who = require(request, "admin")
    body = await parse_body(request, InviteIn)
    token, expires = await referrals.create_invite(request.app[DB_KEY], body.display_name, body.days, who.user_id)
    url = f"{request.app[SETTINGS_KEY].http.base_url()}/referrer/join?token={token}"
    return web.json_response({"url": url, "expires_at": expires.isoformat()}, status=201)


@routes.post("/api/referrer-invites/accept")
@public
async def accept_invite(request: web.Request) -> web.Response:
    """The invited doctor chooses a user name and password; he is logged in as a referrer."""
    body = await parse_body(request, InviteAccept)
    db = request.app[DB_KEY]
    user = await referrals.accept_invite(db, body.token, body.username, body.password)
    response = web.json_response({"username": user.username}, status=201)
    _set_cookie(request, response, await start_session(db, user.id, request.app[SETTINGS_KEY].http.session_hours))
    return response
