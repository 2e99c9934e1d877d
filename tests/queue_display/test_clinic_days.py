"""What scripted clinic days found (SQLite and PostgreSQL): a room that starts late or closes for lunch says so
with a stable code, and a patient at the lab while their doctor's room is closed is not sent back to that closed
door; tickets left from yesterday never share a number with today's; the kiosk refuses a closed service with a
code its page translates."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from clinicall.db import utcnow
from clinicall.keys import DB_KEY, SETTINGS_KEY
from queue_display import tickets
from queue_display.runtime import RUNTIME_KEY
from queue_display.tokens import get_ticket
from tests.queue_display.conftest import Clinic


async def set_open(clinic: Clinic, room: str, open: bool) -> None:
    response = await clinic.client.patch(f"/api/rooms/{clinic.rooms[room]}", json={"open": open},
                                         headers=clinic.staff.headers("doctor"))
    assert response.status == 200, await response.text()


async def status_page(clinic: Clinic, ticket: dict[str, Any]) -> dict[str, Any]:
    token = ticket["status_url"].rsplit("/", 1)[1]
    return await (await clinic.client.get(f"/api/t/{token}")).json()  # type: ignore[no-any-return]


async def test_a_closed_room_says_so_and_is_not_named_as_the_way_back(clinic: Clinic) -> None:
    await set_open(clinic, "consult1", False)  # the doctor starts late
    response = await clinic.client.post(f"/api/rooms/{clinic.rooms['consult1']}/call-next",
                                        headers=clinic.staff.headers("doctor"))
    assert response.status == 409 and (await response.json())["code"] == "room_closed"
    await set_open(clinic, "consult1", True)
    patient = await clinic.issue("A")
    await clinic.call_next("consult1")
    at_lab = (await clinic.op(patient["id"], "transfer", {"service_id": clinic.services["B"]}))["ticket"]
    assert at_lab["back_to"]["room"]["number"] == 1
    await set_open(clinic, "consult1", False)  # lunch while the patient is at the lab
    page = await status_page(clinic, at_lab)
    assert page["back_to"]["room"] is None and page["back_to"]["service_name"] == "Khám tổng quát"
    await clinic.call_next("lab1")
    back = (await clinic.op(patient["id"], "done"))["ticket"]
    assert back["number"] == patient["number"] and back["back_to"]["room"] is None  # any room of the service
    await set_open(clinic, "consult1", True)  # back from lunch before anyone called them: their doctor again
    assert (await status_page(clinic, back))["back_to"]["room"]["number"] == 1
    assert await clinic.call_next("consult2") is None
    assert (await clinic.call_next("consult1"))["id"] == patient["id"]  # type: ignore[index]
    # the lab is past its hours and its room is closed: the doctor cannot send the patient to wait for nobody
    weekday = dt.datetime.now(clinic.client.app[SETTINGS_KEY].clinic.zone()).weekday()  # type: ignore[index]
    await clinic.client.patch(f"/api/services/{clinic.services['B']}", headers=clinic.staff.headers("admin"),
                              json={"open_days": [d for d in range(7) if d != weekday]})
    await set_open(clinic, "lab1", False)
    refused = await clinic.op(patient["id"], "transfer", {"service_id": clinic.services["B"]}, status=409)
    assert refused["code"] == "transfer_target_closed"
    assert (await clinic.get(f"/api/tickets/{patient['id']}"))["ticket"]["status"] == "called"  # still with the doctor
    await set_open(clinic, "lab1", True)  # a lab room working late takes them
    assert (await clinic.op(patient["id"], "transfer", {"service_id": clinic.services["B"]}))["ticket"]["status"] == "waiting"


async def test_numbers_never_repeat_across_the_day_rollover_and_the_kiosk_says_closed(clinic: Clinic) -> None:
    app = clinic.client.app
    db, settings, runtime = app[DB_KEY], app[SETTINGS_KEY], app[RUNTIME_KEY]  # type: ignore[index]
    yesterday = utcnow() - dt.timedelta(days=1)
    left = [await runtime.apply(await tickets.issue(db, settings, service_id=clinic.services[prefix],
                                                    source="reception", now=yesterday)) for prefix in "AAB"]
    assert [t["number"] for t in left] == ["A001", "A002", "B001"]  # still waiting when the day rolled over
    today = [await clinic.issue("A") for _ in range(2)]
    assert [t["number"] for t in today] == ["A003", "A004"]
    await clinic.call_next("consult1")  # yesterday's A001 first: it has waited longest
    assert (await clinic.op(left[0]["id"], "done"))["ticket"]["status"] == "done"
    called = await clinic.call_next("consult1")
    assert called is not None and called["id"] == left[1]["id"]
    moved = (await clinic.op(called["id"], "transfer", {"service_id": clinic.services["B"]}))["ticket"]
    assert moved["number"] == "B002"  # yesterday's counter, past yesterday's B001 still waiting
    to_lab = await clinic.call_next("consult2")
    assert to_lab is not None and to_lab["id"] == today[0]["id"]
    # today's counter, past both numbers yesterday's tickets still hold in the lab's line
    assert (await clinic.op(to_lab["id"], "transfer", {"service_id": clinic.services["B"]}))["ticket"]["number"] == "B003"
    numbers = [t["number"] for s in (await clinic.get("/api/queue"))["services"] for t in s["waiting"]]
    assert sorted(numbers) == ["A004", "B001", "B002", "B003"]

    weekday = dt.datetime.now(settings.clinic.zone()).weekday()
    await clinic.client.patch(f"/api/services/{clinic.services['C']}", headers=clinic.staff.headers("admin"),
                              json={"open_days": [d for d in range(7) if d != weekday]})
    refused = await clinic.client.post("/api/kiosk/tickets", json={"service_id": clinic.services["C"]})
    assert refused.status == 409 and (await refused.json())["code"] == "service_closed"
    listed = {s["prefix"]: s for s in (await (await clinic.client.get("/kiosk/services")).json())["services"]}
    assert listed["C"]["open"] is False and (listed["C"]["opens_at"], listed["C"]["closes_at"]) == ("00:00", "24:00")


async def test_the_past_days_leftovers_expire_and_todays_line_starts_clean(clinic: Clinic) -> None:
    app = clinic.client.app
    db, settings, runtime = app[DB_KEY], app[SETTINGS_KEY], app[RUNTIME_KEY]  # type: ignore[index]
    yesterday = utcnow() - dt.timedelta(days=1)
    left = [await runtime.apply(await tickets.issue(db, settings, service_id=clinic.services["A"],
                                                    source="reception", now=yesterday)) for _ in range(3)]
    await clinic.op(left[1]["id"], "hold")
    in_room = await clinic.call_next("consult1")  # yesterday's first: still with its room after midnight
    assert in_room is not None and in_room["id"] == left[0]["id"]
    today = await clinic.issue("A")

    assert await runtime.expire_past_days() == 2
    assert await runtime.expire_past_days() == 0  # once
    line = next(s for s in (await clinic.get("/api/queue"))["services"] if s["id"] == clinic.services["A"])
    assert [t["id"] for t in line["waiting"]] == [today["id"]]
    day = tickets.local_day(yesterday, settings)
    statuses = {t["id"]: t["status"] for t in (await clinic.get(f"/api/tickets?date={day}"))["tickets"]}
    assert (statuses[left[0]["id"]], statuses[left[1]["id"]], statuses[left[2]["id"]]) == ("called", "expired", "expired")
    token = (await get_ticket(db, left[2]["id"])).token
    assert (await (await clinic.client.get(f"/api/t/{token}")).json())["status"] == "expired"  # the patient's page
    # yesterday's patient still in the room is skipped after midnight: on today's set-aside list (the room page's)
    await clinic.op(in_room["id"], "skip")
    listed = {t["id"]: t["status"] for t in (await clinic.get(f"/api/tickets?service_id={clinic.services['A']}"))["tickets"]}
    assert listed == {today["id"]: "waiting", in_room["id"]: "skipped"}
    assert (await clinic.op(in_room["id"], "restore"))["ticket"]["status"] == "waiting"
    again = await clinic.call_next("consult1")  # back where it stood: before today's
    assert again is not None and again["id"] == in_room["id"]
    called = await clinic.call_next("consult1")  # finishes yesterday's patient in the room, calls today's
    assert called is not None and called["id"] == today["id"]
    assert (seconds := tickets.seconds_to_next_day(utcnow(), settings)) > 0 and seconds <= 24 * 3600 + 3600


async def test_two_desks_checking_in_one_patient_at_once_give_one_ticket(clinic: Clinic) -> None:
    from crm_bridge import service as crm

    app = clinic.client.app
    db, settings = app[DB_KEY], app[SETTINGS_KEY]  # type: ignore[index]
    made = await clinic.post("/api/patients", {"full_name": "Lê Văn Hai"}, who="admin", status=201)
    patient_id = (made.get("patient") or made)["id"]
    today = tickets.local_day(utcnow(), settings)
    await crm.add_care_note(db, patient_id=patient_id, author_id=clinic.staff.ids["admin"], arrival_date=today,
                            booking_date=today)
    body = {"patient_id": patient_id, "service_id": clinic.services["A"]}
    answers = await asyncio.gather(*(clinic.client.post(path, json=body, headers=clinic.staff.headers("reception"))
                                     for path in ("/api/checkins", "/api/checkins", "/api/tickets")))
    assert sorted(answer.status for answer in answers) == [201, 409, 409]
    held = [t for t in (await clinic.get(f"/api/tickets?patient_ids={patient_id}"))["tickets"]]
    assert len(held) == 1


async def test_a_room_that_stops_serving_a_service_lets_its_returning_patients_go(clinic: Clinic) -> None:
    first, second = await clinic.issue("A"), await clinic.issue("A")
    for patient in (first, second):
        await clinic.call_next("consult1")
        await clinic.op(patient["id"], "transfer", {"service_id": clinic.services["B"]})  # back to consult 1
    await clinic.call_next("lab1")
    back = (await clinic.op(first["id"], "done"))["ticket"]  # waiting for consult 1 again
    assert back["back_to"]["room"]["number"] == 1
    response = await clinic.client.patch(f"/api/rooms/{clinic.rooms['consult1']}", json={"service_ids": [clinic.services["C"]]},
                                         headers=clinic.staff.headers("admin"))  # its doctor does ultrasound now
    assert response.status == 200, await response.text()
    assert (await status_page(clinic, back))["back_to"]["room"] is None  # "back to Khám tổng quát": any room
    at_lab = await clinic.get(f"/api/tickets/{second['id']}")
    assert at_lab["ticket"]["return_room_id"] is None and at_lab["ticket"]["return_service_id"] == clinic.services["A"]
    called = await clinic.call_next("consult2")  # not left waiting for a room that cannot call them
    assert called is not None and called["id"] == first["id"]
