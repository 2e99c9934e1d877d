"""Call-next under contention: many receptionists at once, and two service instances on one real
PostgreSQL, never call the same ticket; numbering stays unique under concurrent kiosks."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.settings import Settings
from tests.conftest import Staff
from tests.queue_display.conftest import Clinic, build_clinic


async def call_until_empty(client: TestClient, headers: dict[str, str], room_id: int, called: list[int]) -> None:
    while True:
        response = await client.post(f"/api/rooms/{room_id}/call-next", headers=headers)
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        if body["ticket"] is None:
            return
        called.append(body["ticket"]["id"])


async def test_concurrent_call_next_calls_every_ticket_once(clinic: Clinic) -> None:
    kiosk = [clinic.client.post("/api/kiosk/tickets", json={"service_id": clinic.services["A"]}) for _ in range(30)]
    responses = await asyncio.gather(*kiosk)
    tickets = [(await r.json())["ticket"] for r in responses]
    assert all(r.status == 201 for r in responses)
    numbers = [t["number"] for t in tickets]
    assert sorted(numbers) == [f"A{n:03d}" for n in range(1, 31)]  # concurrent kiosks: unique, gap-free
    called: list[int] = []

    async def call_directly(ticket_id: int, room: str) -> None:
        response = await clinic.client.post(f"/api/tickets/{ticket_id}/call", json={"room_id": clinic.rooms[room]},
                                            headers=clinic.staff.headers("reception"))
        assert response.status in (200, 409), await response.text()  # 409: someone called it first
        if response.status == 200:
            called.append(ticket_id)

    workers = [call_until_empty(clinic.client, clinic.staff.headers(who), clinic.rooms[room], called)
               for who in ("doctor", "reception") for room in ("consult1", "consult2") for _ in range(3)]
    direct = [call_directly(t["id"], "consult1" if i % 2 else "consult2") for i, t in enumerate(tickets[::-3])]
    await asyncio.gather(*workers, *direct)
    assert Counter(called).most_common(1)[0][1] == 1
    assert sorted(called) == sorted(t["id"] for t in tickets)


async def test_two_instances_on_one_postgres_never_call_the_same_ticket(
        pg_url: str, make_settings: Callable[..., Settings], aiohttp_client: Callable[..., Any]) -> None:
    from clinicall.auth import service as auth_service
    from clinicall.keys import DB_KEY

    settings = make_settings(pg_url)
    first: TestClient = await aiohttp_client(create_app(settings))
    second: TestClient = await aiohttp_client(create_app(settings))
    db = first.app[DB_KEY]  # type: ignore[index]
    tokens, ids = {}, {}
    for name, roles in (("admin", ["admin"]), ("reception", ["reception"]), ("doctor", ["doctor"])):
        user = await auth_service.create_user(db, name, "correct-horse-battery", roles)
        ids[name] = user.id
        tokens[name] = await auth_service.create_api_token(db, user.id, "tests")
    staff = Staff(tokens=tokens, ids=ids)
    clinic = await build_clinic(first, staff)
    issuers = [client.post("/api/tickets", json={"service_id": clinic.services[prefix]}, headers=staff.headers("reception"))
               for client in (first, second) for prefix in "AAAAC" for _ in range(5)]
    responses = await asyncio.gather(*issuers)
    assert all(r.status == 201 for r in responses)
    tickets = [(await r.json())["ticket"] for r in responses]
    assert len({(t["service_id"], t["number"]) for t in tickets}) == len(tickets) == 50
    called: list[int] = []
    workers = [call_until_empty(client, staff.headers(who), clinic.rooms[room], called)
               for client in (first, second) for who in ("doctor", "reception") for room in ("consult1", "consult2")
               for _ in range(2)]
    await asyncio.gather(*workers)
    assert Counter(called).most_common(1)[0][1] == 1, "a ticket was called twice"
    assert sorted(called) == sorted(t["id"] for t in tickets)
    # both instances see the same final state
    for client in (first, second):
        queue = await (await client.get("/api/queue", headers=staff.headers("reception"))).json()
        assert all(not s["waiting"] for s in queue["services"])
