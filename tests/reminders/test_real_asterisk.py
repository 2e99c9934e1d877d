"""A reminder campaign against the real Asterisk 22 (tests/fixtures/asterisk/rig): the Originate of the
patient's phone (`Local/<number>@patients`) into `clinicall-reminder`, FastAGI `reminder` streaming
the rendered message and reading the key the patient sends (SendDTMF), a busy patient retried; then a
"your turn is near" call (no SMS gateway): Exten `turn-near`, FastAGI `turn_near` streaming every piece
of the message twice to a patient who listens, and that patient phoning in hears the ticket's position
(FastAGI `queue_position`, the rig's [inbound-position]). Skipped, with the reason, where no Asterisk is
found (tests/telephony/asterisk_rig.py)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.settings import Settings
from reminders.models import TurnNearCall
from telephony.agi import AGIReply, AGISession
from telephony.models import Call
from tests.conftest import Staff
from tests.telephony.asterisk_rig import Asterisk
from tests.telephony.real_asterisk import link_ready
from tests.waiting import until


@pytest.fixture
def settings(rig_settings: Callable[..., Settings], asterisk: Asterisk, sqlite_url: str) -> Settings:
    base = rig_settings(sqlite_url, str(asterisk.sqlite_path))
    base.reminders = base.reminders.model_copy(update={
        "dial_channel": "Local/{number}@patients", "daily_kinds": [], "calling_hours": ["00:00-24:00"],
        "max_attempts": 2, "retry_minutes": 0, "key_timeout_seconds": 8.0})
    return base


async def booked(client: TestClient, staff: Staff, name: str, number: str) -> int:
    tomorrow = (dt.datetime.now(client.app[SETTINGS_KEY].clinic.zone()).date() + dt.timedelta(days=1)).isoformat()
    response = await client.post("/api/patients", headers=staff.headers("admin"), json={
        "full_name": name, "phones": [{"number": number}]})
    assert response.status == 201, await response.text()
    patient_id = int((await response.json())["patient"]["id"])
    response = await client.patch(f"/api/patients/{patient_id}", headers=staff.headers("admin"),
                                  json={"booking_date": tomorrow})
    assert response.status == 200, await response.text()
    return patient_id


async def test_reminder_calls_on_the_real_asterisk(client: TestClient, staff: Staff, asterisk: Asterisk,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    streamed: list[str] = []
    command = AGISession.command

    async def watched(session: AGISession, line: str) -> AGIReply:
        reply = await command(session, line)
        if line.startswith("STREAM FILE"):
            streamed.append(f"{session.script} {reply.line}")
        return reply
    monkeypatch.setattr(AGISession, "command", watched)
    await link_ready(client)
    confirms = await booked(client, staff, "Nguyễn Văn An", "0901230011")
    wants_call = await booked(client, staff, "Trần Thị Bình", "0901230012")
    busy = await booked(client, staff, "Lê Văn Cường", "0901230002")
    response = await client.post("/api/reminders/campaigns", headers=staff.headers("supervisor"),
                                 json={"kind": "appointment"})
    assert response.status == 201, await response.text()
    campaign_id = (await response.json())["campaign"]["id"]

    async def done() -> dict[str, Any] | None:
        body = await (await client.get(f"/api/reminders/campaigns/{campaign_id}",
                                       headers=staff.headers("supervisor"))).json()
        return body if body["campaign"]["state"] == "done" else None
    body = await until(done, "the campaign done", 240)
    targets = {t["patient_id"]: (t["state"], t["key"], t["attempts"]) for t in body["targets"]}
    assert targets == {confirms: ("confirmed", "1", 1), wants_call: ("callback", "2", 1), busy: ("not_reached", None, 2)}

    async with client.app[DB_KEY].session() as s:
        calls = (await s.execute(select(Call.patient_id, Call.origin, Call.disposition).order_by(Call.id))).all()
    by_patient: dict[int, list[str | None]] = {}
    for patient_id, origin, disposition in calls:
        assert origin == "reminder"
        by_patient.setdefault(patient_id, []).append(disposition)
    assert by_patient == {confirms: ["answered"], wants_call: ["answered"], busy: ["busy", "busy"]}
    card = await (await client.get(f"/api/patients/{confirms}", headers=staff.headers("admin"))).json()
    assert card["patient"]["booking_confirmed"] is True
    # Asterisk played the rendered message (8 kHz WAV) and the key interrupted it: 49 is "1", 50 is "2"
    assert any(re.match(r"reminder 200 result=(49|50) endpos=[1-9]", line) for line in streamed), streamed
    await turn_near_call(client, staff, asterisk, streamed)


async def turn_near_call(client: TestClient, staff: Staff, asterisk: Asterisk, streamed: list[str]) -> None:
    """...0005 answers and listens for 60 s: the whole message is played, twice. Then the same patient
    phones the clinic and hears the ticket's number, position and wait (FastAGI queue_position)."""
    listens = await booked(client, staff, "Phạm Thị Dung", "0901230005")
    admin, reception = staff.headers("admin"), staff.headers("reception")
    response = await client.post("/api/services", headers=admin, json={"prefix": "B", "names": {"vi": "Khám"}})
    assert response.status == 201, await response.text()
    service_id = (await response.json())["service"]["id"]
    for patient_id in (None, listens):  # a walk-in is ahead of the patient
        response = await client.post("/api/tickets", headers=reception, json={"service_id": service_id,
                                                                                "patient_id": patient_id})
        assert response.status == 201, await response.text()
    ticket_id = (await response.json())["ticket"]["id"]
    streamed.clear()
    response = await client.post("/api/turn-near", headers=reception, json={"ticket_id": ticket_id, "phone": "0901230005"})
    assert (await response.json())["channel"] == "call"

    async def settled() -> TurnNearCall | None:
        async with client.app[DB_KEY].session() as s:
            row = await s.scalar(select(TurnNearCall).where(TurnNearCall.ticket_id == ticket_id))
        return row if row is not None and row.state not in ("pending", "calling") else None
    row = await until(settled, "the turn-near call settled", 90)
    assert (row.state, row.disposition, row.played) == ("answered", "answered", True)
    assert len([line for line in streamed if re.match(r"turn_near 200 result=0 endpos=[1-9]", line)]) == 2 * len(row.speech)
    async with client.app[DB_KEY].session() as s:
        origins = (await s.execute(select(Call.origin, Call.disposition).where(Call.patient_id == listens))).all()
    assert [tuple(o) for o in origins] == [("turn_near", "answered")]

    asterisk.call_file("position", {"Channel": "Local/s@inbound-position", "Application": "Wait", "Data": "30",
                                    "CallerID": "0901230005"})

    def heard() -> list[str]:
        played = [line for line in streamed if re.match(r"queue_position 200 result=0 endpos=[1-9]", line)]
        return played if len(played) >= 4 else []  # intro, the number, people ahead, (the wait,) "press 0"
    await until(heard, "the caller heard the queue position", 60)
