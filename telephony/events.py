"""Events the telephony room publishes, and the JSON shape of a call."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from telephony.models import Call

CALL_UPDATED = "call.updated"
CALL_SCREENPOP = "call.screenpop"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _legs(text: str | None) -> list[dict[str, Any]]:
    try:
        legs = json.loads(text) if text else []
    except ValueError:
        return []
    return legs if isinstance(legs, list) else []


def call_json(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "call_id": call.id,
        "direction": call.direction,
        "state": call.state,
        "disposition": call.disposition,
        "agent_id": call.agent_id,
        "agent_extension": call.agent_extension,
        "patient_id": call.patient_id,
        "phone_id": call.phone_id,
        "number": call.number,
        "caller_name": call.caller_name,
        "created_at": _iso(call.created_at),
        "started_at": _iso(call.created_at),
        "ringing_at": _iso(call.ringing_at),
        "answered_at": _iso(call.answered_at),
        "ended_at": _iso(call.ended_at),
        "duration": call.duration,
        "billsec": call.billsec,
        "hangup_cause": call.hangup_cause,
        "hangup_code": call.hangup_code,
        "origin": call.origin,
        "number_raw": call.number_raw,
        "network_name": call.network_name,
        "talk_seconds": call.talk_seconds,
        "ring_seconds": call.ring_seconds,
        "legs": _legs(call.legs),
        "recording_path": call.recording_path,
        "recording_url": f"/api/calls/{call.id}/recording" if call.recording_path and call.id else None,
    }


def call_updated(call: Call) -> dict[str, Any]:
    """The `call.updated` bus payload (see docs/telephony.md and the cross-room contract)."""
    return updated_payload(call_json(call))


def updated_payload(body: dict[str, Any]) -> dict[str, Any]:
    """`call.updated`'s payload from the call's JSON (`call_json`): the same fields but `id`."""
    return {key: value for key, value in body.items() if key != "id"}
