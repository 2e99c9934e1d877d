"""Round trips that cannot lose anyone (SQLite and PostgreSQL): a transfer takes a number of its new
service (no UNIQUE clash), the patient comes back to the same doctor with their own number, the
status page says where they go back to, the doctor's room keeps them while it is open and for
queue.return_hold_minutes, and a restored no-show goes back where it stood."""

from __future__ import annotations

import datetime as dt

from clinicall.db import utcnow
from clinicall.keys import DB_KEY, SETTINGS_KEY
from queue_display import service
from tests.conftest import db_url_on_both_for
from tests.queue_display.conftest import Clinic

db_url = db_url_on_both_for("test_a_transfer_takes_a_number_of_its_new_service_and_comes_back_with_its_own")


async def send_to_lab(clinic: Clinic, room: str) -> dict:  # type: ignore[type-arg]
    """A patient called into `room`, examined, and sent to the lab with the page's defaults."""
    patient = await clinic.issue("A")
    called = await clinic.call_next(room)
    assert called is not None and called["id"] == patient["id"]
    await clinic.op(patient["id"], "start")
    data = await clinic.op(patient["id"], "transfer", {"service_id": clinic.services["B"]})  # return is the default
    return {**data["ticket"], "first_number": patient["number"]}


async def test_a_transfer_takes_a_number_of_its_new_service_and_comes_back_with_its_own(clinic: Clinic) -> None:
    lab_walk_ins = [await clinic.issue("B") for _ in range(2)]  # B001, B002 already given today
    moved = await send_to_lab(clinic, "consult2")
    assert moved["number"] == "B003" and moved["service_prefix"] == "B"
    assert moved["back_to"]["room"]["name"] == "Phòng khám số 2" and moved["back_to"]["now"] is False
    token = moved["status_url"].rsplit("/", 1)[1]
    status = await (await clinic.client.get(f"/api/t/{token}")).json()
    assert status["number"] == "B003" and status["status"] == "waiting"
    assert status["back_to"]["room"]["number"] == 2 and status["back_to"]["now"] is False
    # the lab serves its own line, then the patient; done there is not done: back to the doctor
    for walk_in in lab_walk_ins:
        assert (await clinic.call_next("lab1"))["id"] == walk_in["id"]  # type: ignore[index]
    assert (await clinic.call_next("lab1"))["id"] == moved["id"]  # type: ignore[index]
    back = (await clinic.op(moved["id"], "done"))["ticket"]
    assert back["status"] == "waiting" and back["number"] == "A001" and back["returning"]
    status = await (await clinic.client.get(f"/api/t/{token}")).json()
    assert status["status"] == "waiting" and status["number"] == "A001"
    assert status["back_to"]["room"]["number"] == 2 and status["back_to"]["now"] is True
    # a second round trip from the same service clashes with nothing either
    again = await send_to_lab(clinic, "consult1")
    assert again["number"] == "B004"
    numbers = [t["number"] for t in (await clinic.get("/api/tickets"))["tickets"]]
    assert len(numbers) == len(set(numbers))


async def test_the_doctors_room_keeps_its_patient_until_it_closes(clinic: Clinic) -> None:
    moved = await send_to_lab(clinic, "consult2")
    await clinic.call_next("lab1")
    await clinic.op(moved["id"], "done")
    walk_in = await clinic.issue("A")
    assert (await clinic.call_next("consult1"))["id"] == walk_in["id"]  # type: ignore[index]
    assert await clinic.call_next("consult1") is None  # nobody for room 1: the returning patient is room 2's
    queue = await clinic.get("/api/queue")
    room1 = next(r for r in queue["rooms"] if r["id"] == clinic.rooms["consult1"])
    assert room1["next"] == []
    # doctor 2 goes home: the patient is not stranded, room 1 may call them now
    await clinic.client.patch(f"/api/rooms/{clinic.rooms['consult2']}", json={"open": False},
                              headers=clinic.staff.headers("doctor"))
    called = await clinic.call_next("consult1")
    assert called is not None and called["id"] == moved["id"]


async def test_the_doctors_room_keeps_its_patient_for_the_hold_time(clinic: Clinic) -> None:
    moved = await send_to_lab(clinic, "consult2")
    await clinic.call_next("lab1")
    await clinic.op(moved["id"], "done")
    db, settings = clinic.client.app[DB_KEY], clinic.client.app[SETTINGS_KEY]  # type: ignore[index]
    hold = dt.timedelta(minutes=settings.queue.return_hold_minutes)
    soon = await service.call_next(db, settings, clinic.rooms["consult1"], now=utcnow() + hold / 2)
    assert soon is None  # doctor 2 is busy, but within the hold time the patient waits for them
    later = await service.call_next(db, settings, clinic.rooms["consult1"], now=utcnow() + hold + dt.timedelta(minutes=1))
    assert later is not None and later.ticket_id == moved["id"]


async def test_the_lab_may_send_the_patient_on_and_they_still_end_with_their_doctor(clinic: Clinic) -> None:
    moved = await send_to_lab(clinic, "consult2")
    await clinic.call_next("lab1")
    # the lab sends them on to ultrasound (with the page's defaults): the way back to doctor 2 is kept
    onward = (await clinic.op(moved["id"], "transfer", {"service_id": clinic.services["C"]}))["ticket"]
    assert onward["number"] == "C001" and onward["back_to"]["room"]["number"] == 2
    called = await clinic.call_next("consult2")  # consult2 also serves C
    assert called is not None and called["id"] == moved["id"]
    back = (await clinic.op(moved["id"], "done"))["ticket"]
    assert back["number"] == "A001" and back["service_id"] == clinic.services["A"] and back["returning"]
    # and the lab may also send the patient straight back to the doctor's service: that is the return
    second = await send_to_lab(clinic, "consult1")
    await clinic.call_next("lab1")
    back = (await clinic.op(second["id"], "transfer", {"service_id": clinic.services["A"], "return_to_room": False}))
    assert back["ticket"]["returning"] and back["ticket"]["back_to"]["room"]["number"] == 1
    assert back["ticket"]["number"] == second["first_number"]


async def test_without_return_the_patient_leaves_for_good(clinic: Clinic) -> None:
    patient = await clinic.issue("A")
    await clinic.call_next("consult1")
    moved = (await clinic.op(patient["id"], "transfer", {"service_id": clinic.services["B"],
                                                          "return_to_room": False}))["ticket"]
    assert moved["back_to"] is None
    await clinic.call_next("lab1")
    assert (await clinic.op(patient["id"], "done"))["ticket"]["status"] == "done"


async def test_a_restored_no_show_goes_back_where_it_stood(clinic: Clinic) -> None:
    first = await clinic.issue("A")
    others = [await clinic.issue("A") for _ in range(3)]
    assert (await clinic.call_next("consult1"))["id"] == first["id"]  # type: ignore[index]
    for _ in range(3):
        await clinic.op(first["id"], "recall")
    assert (await clinic.op(first["id"], "skip"))["ticket"]["status"] == "noshow"
    assert (await clinic.call_next("consult1"))["id"] == others[0]["id"]  # type: ignore[index]
    restored = (await clinic.op(first["id"], "restore"))["ticket"]
    assert restored["status"] == "waiting" and restored["position"] == 1  # not behind the two still waiting
    assert (await clinic.call_next("consult1"))["id"] == first["id"]  # type: ignore[index]
