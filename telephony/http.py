"""Telephony HTTP routes: click-to-call, hang up, calls with outcomes, the demo PBX's inbound call."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from clinicall.auth.access import require
from clinicall.keys import BUS_KEY, DB_KEY, SETTINGS_KEY
from clinicall.problem import Problem, int_param, read_json, validate
from crm_bridge.service import audit_views, lookup_caller
from telephony.events import call_json
from telephony.keys import AMI_LINK_KEY, CALL_LOG_KEY, DEMO_PBX_KEY, RATE_LIMIT_KEY, TELEPHONY_METRICS_KEY
from telephony.service import Telephony
from telephony.wire import UnsafeField

routes = web.RouteTableDef()
CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
SEPARATORS = re.compile(r"[ .\-()/]")


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: int = Field(gt=0, lt=2**63)
    phone_id: int = Field(gt=0, lt=2**63)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_status: str | None = Field(None, max_length=80)
    detail_status: str | None = Field(None, max_length=80)
    note: str = Field("", max_length=4000)
    callback_date: dt.date | None = None
    booking_date: dt.date | None = None
    arrival_date: dt.date | None = None
    care_status: str | None = Field(None, max_length=40)
    reached: bool | None = None


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: int = Field(gt=0, lt=2**63)


class DemoInboundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(default="", max_length=20, pattern=r"^\+?[0-9]{0,19}$")


def refuse_control_characters(data: Any, path: str = "") -> None:
    """Anything that may reach Asterisk: control characters are refused with 400, before validation."""
    if isinstance(data, str):
        if CONTROL.search(data):
            raise UnsafeField(path or "(body)", "contains a line break or another control character")
    elif isinstance(data, dict):
        for key, value in data.items():
            refuse_control_characters(str(key), path or "(body)")
            refuse_control_characters(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            refuse_control_characters(value, f"{path}[{i}]")


def telephony(request: web.Request) -> Telephony:
    app = request.app
    return Telephony(app[DB_KEY], app[BUS_KEY], app[SETTINGS_KEY], app[AMI_LINK_KEY], app[CALL_LOG_KEY],
                     app[RATE_LIMIT_KEY], app[TELEPHONY_METRICS_KEY])


@routes.post("/api/calls")
async def start_call(request: web.Request) -> web.Response:
    who = require(request, "agent")
    data = await read_json(request)
    refuse_control_characters(data)
    body = validate(CallIn, data)
    call = await telephony(request).start_call(who, body.patient_id, body.phone_id)
    return web.json_response({"call": call}, status=202)


@routes.get("/api/calls")
async def list_calls(request: web.Request) -> web.Response:
    who = require(request, "agent", "supervisor")
    ids: dict[str, int | None] = {}
    for name in ("patient_id", "agent_id"):
        raw = request.query.get(name)
        if raw is None or raw == "":
            ids[name] = None
            continue
        if not raw.isdigit() or not 0 < int(raw) < 2**63:
            raise Problem(400, "Invalid filter", f"{name} must be a numeric id.")
        ids[name] = int(raw)
    everyone = request.query.get("all") in ("1", "true")
    live = request.query.get("live") in ("1", "true")  # only calls not ended yet (the console after a reload)
    unlogged = request.query.get("unlogged") in ("1", "true")  # ended, no outcome yet (the agent's to-do)
    calls = await telephony(request).list_calls(who, ids["patient_id"], ids["agent_id"], everyone=everyone, live=live,
                                                unlogged=unlogged)
    audit_views(request, [c["patient_id"] for c in calls if c["patient_id"] is not None], "calls")
    return web.json_response({"calls": calls})


@routes.get("/api/calls/{id}")
async def get_call(request: web.Request) -> web.Response:
    who = require(request, "agent", "supervisor")
    call = await telephony(request).get_call(who, int_param(request, "id"))
    audit_views(request, [call.patient_id] if call.patient_id is not None else [], "calls")
    return web.json_response({"call": call_json(call)})


@routes.get("/api/calls/{id}/recording")
async def recording(request: web.Request) -> web.StreamResponse:
    who = require(request, "agent", "supervisor")
    path = await telephony(request).recording_file(who, int_param(request, "id"))
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"})


@routes.post("/api/calls/{id}/hangup")
async def hangup(request: web.Request) -> web.Response:
    who = require(request, "agent", "supervisor")
    call = await telephony(request).hangup(who, int_param(request, "id"))
    return web.json_response({"call": call_json(call)}, status=202)


@routes.post("/api/calls/{id}/patient")
async def link_patient(request: web.Request) -> web.Response:
    """The agent created or picked the caller's card (after a screen-pop of an unknown number)."""
    who = require(request, "agent", "supervisor")
    body = validate(LinkIn, await read_json(request))
    call = await telephony(request).link_patient(who, int_param(request, "id"), body.patient_id)
    return web.json_response({"call": call_json(call)})


@routes.post("/api/calls/{id}/outcome")
async def outcome(request: web.Request) -> web.Response:
    who = require(request, "agent", "supervisor")
    call_id = int_param(request, "id")
    body = validate(OutcomeIn, await read_json(request))
    result = await telephony(request).record_outcome(who, call_id, body.model_dump(exclude_unset=True))
    return web.json_response(result, status=201)


@routes.post("/api/demo/inbound")
async def demo_inbound(request: web.Request) -> web.Response:
    who = require(request, "agent")
    pbx = request.app[DEMO_PBX_KEY]
    if pbx is None:
        raise Problem(404, "No demo PBX", "The demo PBX is not running (a real Asterisk is configured, or demo_pbx "
                      "is off); call the clinic's number instead.")
    data = await read_json(request)
    refuse_control_characters(data)
    if isinstance(data, dict) and isinstance(data.get("number"), str):
        data["number"] = SEPARATORS.sub("", data["number"])
    body = validate(DemoInboundIn, data)
    match = await lookup_caller(request.app[DB_KEY], body.number, request.app[SETTINGS_KEY].clinic.phone_region)
    if match is not None and not who.has_any("supervisor") and match.assigned_agent_id != who.user_id:
        # the call would pop the card up on another agent's screen (an unassigned patient's rings the whole
        # team): an agent simulates only their own patients' calls, or an unknown number's
        if match.assigned_agent_id is None:
            raise Problem(403, "Rings the whole team", "This number belongs to an unassigned patient: its call would "
                          "pop up on every agent's screen. Simulate a call from one of your own patients or an "
                          "unknown number.", code="demo_team_call")
        raise Problem(403, "Not your patient", "This number belongs to another agent's patient; simulate a call from "
                      "one of your own or an unknown number.", code="not_your_patient")
    started = await pbx.inbound(body.number)
    return web.json_response(started, status=202)
