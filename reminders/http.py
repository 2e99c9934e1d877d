"""The reminders API and the supervisors' campaign page /reminders (campaigns, today's turn-near calls).
Supervisors (and admins) only."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from clinicall.auth.access import require
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.problem import int_param, parse_body
from crm_bridge.service import audit_views, full_names
from messaging.keys import MESSAGING_KEY
from reminders import service, turn_near
from reminders.keys import DIALLER_KEY

routes = web.RouteTableDef()
WEB_DIR = Path(__file__).resolve().parent / "web"
SUPERVISOR = ("supervisor",)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["appointment", "revisit", "callback"]


class CampaignState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["running", "paused"]


def settings_json(request: web.Request) -> dict[str, object]:
    rem = request.app[SETTINGS_KEY].reminders
    return {"enabled": rem.enabled, "daily_kinds": rem.daily_kinds, "build_at": rem.build_at,
            "calling_hours": rem.calling_hours, "max_channels": rem.max_channels, "max_attempts": rem.max_attempts,
            "retry_minutes": rem.retry_minutes, "ring_timeout_ms": rem.ring_timeout_ms,
            "timezone": request.app[SETTINGS_KEY].clinic.timezone}


@routes.get("/api/reminders/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    """Reminder campaigns, newest first, with their live progress and the reminder settings; today's
    turn-near calls (ticket number, state, result; no patient data) and whether turn-near is a call here."""
    require(request, *SUPERVISOR)
    db, settings = request.app[DB_KEY], request.app[SETTINGS_KEY]
    calls = await turn_near.calls_of_day(db, turn_near.clinic_today(settings))
    return web.json_response({"campaigns": await service.list_campaigns(db), "settings": settings_json(request),
                              "turn_near_channel": request.app[MESSAGING_KEY].turn_near_channel_name,
                              "turn_near": [turn_near.call_json(c) for c in calls]})


@routes.post("/api/reminders/campaigns")
async def start_campaign(request: web.Request) -> web.Response:
    """Build a campaign now (today's clinic day) from the worklists and start calling (within calling hours)."""
    who = require(request, *SUPERVISOR)
    body = await parse_body(request, CampaignIn)
    app = request.app
    today = service.clinic_now(app[SETTINGS_KEY]).date()
    campaign = await service.build_campaign(app[DB_KEY], app[SETTINGS_KEY], body.kind, today=today,
                                            source=service.manual_source(), created_by=who.user_id)
    app[DIALLER_KEY].wake.set()
    return web.json_response({"campaign": await service.get_campaign(app[DB_KEY], campaign.id)}, status=201)


@routes.get("/api/reminders/campaigns/{campaign_id}")
async def get_campaign(request: web.Request) -> web.Response:
    """One campaign with its progress and its targets (patient id and name, number, state, attempts, key)."""
    require(request, *SUPERVISOR)
    campaign_id = int_param(request, "campaign_id")
    db = request.app[DB_KEY]
    campaign = await service.get_campaign(db, campaign_id)
    targets = [service.target_json(t) for t in await service.list_targets(db, campaign_id)]
    names = await full_names(db, [t["patient_id"] for t in targets])
    targets = [t | {"patient_name": names.get(t["patient_id"])} for t in targets]
    audit_views(request, sorted({t["patient_id"] for t in targets}), "reminders")
    return web.json_response({"campaign": campaign, "targets": targets})


@routes.post("/api/reminders/campaigns/{campaign_id}/state")
async def set_campaign_state(request: web.Request) -> web.Response:
    """Pause a campaign (calls out finish; no new ones) or run it again."""
    require(request, *SUPERVISOR)
    campaign_id = int_param(request, "campaign_id")
    body = await parse_body(request, CampaignState)
    db = request.app[DB_KEY]
    await service.set_state(db, campaign_id, body.state)
    request.app[DIALLER_KEY].wake.set()
    return web.json_response({"campaign": await service.get_campaign(db, campaign_id)})


@routes.get("/reminders")
async def reminders_page(request: web.Request) -> web.StreamResponse:
    """The supervisors' reminder-campaign page."""
    require(request, *SUPERVISOR)
    return web.FileResponse(WEB_DIR / "reminders.html", headers={"Cache-Control": "no-store"})
