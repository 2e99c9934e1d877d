"""Message templates with placeholders, checked when saved and rendered for one patient."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select

from clinicall.auth.models import User
from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from crm_bridge.care import live_patient
from crm_bridge.models import MessageTemplate, PatientPhone
from crm_bridge.phones import national_format
from crm_bridge.text import clean_text

PLACEHOLDERS = ("fullName", "phone", "dateOfBirth", "callbackDate", "bookingDate", "agentName", "clinicName")
CHANNELS = ("sms", "zalo", "email", "script")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
MAX_BODY = 2000


def check_body(body: str) -> str:
    body = clean_text(body, "body", MAX_BODY, multiline=True)
    if not body:
        raise Problem(422, "Empty template", "Write the message text in body.")
    unknown = sorted({name for name in _PLACEHOLDER.findall(body) if name not in PLACEHOLDERS})
    if unknown:
        raise Problem(422, "Unknown placeholder",
                      f"The template uses {', '.join('{' + u + '}' for u in unknown)}, which we cannot fill; "
                      f"use only {', '.join('{' + p + '}' for p in PLACEHOLDERS)}.", unknown=unknown,
                      code="unknown_placeholder", errors=[{"field": "body", "code": "unknown_placeholder",
                                                           "message": "unknown placeholder"}])
    stray = _PLACEHOLDER.sub("", body)
    if "{" in stray or "}" in stray:
        raise Problem(422, "Unbalanced brace", "A { or } in the template has no partner; write placeholders as {fullName}.")
    return body


def template_json(t: MessageTemplate) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "channel": t.channel, "body": t.body, "updated_by": t.updated_by,
            "updated_at": t.updated_at.isoformat(), "placeholders": sorted(set(_PLACEHOLDER.findall(t.body)))}


def _checked(name: str | None, channel: str | None) -> tuple[str | None, str | None]:
    if name is not None:
        name = clean_text(name, "name", 100)
        if not name:
            raise Problem(422, "Name needed", "Give the template a name.")
    if channel is not None and channel not in CHANNELS:
        raise Problem(422, "Invalid channel", f"channel must be one of {', '.join(CHANNELS)}.")
    return name, channel


async def list_templates(db: Database) -> list[dict[str, Any]]:
    async with db.session() as s:
        return [template_json(t) for t in (await s.scalars(select(MessageTemplate).order_by(MessageTemplate.name)))]


async def save_template(db: Database, template_id: int | None, *, name: str | None, body: str | None,
                        channel: str | None, user_id: int) -> dict[str, Any]:
    name, channel = _checked(name, channel)
    body = check_body(body) if body is not None else None
    async with db.transaction() as s:
        if name is not None and await s.scalar(select(MessageTemplate.id).where(
                MessageTemplate.name == name, MessageTemplate.id != (template_id or 0))) is not None:
            raise Problem(409, "Template name taken", f"A template named {name!r} already exists; choose another name.")
        if template_id is None:
            if name is None or body is None:
                raise Problem(422, "Name and body needed", "A new template needs a name and a body.")
            row = MessageTemplate(name=name, body=body, channel=channel or "sms")
            s.add(row)
        else:
            row = await s.get(MessageTemplate, template_id)
            if row is None:
                raise Problem(404, "Template not found", "No message template with that id exists.")
            if name is not None:
                row.name = name
            if body is not None:
                row.body = body
            if channel is not None:
                row.channel = channel
        row.updated_by = user_id
        row.updated_at = utcnow()
        await s.flush()
        return template_json(row)


async def delete_template(db: Database, template_id: int) -> None:
    async with db.transaction() as s:
        row = await s.get(MessageTemplate, template_id)
        if row is None:
            raise Problem(404, "Template not found", "No message template with that id exists.")
        await s.delete(row)


def _date(value: dt.date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


async def render_template(db: Database, template_id: int, patient_id: int, clinic_name: str) -> dict[str, Any]:
    async with db.session() as s:
        template = await s.get(MessageTemplate, template_id)
        if template is None:
            raise Problem(404, "Template not found", "No message template with that id exists.")
        patient = await live_patient(s, patient_id)
        phone = await s.scalar(select(PatientPhone).where(PatientPhone.patient_id == patient.id)
                               .order_by(PatientPhone.id).limit(1))
        agent = await s.get(User, patient.assigned_agent_id) if patient.assigned_agent_id else None
    values = {
        "fullName": patient.full_name, "phone": national_format(phone.e164) if phone else "",
        "dateOfBirth": _date(patient.date_of_birth), "callbackDate": _date(patient.callback_date),
        "bookingDate": _date(patient.booking_date), "agentName": agent.display_name if agent else "",
        "clinicName": clinic_name,
    }
    text = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template.body)
    missing = sorted({name for name in _PLACEHOLDER.findall(template.body) if not values.get(name)})
    return {"template_id": template.id, "patient_id": patient.id, "channel": template.channel, "text": text,
            "missing": missing}
