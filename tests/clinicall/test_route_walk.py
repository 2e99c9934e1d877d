"""Every GET route of the app (read from its OpenAPI description), walked as each role that must not see one
patient: that patient's id in every path, and their id, name, phone and day in every query parameter the
route takes. No answer may carry the patient's full name, phone or notes (masked names are fine). The
access matrix checks who passes each route's gate; this checks what the routes that let them in show."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from crm_bridge import accounts
from crm_bridge.models import PatientAccount
from crm_bridge.worklists import clinic_today
from tests.conftest import PASSWORD, Staff

NAME = "Hoàng Thị Bí Mật"
PHONE = "0912000701"
SECRETS = (NAME, "912000701", "ghi chú mật 7f3a")  # the name, the phone in any form, the notes
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SKIPPED = ("/static/", "/api/openapi.json", "/api/docs")


@pytest.fixture
def settings(sqlite_url: str, make_settings: Callable[..., Settings]) -> Settings:
    """What a route shows lives above the database: SQLite is enough."""
    return make_settings(sqlite_url)


async def post(client: TestClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    response = await client.post(path, json=body, headers=headers)
    assert response.status in (200, 201), (path, response.status, await response.text())
    return await response.json()


async def hidden_patient(client: TestClient, staff: Staff) -> dict[str, Any]:
    """agent2's patient, booked ten days ahead (outside reception's and doctors' days), with a note, a follow-up,
    a treatment entry (so an account), a result file, a message and a ticket today."""
    boss, admin = staff.headers("supervisor"), staff.headers("admin")
    later = clinic_today(Settings().clinic.zone()) + dt.timedelta(days=10)
    created = await post(client, "/api/patients", {"full_name": NAME, "phones": [{"number": PHONE}],
                                                   "assigned_agent_id": staff.ids["agent2"],
                                                   "notes": "ghi chú mật 7f3a"}, boss)
    patient_id = created["patient"]["id"]
    patch = await client.patch(f"/api/patients/{patient_id}", json={"booking_date": later.isoformat()}, headers=boss)
    assert patch.status == 200
    await post(client, f"/api/patients/{patient_id}/notes", {"note": "ghi chú mật 7f3a"}, boss)
    await post(client, f"/api/patients/{patient_id}/follow-ups",
               {"method": "phone", "theme": "ghi chú mật 7f3a", "due_date": later.isoformat()}, boss)
    await post(client, f"/api/patients/{patient_id}/treatment",
               {"day": later.isoformat(), "progress": "ghi chú mật 7f3a", "visible_to_patient": True}, boss)
    with aiohttp.MultipartWriter("form-data") as form:
        form.append("lab").set_content_disposition("form-data", name="group")
        form.append("true").set_content_disposition("form-data", name="visible_to_patient")
        form.append(PDF, {"Content-Type": "application/pdf"}).set_content_disposition(
            "form-data", name="files", filename="ket-qua.pdf")
    uploaded = await client.post(f"/api/patients/{patient_id}/files", data=form, headers=boss)
    assert uploaded.status == 201, await uploaded.text()
    file_id = (await uploaded.json())["files"][0]["id"]
    await post(client, f"/api/patients/{patient_id}/messages", {"text": "ghi chú mật 7f3a"}, boss)
    service = await post(client, "/api/services", {"prefix": "A", "names": {"vi": "Khám"}}, admin)
    ticket = await post(client, "/api/tickets", {"service_id": service["service"]["id"], "patient_id": patient_id},
                        admin)
    return {"patient_id": patient_id, "file_id": file_id, "ticket_id": ticket["ticket"]["id"],
            "token": ticket["ticket"]["status_url"].rsplit("/", 1)[1], "day": later.isoformat()}


async def outsiders(client: TestClient, staff: Staff) -> dict[str, dict[str, str]]:
    """Bearer headers of every role that must not see the hidden patient, and of nobody at all."""
    db = client.app[DB_KEY]  # type: ignore[index]
    referrer = await auth_service.create_user(db, "dr-walk", PASSWORD, ["referrer"])
    other = await post(client, "/api/patients", {"full_name": "Vũ Văn Khác", "phones": [{"number": "0912000702"}]},
                       staff.headers("supervisor"))
    made = await accounts.create_account(db, other["patient"]["id"], template="{password}", link="/me", by=None)
    assert made is not None
    async with db.transaction() as s:
        await s.execute(update(PatientAccount).values(must_change_password=False))
    patient = await auth_service.user_by_name(db, made["username"])
    assert patient is not None
    _, display = await auth_service.create_display_token(db, "walk screen")
    bearer = {"referrer": await auth_service.create_api_token(db, referrer.id, "walk"),
              "patient": await auth_service.create_api_token(db, patient.id, "walk"), "display": display}
    return {**{who: staff.headers(who) for who in ("agent", "reception", "doctor")},
            **{who: {"Authorization": f"Bearer {token}"} for who, token in bearer.items()}, "anonymous": {}}


def urls(path: str, seeded: dict[str, Any], staff: Staff) -> list[str]:
    """The path with the hidden patient's objects in it: {id} is tried as each kind of id."""
    values = {"user_id": str(staff.ids["agent2"]), "token": seeded["token"], "kind": "new", "section": "users",
              "decision": "approve", "operation": "recall", "campaign_id": "1", "token_id": "1", "phone_id": "1",
              "name": "0" * 64, "filename": "x.css"}
    ids = [seeded["patient_id"], seeded["file_id"], seeded["ticket_id"]] if "{id}" in path else [0]
    return sorted({re.sub(r"{(\w+)}", lambda m, i=i: str(i) if m.group(1) == "id" else values[m.group(1)], path)
                   for i in ids})


async def test_no_route_shows_a_patient_to_those_who_may_not_see_them(client: TestClient, staff: Staff) -> None:
    seeded = await hidden_patient(client, staff)
    who = await outsiders(client, staff)
    spec = await (await client.get("/api/openapi.json")).json()
    queries = {"patient_id": str(seeded["patient_id"]), "patient_ids": str(seeded["patient_id"]), "q": "Bí Mật",
               "number": PHONE, "date": seeded["day"], "agent_id": str(staff.ids["agent2"]), "all": "1",
               "from": seeded["day"], "to": seeded["day"]}

    async def leak(url: str, role: str, params: dict[str, str]) -> str | None:
        response = await client.get(url, params=params, headers={**who[role], "Accept": "application/json"},
                                    allow_redirects=False)
        body = await response.text()
        told = PHONE in params.values()  # the caller's own input echoed back is no leak
        if any(secret in body for secret in SECRETS if not (told and secret == SECRETS[1])):
            return f"GET {url} {params or ''} as {role}: {response.status}"
        return None

    requests = []
    for path, operations in sorted(spec["paths"].items()):
        operation = operations.get("get")
        if operation is None or path.startswith(SKIPPED):
            continue
        names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query" and p["name"] in queries]
        variants = [{}, *({name: queries[name]} for name in names)]
        requests += [(url, role, params) for url in urls(path, seeded, staff) for role in who for params in variants]
    assert len(requests) > 300
    leaks = [found for found in await asyncio.gather(*(leak(*r) for r in requests)) if found]
    assert not leaks, "\n".join(leaks)
