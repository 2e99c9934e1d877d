"""Shared by the messaging tests: make patients and read their messages."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Staff


async def make_patient(client: TestClient, staff: Staff, name: str, number: str, agent: str | None = "agent") -> int:
    fields: dict[str, Any] = {"full_name": name, "phones": [{"number": number}]}
    if agent:
        fields["assigned_agent_id"] = staff.ids[agent]
    response = await client.post("/api/patients", json=fields, headers=staff.headers("supervisor"))
    assert response.status == 201, await response.text()
    return int((await response.json())["patient"]["id"])


async def messages_of(client: TestClient, staff: Staff, patient_id: int, who: str = "agent") -> list[dict[str, Any]]:
    response = await client.get(f"/api/patients/{patient_id}/messages", headers=staff.headers(who))
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items
