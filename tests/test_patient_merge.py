"""A crm merge is followed by the rooms that keep patient ids: telephony's calls and the queue's tickets."""

import asyncio

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from clinicall.keys import DB_KEY
from queue_display.models import Ticket
from telephony.models import Call
from tests.conftest import Staff


async def test_calls_and_tickets_follow_a_patient_merge(client: TestClient, staff: Staff) -> None:
    admin = staff.headers("admin")
    ids = []
    for phone in ("0912000111", "0912000222"):
        made = await client.post("/api/patients", headers=admin,
                                 json={"full_name": "Lê Văn Tám", "date_of_birth": "1980-02-03", "phones": [{"number": phone}]})
        assert made.status == 201, await made.text()
        ids.append((await made.json())["patient"]["id"])
    duplicate, kept = ids
    db = client.app[DB_KEY]
    async with db.transaction() as s:
        s.add(Call(direction="inbound", state="ended", disposition="answered", patient_id=duplicate, number="+84912000111"))
    service = await client.post("/api/services", headers=admin, json={"prefix": "A", "names": {"vi": "Khám", "en": "Exam"}})
    assert service.status == 201, await service.text()
    ticket = await client.post("/api/tickets", headers=admin,
                               json={"service_id": (await service.json())["service"]["id"], "patient_id": duplicate})
    assert ticket.status == 201, await ticket.text()

    merged = await client.post("/api/merges", headers=admin, json={"from_id": duplicate, "into_id": kept})
    assert merged.status == 200, await merged.text()
    async with asyncio.timeout(10):
        while True:
            async with db.session() as s:
                call_patients = set((await s.scalars(select(Call.patient_id))).all())
                ticket_patients = set((await s.scalars(select(Ticket.patient_id))).all())
            if call_patients == ticket_patients == {kept}:
                break
            await asyncio.sleep(0.05)
    listed = await client.get(f"/api/calls?patient_id={kept}", headers=admin)
    assert len((await listed.json())["calls"]) == 1
