import asyncio

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from clinicall.keys import DB_KEY
from telephony.models import Call
from tests.conftest import Staff


async def test_calls_follow_a_patient_merge(client: TestClient, staff: Staff) -> None:
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
    merged = await client.post("/api/merges", headers=admin, json={"from_id": duplicate, "into_id": kept})
    assert merged.status == 200, await merged.text()
    async with asyncio.timeout(10):
        while True:
            async with db.session() as s:
                patients = set((await s.scalars(select(Call.patient_id))).all())
            if patients == {kept}:
                break
            await asyncio.sleep(0.05)
    listed = await client.get(f"/api/calls?patient_id={kept}", headers=admin)
    assert len((await listed.json())["calls"]) == 1
