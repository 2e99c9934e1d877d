"""A small clinic made through the API: services A (consult), B (lab), C (ultrasound) and rooms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Staff


@dataclass
class Clinic:
    client: TestClient
    staff: Staff
    services: dict[str, int]  # prefix -> id
    rooms: dict[str, int]  # "consult1", "consult2", "lab1" -> id

    async def post(self, path: str, body: Any = None, who: str = "reception", status: int = 200) -> Any:
        response = await self.client.post(path, json=body if body is not None else {}, headers=self.staff.headers(who))
        data = await response.json()
        assert response.status == status, (response.status, data)
        return data

    async def get(self, path: str, who: str = "reception", status: int = 200) -> Any:
        response = await self.client.get(path, headers=self.staff.headers(who))
        data = await response.json()
        assert response.status == status, (response.status, data)
        return data

    async def issue(self, prefix: str = "A", priority: str = "normal", who: str = "reception",
                    **extra: Any) -> dict[str, Any]:
        body = {"service_id": self.services[prefix], "priority": priority, **extra}
        return (await self.post("/api/tickets", body, who=who, status=201))["ticket"]  # type: ignore[no-any-return]

    async def call_next(self, room: str, who: str = "doctor") -> dict[str, Any] | None:
        return (await self.post(f"/api/rooms/{self.rooms[room]}/call-next", who=who))["ticket"]  # type: ignore[no-any-return]

    async def op(self, ticket_id: int, operation: str, body: Any = None, status: int = 200) -> dict[str, Any]:
        return await self.post(f"/api/tickets/{ticket_id}/{operation}", body, who="doctor", status=status)  # type: ignore[no-any-return]


async def build_clinic(client: TestClient, staff: Staff) -> Clinic:
    clinic = Clinic(client, staff, {}, {})
    for prefix, vi, en in (("A", "Khám tổng quát", "General consultation"), ("B", "Xét nghiệm", "Laboratory"),
                           ("C", "Siêu âm", "Ultrasound")):
        data = await clinic.post("/api/services", {"prefix": prefix, "names": {"vi": vi, "en": en}}, who="admin", status=201)
        clinic.services[prefix] = data["service"]["id"]
    for name, kind, number, prefixes in (("consult1", "consult", 1, "A"), ("consult2", "consult", 2, "AC"),
                                         ("lab1", "lab", 1, "B")):
        body = {"kind": kind, "number": number, "service_ids": [clinic.services[p] for p in prefixes],
                "doctor_name": f"BS. {name}"}
        data = await clinic.post("/api/rooms", body, who="admin", status=201)
        clinic.rooms[name] = data["room"]["id"]
    return clinic


@pytest.fixture
async def clinic(client: TestClient, staff: Staff) -> Clinic:
    return await build_clinic(client, staff)
