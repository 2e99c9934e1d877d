"""The issue's scripted clinic morning against the real app on a real port: 3 consult rooms and a lab,
60 patients arriving over time through the kiosk, reception check-in and walk-in tickets, 10 lab round
trips, an emergency, a no-show that is restored. Most patients go through the API; consult room 1 is
worked through its page in Chromium for a sample of every kind (call next, recall, skip, transfer with
the page's defaults, restore). At the end: no patient lost (every ticket done or no-show, none left
waiting, held or in a room), every lab patient called back by their own doctor, each priority class
called sooner than walk-ins on average, no 5xx anywhere."""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from sqlalchemy import select

from clinicall.keys import DB_KEY, SETTINGS_KEY
from queue_display.models import Ticket, TicketEvent, Visit
from tests.browser import LiveServer

NewPage = Callable[..., Awaitable[Any]]
WALK_INS = ["elderly"] * 5 + ["pregnant"] * 4 + ["disabled"] * 3 + ["normal"] * 7
LAB_TRIPS = 10
EMERGENCY_ROUND = 7


class Morning:
    """The API side of the morning: every response's status is kept (no 5xx allowed)."""

    def __init__(self, server: LiveServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.statuses: list[tuple[int, str]] = []
        self.lab_patients: set[int] = set()

    async def call(self, method: str, path: str, who: str | None = "doctor", json: Any = None) -> Any:
        headers = self.server.headers(who) if who else {}
        async with self.http.request(method, self.server.base_url + path, json=json, headers=headers) as response:
            body = await response.json(content_type=None)
            self.statuses.append((response.status, f"{method} {path}"))
            assert response.status < 400, (method, path, response.status, body)
            return body

    async def arrive(self, source: str, priority: str, patient_id: int | None) -> dict[str, Any]:
        service_id = self.server.services["A"]
        if source == "kiosk":
            body = await self.call("POST", "/api/kiosk/tickets", None, {"service_id": service_id})
        elif source == "checkin":
            body = await self.call("POST", "/api/checkins", "reception", {"patient_id": patient_id, "service_id": service_id})
        else:
            body = await self.call("POST", "/api/tickets", "reception", {"service_id": service_id, "priority": priority})
        return body["ticket"]  # type: ignore[no-any-return]

    async def current(self, room_id: int) -> dict[str, Any] | None:
        queue = await self.call("GET", "/api/queue")
        return next(r for r in queue["rooms"] if r["id"] == room_id)["current"]  # type: ignore[no-any-return]

    async def call_next(self, room_id: int) -> dict[str, Any] | None:
        return (await self.call("POST", f"/api/rooms/{room_id}/call-next"))["ticket"]  # type: ignore[no-any-return]

    async def consult(self, room_id: int, send_to_lab: bool) -> dict[str, Any] | None:
        """The doctor finishes with (or sends to the lab) the current patient and calls the next."""
        current = await self.current(room_id) if send_to_lab and len(self.lab_patients) < LAB_TRIPS else None
        if current and not current["returning"]:
            await self.call("POST", f"/api/tickets/{current['id']}/transfer", json={"service_id": self.server.services["B"]})
            self.lab_patients.add(current["id"])
        return await self.call_next(room_id)

    async def open_tickets(self) -> list[dict[str, Any]]:
        tickets = (await self.call("GET", "/api/tickets"))["tickets"]
        return [t for t in tickets if t["status"] not in ("done", "noshow")]


class RoomPage:
    """Consult room 1 through its page: a key, then the page's answer."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def press(self, key: str, answer: str) -> None:
        await self.page.evaluate("document.getElementById('message').textContent = ''")
        await self.page.keyboard.press(key)
        await self.page.locator("#message").filter(has_text=answer).wait_for()

    async def number(self) -> str:
        return await self.page.locator("#current-number").inner_text()  # type: ignore[no-any-return]


async def booked_patients(server: LiveServer, count: int) -> list[int]:
    from crm_bridge import service as crm

    today = dt.datetime.now(server.app[SETTINGS_KEY].clinic.zone()).date()
    ids = []
    for n in range(count):
        made = await server.api("POST", "/api/patients", json={"full_name": f"Bệnh nhân hẹn {n + 1}"})
        ids.append(made["patient"]["id"])
        await crm.add_care_note(server.app[DB_KEY], patient_id=ids[-1], author_id=server.ids["admin"],
                                booking_date=today, arrival_date=today)
    return ids


def arrivals(patients: list[int]) -> list[tuple[str, str, int | None]]:
    """59 arrivals in a fixed, shuffled order: 20 kiosk, 20 check-ins (booked), 19 walk-ins; the emergency (60th)
    comes later, in round EMERGENCY_ROUND."""
    people: list[tuple[str, str, int | None]] = [("kiosk", "normal", None)] * 20
    people += [("checkin", "booked", patient) for patient in patients]
    people += [("reception", priority, None) for priority in WALK_INS]
    random.Random(10).shuffle(people)
    return people


async def page_round(morning: Morning, room: RoomPage, room_id: int, index: int) -> None:
    """Room 1's page in the first rounds: call next; send to the lab with the page's defaults; a no-show
    (recalled three times, then skipped); later its restore."""
    if index == 0:
        await room.press("n", ": đã gọi")
    elif index in (1, 3) and len(morning.lab_patients) < LAB_TRIPS:
        current = await morning.current(room_id)
        if current is not None and not current["returning"]:
            await room.page.keyboard.press("t")
            await room.press("Enter", "→ B")
            morning.lab_patients.add(current["id"])
        await room.press("n", ": đã gọi")
    elif index == 2:
        number = await room.number()
        for count in (1, 2, 3):
            await room.press("r", f"{number}: Gọi lại ({count})")
        await room.press("s", f"{number}: bỏ qua")
        await room.press("n", ": đã gọi")
    elif index == 5:
        await room.press("k", "đã khôi phục về chỗ cũ")
    else:
        await morning.consult(room_id, send_to_lab=index % 3 == 0)


async def test_the_scripted_morning_loses_nobody(live_server: LiveServer, new_page: NewPage) -> None:
    server = live_server
    A, C = server.services["A"], server.services["C"]
    await server.api("PATCH", f"/api/rooms/{server.rooms['consult:3']}", json={"service_ids": [A, C]})
    consult = [server.rooms[f"consult:{n}"] for n in (1, 2, 3)]
    lab = server.rooms["lab:1"]
    people = arrivals(await booked_patients(server, 20))

    page = await new_page("doctor")
    page_errors: list[str] = []
    page.on("response", lambda r: page_errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    await page.goto(server.url("/room", room=str(consult[0])))
    await page.wait_for_selector("body[data-ready='1']")
    room = RoomPage(page)

    async with aiohttp.ClientSession() as http:
        morning = Morning(server, http)
        issued: dict[int, dict[str, Any]] = {}
        emergency_id = None
        for index in range(40):
            for source, priority, patient in people[index * 4:index * 4 + 4]:
                ticket = await morning.arrive(source, priority, patient)
                issued[ticket["id"]] = ticket
            if index == EMERGENCY_ROUND:
                emergency = await morning.arrive("reception", "emergency", None)
                issued[emergency_id := emergency["id"]] = emergency
            for position, room_id in enumerate(consult[1:]):
                called = await morning.consult(room_id, send_to_lab=(index + position) % 3 == 0)
                if index == EMERGENCY_ROUND and position == 0:
                    assert called is not None and called["id"] == emergency_id  # before everyone else
            if index < 6:
                await page_round(morning, room, consult[0], index)
            else:
                await morning.consult(consult[0], send_to_lab=index % 3 == 0)
            await morning.call_next(lab)  # the lab's patient is done: back to the doctor
            if index * 4 >= len(people) and not await morning.open_tickets():
                break
        left = await morning.open_tickets()

    assert left == [], left  # nobody waiting, held, skipped or still in a room
    assert len(issued) == 60 and len(morning.lab_patients) == LAB_TRIPS
    assert [s for s in morning.statuses if s[0] >= 500] == [] and page_errors == []

    db = server.app[DB_KEY]
    async with db.session() as s:
        tickets = {t.id: t for t in (await s.scalars(select(Ticket))).all()}
        events = (await s.scalars(select(TicketEvent).order_by(TicketEvent.at, TicketEvent.id))).all()
        visits = (await s.scalars(select(Visit).order_by(Visit.id))).all()
    assert {t.status for t in tickets.values()} <= {"done", "noshow"}
    restored = [e.ticket_id for e in events if e.type == "ticket.restored"]
    assert len(restored) == 1 and tickets[restored[0]].status == "done"  # the no-show came back and was seen

    # every lab patient was called back by the doctor who sent them
    for ticket_id in morning.lab_patients:
        mine = [e for e in events if e.ticket_id == ticket_id]
        sent = next(e for e in mine if e.type == "ticket.transferred" and e.detail.get("return_to_room"))
        back = next(e for e in mine if e.type == "ticket.transferred" and e.detail.get("returning"))
        called_back = next(e for e in mine if e.type == "ticket.called" and e.at >= back.at)
        assert called_back.room_id == sent.detail["from_room_id"], (ticket_id, sent.detail, called_back.room_id)

    # each priority class was called sooner than walk-ins (first leg: arrival to first call)
    first_leg: dict[int, Visit] = {}
    for visit in visits:
        first_leg.setdefault(visit.ticket_id, visit)
    waits: dict[str, list[float]] = {}
    for ticket_id, visit in first_leg.items():
        assert visit.called_at is not None
        waits.setdefault(tickets[ticket_id].priority, []).append((visit.called_at - visit.enqueued_at).total_seconds())
    walk_in = statistics.mean(waits["normal"])
    for priority in ("emergency", "elderly", "pregnant", "disabled", "booked"):
        assert statistics.mean(waits[priority]) < walk_in, (priority, {k: statistics.mean(v) for k, v in waits.items()})
