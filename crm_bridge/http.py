"""crm_bridge's REST API. Roles: agents see and change their own and unassigned patients;
supervisors and admins everything; reception (and doctors) the day's arrivals and those patients'
cards. Every malformed request is a 4xx problem+json and writes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field

from clinicall.auth.access import require
from clinicall.auth.service import Principal, list_users
from clinicall.auth.token_cache import forget_tokens
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.problem import Day, Problem, int_param, parse_body, parse_query
from crm_bridge import accounts, audit, care, duplicates, followups, statuses, templates, transfers, worklists
from crm_bridge import patients as records
from crm_bridge.importer import MAX_FILE_BYTES, import_csv, parse_mapping
from crm_bridge.service import (
    agent_may_access,
    audit_views,
    expected_arrivals,
    front_desk_window,
    may_see,
    patient_brief,
    patients_merged,
    worklists_changed,
)
from crm_bridge.text import has_control
from crm_bridge.uploads import MAX_FIELD, read_part

routes = web.RouteTableDef()
STAFF = ("agent", "supervisor")
ANY_STAFF = ("agent", "supervisor", "reception", "doctor")
CLINICAL_READERS = ("agent", "supervisor", "doctor")  # staff who treat (docs/care_loop.md); not reception
CLINICAL_FIELDS = ("notes", "referral_note")
MAX_PAGE = 500


def no_nulls(body: BaseModel, *fields: str) -> None:
    """A PATCH may leave a field out, but not send null for a field that cannot be empty."""
    for field in fields:
        if field in body.model_fields_set and getattr(body, field) is None:
            raise Problem(422, "Invalid input", f"{field} cannot be null; leave it out to keep the current value.")


def manager(who: Principal) -> bool:
    return who.has_any("supervisor")


def agent_scope(who: Principal) -> int | None:
    return None if manager(who) else who.user_id


def today(request: web.Request) -> dt.date:
    return worklists.clinic_today(request.app[SETTINGS_KEY].clinic.zone())


def region(request: web.Request) -> str:
    return request.app[SETTINGS_KEY].clinic.phone_region


async def checked_access(request: web.Request, who: Principal, patient_id: int, *, write: bool = False) -> None:
    db = request.app[DB_KEY]
    zone = request.app[SETTINGS_KEY].clinic.zone()
    if write and not who.has_any(*STAFF):
        raise Problem(403, "Not allowed", "Only agents and supervisors change patient records.")
    if await records_exists(request, patient_id) and not await agent_may_access(db, who, patient_id, zone=zone):
        await audit.record_access(db, who.user_id, patient_id, "denied", f"{request.method} {request.path}"[:200])
        raise Problem(403, "Not your patient",
                      "This patient is assigned to another agent; ask a supervisor to transfer them to you.",
                      code="not_your_patient")


async def treated_account(request: web.Request, patient: dict[str, Any], who: Principal,
                          status_sent: bool) -> dict[str, Any] | None:
    """The patient's account, made when care moved to in_treatment (its one-time password shows once)."""
    if not status_sent or patient["care_status"] != "in_treatment":
        return None
    settings = request.app[SETTINGS_KEY]
    return await accounts.account_if_treated(request.app[DB_KEY], patient["id"], template=settings.crm.account_message,
                                             link=settings.http.base_url() + "/me", by=who.user_id)


async def records_exists(request: web.Request, patient_id: int) -> bool:
    if await patient_brief(request.app[DB_KEY], patient_id) is None:
        raise Problem(404, "Patient not found", "No patient with that id exists; search for the patient again.")
    return True


# ---- patients ---------------------------------------------------------------------------------

class PatientQuery(BaseModel):
    q: str | None = Field(None, max_length=200)
    care_status: str | None = Field(None, max_length=24)
    agent_id: int | None = Field(None, gt=0, lt=2**63)
    unassigned: bool = False
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=10**7)


@routes.get("/api/patients")
async def list_patients(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    query = parse_query(request, PatientQuery)
    db = request.app[DB_KEY]
    if query.q is not None and query.q.strip():
        if has_control(query.q):
            raise Problem(422, "Invalid search", "The search text contains control characters; type it again.")
        items = await records.search_patients(db, query.q, agent_scope=agent_scope(who), limit=query.limit,
                                              region=region(request))
        audit_views(request, [item["id"] for item in items], "search")
        return web.json_response({"count": len(items), "items": items})
    if query.care_status is not None and query.care_status not in records.CARE_STATUSES:
        raise Problem(422, "Unknown care status", f"care_status must be one of {', '.join(records.CARE_STATUSES)}.")
    total, items = await records.list_patients(
        db, agent_scope=agent_scope(who), care_status=query.care_status, assigned_agent_id=query.agent_id,
        unassigned=query.unassigned, limit=query.limit, offset=query.offset)
    audit_views(request, [item["id"] for item in items], "list")
    return web.json_response({"count": total, "items": items})


@routes.post("/api/patients")
async def create_patient(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    data = await parse_body(request, records.PatientIn)
    if not manager(who):
        if "assigned_agent_id" not in data.model_fields_set:
            data.assigned_agent_id = who.user_id
        elif data.assigned_agent_id not in (None, who.user_id):
            raise Problem(403, "Not allowed", "Agents create patients for themselves or unassigned; "
                                              "a supervisor assigns them to others.")
    db = request.app[DB_KEY]
    patient_id = await records.create_patient(db, data, who.user_id, region(request))
    patient = await records.get_patient(db, patient_id)
    same_phone = await duplicates.same_phone_patients(db, patient_id)
    await worklists_changed(request.app, patient_id, "created")
    return web.json_response({"patient": patient, "possible_duplicates": same_phone}, status=201)


@routes.get("/api/patients/{id}")
async def patient_card(request: web.Request) -> web.Response:
    who = require(request, *ANY_STAFF)
    patient_id = int_param(request, "id")
    await checked_access(request, who, patient_id)
    db = request.app[DB_KEY]
    patient = await records.get_patient(db, patient_id)
    await audit.record_access(db, who.user_id, patient["id"], "view")
    if not who.has_any(*CLINICAL_READERS):  # reception checks the patient in; the free-text notes are clinical
        patient = {k: v for k, v in patient.items() if k not in CLINICAL_FIELDS}
    body: dict[str, Any] = {"patient": patient}
    if who.has_any(*STAFF):
        body["notes"] = await care.notes_for_patient(db, patient["id"])
        body["status_history"] = await care.status_history(db, patient["id"])
        body["follow_ups"] = await followups.list_followups(db, start=dt.date(1900, 1, 1), days=400 * 366,
                                                            patient_id=patient["id"])
        body["allowed_care_statuses"] = list(care.TRANSITIONS[patient["care_status"]])
    return web.json_response(body)


@routes.patch("/api/patients/{id}")
async def patch_patient(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    patch = await parse_body(request, records.PatientPatch)
    no_nulls(patch, "full_name", "care_status")
    await checked_access(request, who, patient_id, write=True)
    db = request.app[DB_KEY]
    changed = await records.update_patient(db, patient_id, patch, who.user_id)
    patient = await records.get_patient(db, patient_id)
    return web.json_response({"patient": patient, "changed": changed,
                              "account": await treated_account(request, patient, who, "care_status" in changed)})


class PhoneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=64)
    label: str = Field("", max_length=40)


@routes.post("/api/patients/{id}/phones")
async def add_phone(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    body = await parse_body(request, PhoneBody)
    await checked_access(request, who, patient_id, write=True)
    db = request.app[DB_KEY]
    phone_id = await records.add_phone(db, patient_id, body.number, body.label, who.user_id, region(request))
    patient = await records.get_patient(db, patient_id)
    return web.json_response({"phone_id": phone_id, "patient": patient}, status=201)


@routes.delete("/api/patients/{id}/phones/{phone_id}")
async def remove_phone(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id, phone_id = int_param(request, "id"), int_param(request, "phone_id")
    await checked_access(request, who, patient_id, write=True)
    await records.remove_phone(request.app[DB_KEY], patient_id, phone_id, who.user_id)
    return web.json_response({"removed": phone_id})


# ---- care notes -------------------------------------------------------------------------------

class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: int | None = Field(None, gt=0, lt=2**63)
    customer_status: str | None = Field(None, min_length=1, max_length=120)
    detail_status: str | None = Field(None, min_length=1, max_length=120)
    note: str = Field("", max_length=care.MAX_NOTE)
    callback_date: dt.date | None = None
    booking_date: dt.date | None = None
    arrival_date: dt.date | None = None
    care_status: str | None = Field(None, max_length=24)
    reached: bool | None = None


@routes.post("/api/patients/{id}/notes")
async def add_note(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    body = await parse_body(request, NoteBody)
    await checked_access(request, who, patient_id, write=True)
    db = request.app[DB_KEY]
    note_id = await care.add_care_note(db, patient_id=patient_id, author_id=who.user_id, **body.model_dump())
    notes = await care.notes_for_patient(db, patient_id, limit=50)
    note = next((n for n in notes if n["id"] == note_id), {"id": note_id})
    patient = await records.get_patient(db, patient_id)
    account = await treated_account(request, patient, who, body.care_status is not None)
    return web.json_response({"note": note, "patient": patient, "account": account}, status=201)


@routes.get("/api/patients/{id}/notes")
async def list_notes(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    await checked_access(request, who, patient_id)
    audit_views(request, [patient_id], "notes")
    return web.json_response({"items": await care.notes_for_patient(request.app[DB_KEY], patient_id)})


# ---- customer statuses --------------------------------------------------------------------------

class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=120)
    parent_id: int | None = Field(None, gt=0, lt=2**63)
    not_reached: bool | None = None
    position: int | None = Field(None, ge=0, le=10000)
    callback_required: bool = False


class StatusPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(None, min_length=1, max_length=120)
    active: bool | None = None
    not_reached: bool | None = None
    callback_required: bool | None = None
    position: int | None = Field(None, ge=0, le=10000)


@routes.get("/api/customer-statuses")
async def list_statuses(request: web.Request) -> web.Response:
    require(request, *ANY_STAFF)
    include = request.query.get("all") in ("1", "true")
    return web.json_response({"items": await statuses.status_tree(request.app[DB_KEY], include_inactive=include)})


@routes.post("/api/customer-statuses")
async def create_status(request: web.Request) -> web.Response:
    require(request, "admin")
    body = await parse_body(request, StatusBody)
    row = await statuses.create_status(request.app[DB_KEY], body.label, body.parent_id, body.not_reached, body.position,
                                       callback_required=body.callback_required)
    return web.json_response(row, status=201)


@routes.patch("/api/customer-statuses/{id}")
async def patch_status(request: web.Request) -> web.Response:
    require(request, "admin")
    status_id = int_param(request, "id")
    body = await parse_body(request, StatusPatch)
    no_nulls(body, "label", "active", "not_reached", "position", "callback_required")
    row = await statuses.update_status(request.app[DB_KEY], status_id, body.model_dump(exclude_unset=True))
    return web.json_response(row)


# ---- worklists, assignment, transfers -----------------------------------------------------------

class WorklistQuery(BaseModel):
    agent_id: int | None = Field(None, gt=0, lt=2**63)
    date: Day | None = None
    limit: int = Field(100, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=10**7)


def worklist_agent(who: Principal, asked: int | None) -> int | None:
    if manager(who):
        return asked
    if asked not in (None, who.user_id):
        raise Problem(403, "Not allowed", "Agents see their own worklists; a supervisor can see another agent's.")
    return who.user_id


@routes.get("/api/worklists")
async def worklist_counts(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    query = parse_query(request, WorklistQuery)
    settings = request.app[SETTINGS_KEY]
    day = query.date or today(request)
    counts = await worklists.worklist_counts(request.app[DB_KEY], today=day, zone=settings.clinic.zone(),
                                             overdue_days=settings.crm.overdue_days,
                                             agent_id=worklist_agent(who, query.agent_id))
    return web.json_response({"date": day.isoformat(), "counts": counts})


@routes.get("/api/worklists/{kind}")
async def worklist(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    kind = request.match_info["kind"]
    if kind not in worklists.KINDS:
        raise Problem(404, "Unknown worklist", f"Worklists are {', '.join(worklists.KINDS)}.")
    query = parse_query(request, WorklistQuery)
    settings = request.app[SETTINGS_KEY]
    day = query.date or today(request)
    count, items = await worklists.worklist(
        request.app[DB_KEY], kind, today=day, zone=settings.clinic.zone(), overdue_days=settings.crm.overdue_days,
        agent_id=worklist_agent(who, query.agent_id), limit=query.limit, offset=query.offset)
    audit_views(request, [item["id"] for item in items], "worklist")
    return web.json_response({"kind": kind, "date": day.isoformat(), "count": count, "items": items})


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: int | None = Field(..., gt=0, lt=2**63)


@routes.post("/api/patients/{id}/assign")
async def assign(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    body = await parse_body(request, AssignBody)
    db = request.app[DB_KEY]
    if manager(who):
        await records.set_assignment(db, patient_id, body.agent_id, who.user_id)
    elif body.agent_id != who.user_id or who.user_id is None:
        raise Problem(403, "Not allowed", "Agents may only take unassigned patients for themselves; "
                                          "ask a supervisor, or request a transfer.")
    else:
        await records.take_patient(db, patient_id, who.user_id, who.user_id)
    await worklists_changed(request.app, patient_id, "assigned")
    return web.json_response({"patient": await records.get_patient(db, patient_id)})


@routes.get("/api/agents")
async def list_agents(request: web.Request) -> web.Response:
    """Active agents by name: whom a patient can be handed or assigned to (no other account details)."""
    require(request, *STAFF)
    users = await list_users(request.app[DB_KEY])
    return web.json_response({"items": [{"id": u.id, "name": u.display_name or u.username}
                                        for u in users if u.active and "agent" in (u.roles or [])]})


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_agent_id: int = Field(gt=0, lt=2**63)
    reason: str = Field("", max_length=500)


@routes.post("/api/patients/{id}/transfer-requests")
async def request_transfer(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    body = await parse_body(request, TransferBody)
    if body.to_agent_id != who.user_id or manager(who):
        # Handing one's patient to a colleague needs access; asking for a patient for oneself does not.
        await checked_access(request, who, patient_id, write=True)
    row = await transfers.request_transfer(request.app[DB_KEY], patient_id, body.to_agent_id, who.user_id, body.reason)
    await worklists_changed(request.app, patient_id, "transfer_requested")  # the supervisors' list of requests
    return web.json_response(row, status=201)


class TransferQuery(BaseModel):
    status: str | None = Field(None, max_length=16)


@routes.get("/api/transfers")
async def list_transfers(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    query = parse_query(request, TransferQuery)
    if query.status is not None and query.status not in transfers.TRANSFER_STATUSES:
        raise Problem(422, "Unknown status", f"status must be one of {', '.join(transfers.TRANSFER_STATUSES)}.")
    items = await transfers.list_transfers(request.app[DB_KEY], status=query.status,
                                           agent_id=None if manager(who) else who.user_id)
    audit_views(request, [item["patient_id"] for item in items], "transfers")
    return web.json_response({"items": items})


@routes.post("/api/transfers/{id}/{decision:approve|reject}")
async def decide_transfer(request: web.Request) -> web.Response:
    who = require(request, "supervisor")
    transfer_id = int_param(request, "id")
    approve = request.match_info["decision"] == "approve"
    row = await transfers.decide_transfer(request.app[DB_KEY], transfer_id, approve, who.user_id)  # type: ignore[arg-type]
    await worklists_changed(request.app, row["patient_id"], "transfer" if approve else "transfer_rejected")
    return web.json_response(row)


# ---- follow-up plans ----------------------------------------------------------------------------

class FollowUpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = Field(max_length=10)
    theme: str = Field(min_length=1, max_length=200)
    due_date: dt.date
    status: str = Field("pending", max_length=16)
    agent_id: int | None = Field(None, gt=0, lt=2**63)


class FollowUpPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str | None = Field(None, max_length=10)
    theme: str | None = Field(None, min_length=1, max_length=200)
    due_date: dt.date | None = None
    status: str | None = Field(None, max_length=16)
    agent_id: int | None = Field(None, gt=0, lt=2**63)


class FollowUpQuery(BaseModel):
    view: str = Field("week", max_length=8)
    start: Day | None = Field(None, alias="from")
    agent_id: int | None = Field(None, gt=0, lt=2**63)
    open_only: bool = False


@routes.post("/api/patients/{id}/follow-ups")
async def create_followup(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    patient_id = int_param(request, "id")
    body = await parse_body(request, FollowUpBody)
    await checked_access(request, who, patient_id, write=True)
    if not manager(who) and body.agent_id not in (None, who.user_id):
        raise Problem(403, "Not allowed", "Agents plan follow-ups for themselves; a supervisor can plan for others.")
    row = await followups.create_followup(request.app[DB_KEY], patient_id, method=body.method, theme=body.theme,
                                          due_date=body.due_date, agent_id=body.agent_id, created_by=who.user_id,  # type: ignore[arg-type]
                                          status=body.status)
    return web.json_response(row, status=201)


@routes.patch("/api/follow-ups/{id}")
async def patch_followup(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    followup_id = int_param(request, "id")
    body = await parse_body(request, FollowUpPatch)
    no_nulls(body, "method", "theme", "due_date", "status")
    db = request.app[DB_KEY]
    row = await followups.get_followup(db, followup_id)
    await checked_access(request, who, row.patient_id, write=True)
    if not manager(who):
        if row.agent_id != who.user_id:
            raise Problem(403, "Not allowed", "This follow-up belongs to another agent.")
        if body.agent_id not in (None, who.user_id):
            raise Problem(403, "Not allowed", "Ask a supervisor to hand a follow-up to another agent.")
    result = await followups.update_followup(db, followup_id, body.model_dump(exclude_unset=True), who.user_id)  # type: ignore[arg-type]
    return web.json_response(result)


@routes.get("/api/follow-ups")
async def list_followups(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    query = parse_query(request, FollowUpQuery)
    if query.view not in followups.VIEWS:
        raise Problem(422, "Unknown view", "view must be week (7 days) or month (30 days).")
    start = query.start or today(request)
    agent = worklist_agent(who, query.agent_id)
    items = await followups.list_followups(request.app[DB_KEY], start=start, days=followups.VIEWS[query.view],
                                           agent_id=agent, include_done=not query.open_only,
                                           agent_scope=agent_scope(who))
    end = start + dt.timedelta(days=followups.VIEWS[query.view] - 1)
    audit_views(request, [item["patient_id"] for item in items], "followups")
    return web.json_response({"view": query.view, "from": start.isoformat(), "to": end.isoformat(), "items": items})


# ---- reception ---------------------------------------------------------------------------------

class ArrivalsQuery(BaseModel):
    date: Day | None = None


def arrivals_day(request: web.Request, who: Principal, asked: dt.date | None) -> dt.date:
    """Reception and doctors (without an agent's or supervisor's role) see the days their cards allow."""
    day = asked or today(request)
    first, last = front_desk_window(today(request))
    if not who.has_any(*STAFF) and not first <= day <= last:
        raise Problem(403, "Outside your days", f"Reception and doctors see arrivals from {first.isoformat()} "
                      f"to {last.isoformat()}; ask a supervisor for other days.", code="date_outside_window")
    return day


@routes.get("/api/arrivals")
async def arrivals(request: web.Request) -> web.Response:
    who = require(request, *ANY_STAFF)
    day = arrivals_day(request, who, parse_query(request, ArrivalsQuery).date)
    db = request.app[DB_KEY]
    briefs = [b for b in await expected_arrivals(db, day)
              if may_see(who, b.assigned_agent_id, (day,), today(request))]
    details = {p["id"]: p for p in (await records.patients_by_ids(db, [b.id for b in briefs]))}
    audit_views(request, details, "arrivals")
    items = [{"id": b.id, "full_name": b.full_name, "care_status": b.care_status,
              "assigned_agent_id": b.assigned_agent_id, "booking_date": details[b.id]["booking_date"],
              "arrival_date": details[b.id]["arrival_date"], "date_of_birth": details[b.id]["date_of_birth"],
              "phones": [{"id": p.id, "e164": p.e164, "raw": p.raw, "label": p.label} for p in b.phones]}
             for b in briefs]
    return web.json_response({"date": day.isoformat(), "count": len(items), "items": items})


# ---- duplicates and merge ------------------------------------------------------------------------

class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_id: int = Field(gt=0, lt=2**63)
    into_id: int = Field(gt=0, lt=2**63)


@routes.get("/api/duplicates")
async def list_duplicates(request: web.Request) -> web.Response:
    require(request, "supervisor")
    groups = await duplicates.find_duplicates(request.app[DB_KEY])
    audit_views(request, [p["id"] for group in groups for p in group["patients"]], "duplicates")
    return web.json_response({"groups": groups})


@routes.post("/api/merges")
async def merge(request: web.Request) -> web.Response:
    who = require(request, "supervisor")
    body = await parse_body(request, MergeBody)
    result = await duplicates.merge_patients(request.app[DB_KEY], body.from_id, body.into_id, who.user_id)
    await forget_tokens(request.app)  # the merged record's patient login may have been closed
    await patients_merged(request.app, result["from_id"], result["into_id"])
    return web.json_response(result)


# ---- message templates ---------------------------------------------------------------------------

class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=templates.MAX_BODY)
    channel: str = Field("sms", max_length=10)


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    body: str | None = Field(None, min_length=1, max_length=templates.MAX_BODY)
    channel: str | None = Field(None, max_length=10)


class RenderQuery(BaseModel):
    patient_id: int = Field(gt=0, lt=2**63)


@routes.get("/api/templates")
async def list_templates(request: web.Request) -> web.Response:
    require(request, *STAFF)
    return web.json_response({"items": await templates.list_templates(request.app[DB_KEY]),
                              "placeholders": list(templates.PLACEHOLDERS)})


@routes.post("/api/templates")
async def create_template(request: web.Request) -> web.Response:
    who = require(request, "supervisor")
    body = await parse_body(request, TemplateBody)
    row = await templates.save_template(request.app[DB_KEY], None, name=body.name, body=body.body,
                                        channel=body.channel, user_id=who.user_id)  # type: ignore[arg-type]
    return web.json_response(row, status=201)


@routes.patch("/api/templates/{id}")
async def patch_template(request: web.Request) -> web.Response:
    who = require(request, "supervisor")
    template_id = int_param(request, "id")
    body = await parse_body(request, TemplatePatch)
    no_nulls(body, "name", "body", "channel")
    row = await templates.save_template(request.app[DB_KEY], template_id, name=body.name, body=body.body,
                                        channel=body.channel, user_id=who.user_id)  # type: ignore[arg-type]
    return web.json_response(row)


@routes.delete("/api/templates/{id}")
async def delete_template(request: web.Request) -> web.Response:
    require(request, "supervisor")
    template_id = int_param(request, "id")
    await templates.delete_template(request.app[DB_KEY], template_id)
    return web.json_response({"deleted": template_id})


@routes.get("/api/templates/{id}/render")
async def render_template(request: web.Request) -> web.Response:
    who = require(request, *STAFF)
    template_id = int_param(request, "id")
    query = parse_query(request, RenderQuery)
    await checked_access(request, who, query.patient_id)
    db = request.app[DB_KEY]
    result = await templates.render_template(db, template_id, query.patient_id,
                                             request.app[SETTINGS_KEY].clinic.name)
    await audit.record_access(db, who.user_id, result["patient_id"], "message", f"template {template_id}")
    return web.json_response(result)


# ---- HIS import ---------------------------------------------------------------------------------

@routes.post("/api/imports/patients")
async def import_patients(request: web.Request) -> web.Response:
    """multipart/form-data (file, optional mapping JSON) or a text/csv body (?mapping=JSON)."""
    who = require(request, "supervisor")
    mapping_text = request.query.get("mapping")
    if request.content_type == "multipart/form-data":
        data = None
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    raise Problem(400, "Malformed form", "Nested multipart bodies are not accepted.", code="malformed_form")
                if part.name == "file":
                    data = await read_part(part, MAX_FILE_BYTES, part.filename or "file")
                elif part.name == "mapping":
                    mapping_text = (await read_part(part, MAX_FIELD, "mapping")).decode("utf-8", "replace")
        except (ValueError, AssertionError, RuntimeError, UnicodeDecodeError, AttributeError, HttpProcessingError) as exc:
            raise Problem(400, "Malformed form", f"The multipart body cannot be read ({exc}); "
                                                "send the CSV as form field 'file'.") from None
        if data is None:
            raise Problem(422, "File missing", "Send the CSV in a form field named 'file'.")
    elif request.content_type in ("text/csv", "text/plain", "application/csv"):
        data = await request.read()
    else:
        raise Problem(415, "Unsupported media type", "Send the CSV as text/csv or as multipart/form-data field 'file'.")
    mapping = parse_mapping(mapping_text)
    summary = await import_csv(request.app[DB_KEY], bytes(data), mapping=mapping, user_id=who.user_id,
                               region=region(request))
    await worklists_changed(request.app, None, "imported")
    return web.json_response(summary.as_json())


# ---- audit ---------------------------------------------------------------------------------------

class AuditQuery(BaseModel):
    patient_id: int | None = Field(None, gt=0, lt=2**63)
    user_id: int | None = Field(None, gt=0, lt=2**63)
    start: str | None = Field(None, alias="from", max_length=40)
    end: str | None = Field(None, alias="to", max_length=40)
    action: str | None = Field(None, max_length=40)
    limit: int = Field(200, ge=1, le=2000)
    offset: int = Field(0, ge=0, le=10**7)


def as_utc(text: str | None, request: web.Request, end: bool, name: str) -> dt.datetime | None:
    """A local day (YYYY-MM-DD: from its start; as `to`, through its end) or an ISO date-time."""
    if not text:
        return None
    zone = request.app[SETTINGS_KEY].clinic.zone()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end else 0)
            return dt.datetime.combine(day, dt.time(0, 0), zone).astimezone(dt.UTC)
        value = dt.datetime.fromisoformat(text)
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise Problem(422, "Invalid date", f"{name}={text!r}: use a day such as 2026-11-22 "
                                           "or a time such as 2026-11-22T08:30:00+07:00.") from None


@routes.get("/api/audit")
async def list_audit(request: web.Request) -> web.Response:
    require(request, "admin")
    query = parse_query(request, AuditQuery)
    if query.action is not None and has_control(query.action):
        raise Problem(422, "Invalid action", "action contains control characters.")
    batch = request.app.get(audit.AUDIT_BATCH_KEY)
    if batch is not None:
        await batch.flush()  # the views this instance has not written yet are part of the trail
    items = await audit.list_audit(request.app[DB_KEY], patient_id=query.patient_id, user_id=query.user_id,
                                   since=as_utc(query.start, request, False, "from"),
                                   until=as_utc(query.end, request, True, "to"),
                                   action=query.action, limit=query.limit, offset=query.offset)
    return web.json_response({"items": items})

