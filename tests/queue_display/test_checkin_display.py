"""Check-in of an expected patient (crm_bridge), duplicates refused, and what screens see: masked
names only, filtered by rooms and services, display tokens limited to their rooms."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from tests.conftest import Staff
from tests.queue_display.conftest import build_clinic


async def test_checkin_masks_names_on_screens(aiohttp_client: Any, sqlite_url: str, make_settings: Any) -> None:
    from crm_bridge import service as crm

    client: TestClient = await aiohttp_client(create_app(make_settings(sqlite_url, display={"name_mask": "initials"})))
    db = client.app[DB_KEY]  # type: ignore[index]
    tokens, ids = {}, {}
    for name, roles in (("admin", ["admin"]), ("reception", ["reception"]), ("doctor", ["doctor"])):
        user = await auth_service.create_user(db, name, "correct-horse-battery", roles)
        ids[name], tokens[name] = user.id, await auth_service.create_api_token(db, user.id, "t")
    staff = Staff(tokens, ids)
    clinic = await build_clinic(client, staff)
    response = await client.post("/api/patients", json={"full_name": "Nguyễn Văn An"}, headers=staff.headers("admin"))
    assert response.status == 201, await response.text()
    body = await response.json()
    patient_id = (body.get("patient") or body)["id"]
    today = dt.datetime.now(dt.UTC).astimezone(make_settings(sqlite_url).clinic.zone()).date()
    await crm.add_care_note(db, patient_id=patient_id, author_id=ids["admin"], arrival_date=today, booking_date=today)

    data = await clinic.post("/api/checkins", {"patient_id": patient_id, "service_id": clinic.services["A"]}, status=201)
    ticket = data["ticket"]
    assert ticket["priority"] == "booked" and ticket["source"] == "checkin" and data["booked"] is True
    assert ticket["patient_id"] == patient_id and ticket["masked_name"] == "Nguyễn V. A."
    again = await client.post("/api/checkins", json={"patient_id": patient_id, "service_id": clinic.services["A"]},
                              headers=staff.headers("reception"))
    assert again.status == 409 and "already holds ticket A001" in (await again.json())["detail"]
    missing = await client.post("/api/checkins", json={"patient_id": 987654, "service_id": clinic.services["A"]},
                                headers=staff.headers("reception"))
    assert missing.status == 404
    # a patient reception may not open (not booked or expected yesterday..tomorrow) gets no ticket in their name
    response = await client.post("/api/patients", json={"full_name": "Trần Thị Xa"}, headers=staff.headers("admin"))
    other_id = (await response.json())["patient"]["id"]
    for path, body in (("/api/checkins", {"patient_id": other_id, "service_id": clinic.services["A"]}),
                       ("/api/tickets", {"patient_id": other_id, "service_id": clinic.services["A"]})):
        refused = await client.post(path, json=body, headers=staff.headers("reception"))
        assert refused.status == 403 and (await refused.json())["code"] == "not_your_patient"

    listed = await clinic.get(f"/api/tickets?patient_ids={patient_id},999&date={today.isoformat()}")
    assert [(t["number"], t["patient_id"]) for t in listed["tickets"]] == [("A001", patient_id)]
    assert listed["tickets"][0]["position"] == 1
    assert (await clinic.get("/api/tickets?patient_ids=1,x", status=422))["detail"]
    assert (await clinic.get("/api/tickets?date=tomorrow", status=422))["detail"]
    assert (await clinic.get("/api/tickets?date=2020-01-01", who="admin"))["tickets"] == []
    assert (await clinic.get("/api/tickets?date=2020-01-01", status=403))["code"] == "date_outside_window"

    snapshot = await clinic.get("/api/display/snapshot", who="doctor")
    text = str(snapshot)
    assert "Nguyễn V. A." in text and "Nguyễn Văn An" not in text and "patient_id" not in text
    line = next(s for s in snapshot["services"] if s["prefix"] == "A")
    assert line["waiting_count"] == 1 and line["waiting"][0]["number"] == "A001"
    assert line["waiting"][0]["estimated_wait_seconds"] is not None

    # a display token for room consult1 sees that room and its services only, and nothing else
    _token_id, token = await auth_service.create_display_token(db, "tv", room_ids=[clinic.rooms["consult1"]])
    screen = await client.get(f"/api/display/snapshot?token={token}")
    assert screen.status == 200
    data = await screen.json()
    assert [r["id"] for r in data["rooms"]] == [clinic.rooms["consult1"]]
    assert [s["prefix"] for s in data["services"]] == ["A"]
    other = await client.get(f"/api/display/snapshot?token={token}&rooms={clinic.rooms['lab1']}")
    assert other.status == 403
    assert (await client.get(f"/api/queue?token={token}")).status in (401, 403)
    called = await clinic.call_next("consult1")
    assert called and called["masked_name"] == "Nguyễn V. A."
    door = await (await client.get(f"/api/display/snapshot?token={token}")).json()
    assert door["rooms"][0]["current"]["number"] == "A001"
    assert door["recent_calls"][0]["number"] == "A001"


async def test_name_mask_none_shows_no_name(clinic: Any) -> None:
    response = await clinic.client.post("/api/patients", json={"full_name": "Trần Thị Bình"},
                                        headers=clinic.staff.headers("admin"))
    body = await response.json()
    patient_id = (body.get("patient") or body)["id"]
    ticket = await clinic.issue("A", who="admin", patient_id=patient_id)  # not booked: reception may not
    assert ticket["masked_name"] is None and ticket["patient_id"] == patient_id
    snapshot = await clinic.get("/api/display/snapshot", who="doctor")
    assert "Trần" not in str(snapshot)
