"""Rules that do not depend on the database: opening hours at the kiosk, closed rooms, rooms that
do not serve a service, the roles allowed to change rooms, a transfer with no way back."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from queue_display.models import RoomStateChange
from tests.conftest import Staff
from tests.queue_display.conftest import build_clinic


async def test_hours_closed_rooms_and_wrong_rooms(aiohttp_client: Any, sqlite_url: str, make_settings: Any) -> None:
    settings = make_settings(sqlite_url, queue={"kiosk_tickets_per_minute": 3})
    client: TestClient = await aiohttp_client(create_app(settings))
    db = client.app[DB_KEY]  # type: ignore[index]
    tokens, ids = {}, {}
    for name, roles in (("admin", ["admin"]), ("reception", ["reception"]), ("doctor", ["doctor"])):
        user = await auth_service.create_user(db, name, "correct-horse-battery", roles)
        ids[name], tokens[name] = user.id, await auth_service.create_api_token(db, user.id, "t")
    clinic = await build_clinic(client, Staff(tokens, ids))

    # the kiosk refuses a service outside its opening hours; reception may still issue
    local = dt.datetime.now(dt.UTC).astimezone(settings.clinic.zone())
    closed_day = (local.weekday() + 1) % 7
    await clinic.client.patch(f"/api/services/{clinic.services['C']}", json={"open_days": [closed_day]},
                              headers=clinic.staff.headers("admin"))
    response = await client.post("/api/kiosk/tickets", json={"service_id": clinic.services["C"]})
    assert response.status == 409 and "closed" in (await response.json())["detail"]
    ticket = await clinic.issue("C")
    bad = await client.patch(f"/api/services/{clinic.services['C']}", json={"opens_at": "18:00", "closes_at": "08:00"},
                             headers=clinic.staff.headers("admin"))
    assert bad.status == 422

    # a room that does not serve C cannot call it; a closed room calls nobody
    wrong = await client.post(f"/api/tickets/{ticket['id']}/call", json={"room_id": clinic.rooms["consult1"]},
                              headers=clinic.staff.headers("doctor"))
    assert wrong.status == 409
    closed = await client.patch(f"/api/rooms/{clinic.rooms['consult2']}", json={"open": False},
                                headers=clinic.staff.headers("doctor"))
    assert closed.status == 200 and (await closed.json())["room"]["open"] is False
    refused = await client.post(f"/api/rooms/{clinic.rooms['consult2']}/call-next", headers=clinic.staff.headers("doctor"))
    assert refused.status == 409
    renumber = await client.patch(f"/api/rooms/{clinic.rooms['consult2']}", json={"number": 7},
                                  headers=clinic.staff.headers("doctor"))
    assert renumber.status == 403
    await client.patch(f"/api/rooms/{clinic.rooms['consult2']}", json={"open": True}, headers=clinic.staff.headers("doctor"))
    async with db.session() as s:
        changes = (await s.scalars(select(RoomStateChange).where(RoomStateChange.room_id == clinic.rooms["consult2"])
                                   .order_by(RoomStateChange.id))).all()
    assert [(c.open, c.user_id) for c in changes] == [(False, ids["doctor"]), (True, ids["doctor"])]
    called = await clinic.call_next("consult2")
    assert called and called["id"] == ticket["id"]
    empty = await clinic.post(f"/api/rooms/{clinic.rooms['consult2']}/call-next", who="doctor")
    assert empty["ticket"] is None and [t["id"] for t in empty["finished"]] == [ticket["id"]]

    # a transfer with no way back stays in the new service once done there
    walk_in = await clinic.issue("A")
    await clinic.call_next("consult1")
    moved = (await clinic.op(walk_in["id"], "transfer", {"service_id": clinic.services["B"], "return_to_room": False}))["ticket"]
    assert moved["return_service_id"] is None
    await clinic.call_next("lab1")
    done = (await clinic.op(walk_in["id"], "done"))["ticket"]
    assert done["status"] == "done" and done["service_id"] == clinic.services["B"]
    unknown = await client.post(f"/api/tickets/{walk_in['id']}/transfer", json={"service_id": 9999},
                                headers=clinic.staff.headers("doctor"))
    assert unknown.status in (404, 409)

    # the public kiosk is rate limited per client address
    statuses = [(await client.post("/api/kiosk/tickets", json={"service_id": clinic.services["A"]})).status
                for _ in range(4)]
    assert statuses == [201, 201, 429, 429]  # 3 a minute; the refused try at the closed service counted
