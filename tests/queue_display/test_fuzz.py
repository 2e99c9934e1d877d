"""Malformed input to every queue endpoint gets a 4xx problem+json, never a 500, and writes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from clinicall.keys import DB_KEY
from queue_display.models import Ticket, TicketEvent
from tests.queue_display.conftest import Clinic

GARBAGE: list[Any] = [None, [], "x", 0, -1, {"service_id": None}, {"service_id": -5}, {"service_id": 2**70},
                      {"service_id": "1; DROP TABLE queue_tickets"}, {"room_id": "abc"}, {"room_id": 0},
                      {"service_id": 1, "return_to_room": "maybe"}, {"patient_id": "x", "service_id": 1},
                      {"prefix": "a1", "names": {"vi": ""}}, {"kind": "bar", "number": 1},
                      {"prefix": "Z", "names": {"xx": "?"}}, {"opens_at": "25:61"}, {"service_ids": ["a"]},
                      {"service_ids": [999999]}, {"names": {"vi": "x" * 500}}, {"unexpected": True}]


async def test_garbage_never_500(clinic: Clinic) -> None:
    db = clinic.client.app[DB_KEY]  # type: ignore[index]
    ticket = await clinic.issue("A")
    paths = ["/api/tickets", "/api/kiosk/tickets", "/api/checkins", "/api/services", "/api/rooms",
             f"/api/rooms/{clinic.rooms['consult1']}/call-next", f"/api/tickets/{ticket['id']}/call",
             f"/api/tickets/{ticket['id']}/transfer", f"/api/tickets/{ticket['id']}/done",
             "/api/tickets/0/recall", "/api/tickets/-1/skip", f"/api/tickets/{2**64}/hold"]
    patches = [f"/api/services/{clinic.services['A']}", f"/api/rooms/{clinic.rooms['consult1']}", "/api/rooms/abc"]
    async with db.session() as s:
        before = (await s.scalar(select(func.count()).select_from(Ticket)),
                  await s.scalar(select(func.count()).select_from(TicketEvent)))
    for body in GARBAGE:
        for path in paths:
            if path.endswith("call-next") or (path == "/api/kiosk/tickets" and isinstance(body, dict)
                                              and body.get("service_id") == 1):
                continue  # no body needed / a valid kiosk request (the kiosk ignores extra fields)
            response = await clinic.client.post(path, json=body, headers=clinic.staff.headers("admin"))
            assert 400 <= response.status < 500, (path, body, response.status, await response.text())
            assert response.content_type == "application/problem+json"
        for path in patches:
            response = await clinic.client.patch(path, json=body, headers=clinic.staff.headers("admin"))
            assert response.status < 500, (path, body, response.status, await response.text())
    for path in ("/api/t/%00", "/api/t/" + "x" * 300, "/api/stats/queue?from=2026-13-01",
                 "/api/display/snapshot?rooms=1,,x", "/api/display/snapshot?services=-1", "/api/tickets?status=gone"):
        response = await clinic.client.get(path, headers=clinic.staff.headers("admin"))
        assert 400 <= response.status < 500, (path, response.status)
    async with db.session() as s:
        after = (await s.scalar(select(func.count()).select_from(Ticket)),
                 await s.scalar(select(func.count()).select_from(TicketEvent)))
    assert after == before
