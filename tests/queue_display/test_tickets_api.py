"""Tickets through the HTTP API on SQLite and PostgreSQL: issue, call-next, recall, skip, no-show,
restore, hold, transfer to the lab and back to the same doctor, done; events on the bus."""

from __future__ import annotations

from typing import Any

from clinicall.bus import Event
from clinicall.keys import BUS_KEY
from tests.conftest import db_url_on_both_for
from tests.queue_display.conftest import Clinic

db_url = db_url_on_both_for("test_issue_numbers_and_call_next_in_priority_order", "test_transfer_to_lab_and_back_to_the_same_doctor")


def collect(clinic: Clinic) -> list[Event]:
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    clinic.client.app[BUS_KEY].subscribe("*", handler)  # type: ignore[index]
    return seen


async def drain(clinic: Clinic) -> None:
    await clinic.client.app[BUS_KEY].drain()  # type: ignore[index]


async def test_issue_numbers_and_call_next_in_priority_order(clinic: Clinic) -> None:
    events = collect(clinic)
    a1 = await clinic.issue("A")
    a2 = await clinic.issue("A")
    b1 = await clinic.issue("B")
    a3 = await clinic.issue("A", "elderly")
    assert (a1["number"], a2["number"], b1["number"], a3["number"]) == ("A001", "A002", "B001", "A003")
    assert a1["status"] == "waiting" and a1["status_url"].endswith(a1["status_url"].rsplit("/", 1)[1])
    assert a1["position"] == 1 and a1["estimated_wait_seconds"] is not None

    called = await clinic.call_next("consult1")
    assert called is not None and called["number"] == "A003"  # elderly head start
    assert called["status"] == "called" and called["room"]["id"] == clinic.rooms["consult1"]
    assert called["room"]["name"] == "Phòng khám số 1" and called["called_at"]
    queue = await clinic.get("/api/queue")
    line = next(s for s in queue["services"] if s["prefix"] == "A")["waiting"]
    assert [t["number"] for t in line] == ["A001", "A002"] and [t["position"] for t in line] == [1, 2]

    # call-next again finishes the room's current ticket and calls the next
    second = await clinic.call_next("consult1")
    assert second is not None and second["number"] == "A001"
    first = await clinic.get(f"/api/tickets/{called['id']}")
    assert first["ticket"]["status"] == "done" and first["ticket"]["done_at"]
    await drain(clinic)
    types = [e.type for e in events]
    assert types.count("ticket.issued") == 4 and types.count("ticket.called") == 2 and "ticket.done" in types
    changed = [e for e in events if e.type == "queue.changed"]
    assert changed and {"service_id", "waiting", "at"} <= set(changed[-1].data)
    issued = next(e for e in events if e.type == "ticket.issued")
    expected = {"id", "number", "service_id", "service_name", "service_prefix", "status", "priority", "room",
                "masked_name", "estimated_wait_seconds", "position"}
    assert expected <= set(issued.data["ticket"]) and "at" in issued.data
    assert "patient_id" not in issued.data["ticket"]


async def test_recall_skip_noshow_and_restore(clinic: Clinic) -> None:
    ticket = await clinic.issue("A")
    called = await clinic.call_next("consult1")
    assert called and called["id"] == ticket["id"]
    for expected in (1, 2, 3):
        data = await clinic.op(ticket["id"], "recall")
        assert data["ticket"]["recall_count"] == expected and data["ticket"]["recalled_at"]
    data = await clinic.op(ticket["id"], "skip")  # settings: no-show after 3 recalls
    assert data["ticket"]["status"] == "noshow" and data["ticket"]["noshow_at"]
    await clinic.op(ticket["id"], "recall", status=409)
    data = await clinic.op(ticket["id"], "restore")
    assert data["ticket"]["status"] == "waiting" and data["ticket"]["restored_at"]
    again = await clinic.call_next("consult2")
    assert again and again["id"] == ticket["id"] and again["recall_count"] == 0
    data = await clinic.op(ticket["id"], "skip")  # fewer recalls: set aside, not a no-show
    assert data["ticket"]["status"] == "skipped"
    data = await clinic.op(ticket["id"], "call", {"room_id": clinic.rooms["consult1"]})
    assert data["ticket"]["status"] == "called"
    data = await clinic.op(ticket["id"], "start")
    assert data["ticket"]["status"] == "in_service" and data["ticket"]["started_at"]
    data = await clinic.op(ticket["id"], "done")
    assert data["ticket"]["status"] == "done"
    await clinic.op(ticket["id"], "done", status=409)


async def test_hold_resume_keeps_place(clinic: Clinic) -> None:
    first = await clinic.issue("A")
    second = await clinic.issue("A")
    await clinic.op(first["id"], "hold")
    called = await clinic.call_next("consult1")
    assert called and called["id"] == second["id"]
    await clinic.op(first["id"], "resume")
    await clinic.issue("A")
    called = await clinic.call_next("consult1")
    assert called and called["id"] == first["id"]


async def test_transfer_to_lab_and_back_to_the_same_doctor(clinic: Clinic) -> None:
    patient = await clinic.issue("A")
    others = [await clinic.issue("A") for _ in range(3)]
    assert (await clinic.call_next("consult2"))["id"] == patient["id"]  # type: ignore[index]
    await clinic.op(patient["id"], "start")
    data = await clinic.op(patient["id"], "transfer", {"service_id": clinic.services["B"], "return_to_room": True})
    moved = data["ticket"]
    assert moved["status"] == "waiting" and moved["service_id"] == clinic.services["B"]
    assert moved["number"] == "B001" and moved["return_room_id"] == clinic.rooms["consult2"]  # a lab number
    lab = await clinic.call_next("lab1")
    assert lab and lab["id"] == patient["id"]
    back = (await clinic.op(patient["id"], "done"))["ticket"]
    assert back["status"] == "waiting" and back["service_id"] == clinic.services["A"] and back["returning"]
    assert back["number"] == patient["number"]  # its own number again
    # another room does not take the returning patient; its own doctor does, before earlier tickets
    assert (await clinic.call_next("consult1"))["id"] == others[0]["id"]  # type: ignore[index]
    assert (await clinic.call_next("consult2"))["id"] == patient["id"]  # type: ignore[index]
    history = await clinic.get(f"/api/tickets/{patient['id']}")
    assert history["ticket"]["transferred_at"] and history["ticket"]["called_at"]


async def test_bad_input_is_a_clear_problem(clinic: Clinic) -> None:
    client, headers = clinic.client, clinic.staff.headers("reception")
    for body in ({}, {"service_id": "x"}, {"service_id": 999}, {"service_id": 1, "priority": "vip"}, [1]):
        response = await client.post("/api/tickets", json=body, headers=headers)
        assert 400 <= response.status < 500, body
        assert response.content_type == "application/problem+json"
        assert (await response.json())["detail"]
    response = await client.post("/api/tickets", data=b"{nope", headers={**headers, "Content-Type": "application/json"})
    assert response.status == 400
    for path in ("/api/tickets/abc/recall", "/api/tickets/99999/recall", "/api/rooms/99999/call-next"):
        response = await client.post(path, json={}, headers=clinic.staff.headers("doctor"))
        assert response.status == 404, path
    # roles: an agent may not call, reception may not create rooms
    response = await client.post(f"/api/rooms/{clinic.rooms['consult1']}/call-next", headers=clinic.staff.headers("agent"))
    assert response.status == 403
    response = await client.post("/api/rooms", json={"kind": "consult", "number": 9}, headers=headers)
    assert response.status == 403
    response = await client.post("/api/tickets", json={"service_id": clinic.services["A"]})
    assert response.status == 401
    await clinic.post("/api/services", {"prefix": "A", "names": {"vi": "Trùng"}}, who="admin", status=409)


async def test_delete_only_a_room_set_up_by_mistake(clinic: Clinic) -> None:
    client, admin = clinic.client, clinic.staff.headers("admin")
    mistake = (await clinic.post("/api/rooms", {"kind": "consult", "number": 8, "service_ids": [clinic.services["A"]]},
                                 who="admin", status=201))["room"]["id"]
    shown = (await clinic.post("/api/rooms", {"kind": "consult", "number": 9}, who="admin", status=201))["room"]["id"]
    await clinic.post("/api/display-tokens", {"name": "Cửa 9", "room_ids": [shown]}, who="admin", status=201)
    response = await client.delete(f"/api/rooms/{mistake}", headers=clinic.staff.headers("reception"))
    assert response.status == 403
    response = await client.delete(f"/api/rooms/{mistake}", headers=admin)
    assert response.status == 204
    assert mistake not in [r["id"] for r in (await clinic.get("/api/rooms"))["rooms"]]
    response = await client.delete(f"/api/rooms/{shown}", headers=admin)
    assert response.status == 409 and (await response.json())["code"] == "room_on_display_token"
    await clinic.post("/api/tickets", {"service_id": clinic.services["A"]}, status=201)
    await clinic.call_next("consult1")
    response = await client.delete(f"/api/rooms/{clinic.rooms['consult1']}", headers=admin)
    assert response.status == 409 and (await response.json())["code"] == "room_has_history"
    response = await client.delete("/api/rooms/99999", headers=admin)
    assert response.status == 404


async def test_reprint_a_slip_keeps_the_number_and_its_history(clinic: Clinic) -> None:
    from sqlalchemy import select

    from clinicall.keys import DB_KEY
    from queue_display.models import TicketEvent

    ticket = (await clinic.post("/api/tickets", {"service_id": clinic.services["A"]}, status=201))["ticket"]
    await clinic.post(f"/api/tickets/{ticket['id']}/slip", who="doctor", status=403)
    for copy in (1, 2):
        slip = await clinic.post(f"/api/tickets/{ticket['id']}/slip", status=200)
        assert (slip["ticket"]["number"], slip["printed"]) == (ticket["number"], copy)
    async with clinic.client.app[DB_KEY].session() as s:  # type: ignore[index]
        users = (await s.scalars(select(TicketEvent.user_id).where(TicketEvent.type == "ticket.slip_printed"))).all()
    assert users == [clinic.staff.ids["reception"]] * 2
    called = await clinic.call_next("consult1")
    assert called is not None
    await clinic.op(called["id"], "done")
    problem = await clinic.post(f"/api/tickets/{ticket['id']}/slip", status=409)
    assert problem["code"] == "ticket_finished"


async def test_a_deadlock_victim_is_run_again(clinic: Clinic, monkeypatch: Any) -> None:
    """PostgreSQL rolls a deadlock's victim back whole: the call-next is run again, not answered with a 500
    (asyncpg's own error on the raw call-next path)."""
    from asyncpg.exceptions import DeadlockDetectedError

    from queue_display import service

    original, failures = service.call_next, [DeadlockDetectedError("deadlock detected")]

    async def once_a_victim(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await original(*args, **kwargs)

    monkeypatch.setattr(service, "call_next", once_a_victim)
    issued = (await clinic.post("/api/tickets", {"service_id": clinic.services["A"]}, status=201))["ticket"]
    called = await clinic.call_next("consult1")
    assert called is not None and called["id"] == issued["id"] and not failures


async def test_kiosk_ticket_status_page_and_qr(clinic: Clinic) -> None:
    client = clinic.client
    response = await client.post("/api/kiosk/tickets", json={"service_id": clinic.services["C"]})
    assert response.status == 201
    ticket: dict[str, Any] = (await response.json())["ticket"]
    assert ticket["number"] == "C001" and ticket["source"] == "kiosk"
    token = ticket["status_url"].rsplit("/", 1)[1]
    assert len(token) >= 20
    status = await (await client.get(f"/api/t/{token}")).json()
    assert status["number"] == "C001" and status["status"] == "waiting" and status["position"] == 1
    assert status["people_ahead"] == 0 and status["room"] is None and "patient_id" not in status
    page = await client.get(f"/t/{token}", headers={"Accept": "text/html"})
    assert page.status == 200 and "Số thứ tự" in await page.text()
    qr = await client.get(f"/t/{token}/qr.svg")
    assert qr.status == 200 and qr.content_type == "image/svg+xml" and b"<svg" in await qr.read()
    assert (await client.get("/api/t/not-a-real-token-at-all")).status == 404
    await clinic.call_next("consult2")
    status = await (await client.get(f"/api/t/{token}")).json()
    assert status["status"] == "called" and status["room"]["number"] == 2 and status["position"] is None
