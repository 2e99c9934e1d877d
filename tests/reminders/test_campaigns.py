"""Reminder campaigns end to end over real TCP: the HTTP API, the dialler, the AMI link to the demo PBX,
the demo PBX's FastAGI session to our FastAGI server (real sockets, Asterisk's protocol), the call log
and the patients' care. Press 1, press 2, busy then retried, never answering, do-not-call skipped, one
number called once a day, and the PBX going away (before and during the calls) losing no attempt. Also
the queue position by phone (FastAGI `queue_position`) on an inbound call, and "your turn is near" as a
short spoken call (FastAGI `turn_near`) where no SMS gateway is configured."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from clinicall.app import create_app
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.settings import Settings
from reminders.keys import DIALLER_KEY
from reminders.models import Attempt, Target, TurnNearCall
from telephony.keys import AMI_LINK_KEY, DEMO_PBX_KEY
from telephony.models import Call
from telephony.wire import first
from tests.conftest import Staff
from tests.waiting import until

ON_BOTH_DATABASES = {"test_campaign_confirms_calls_back_retries_and_skips"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The campaign end to end runs on both databases; the rest of this module on SQLite."""
    if request.param == "postgresql" and request.node.originalname not in ON_BOTH_DATABASES:
        pytest.skip("database-independent; the campaign end to end runs on PostgreSQL too")
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def settings(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        db_url,
        telephony={"demo_pbx": True, "demo_time_scale": 0.02, "agi_enabled": True, "agi_port": 0,
                   "reconnect_max_seconds": 0.5},
        reminders={"daily_kinds": [], "calling_hours": ["00:00-24:00"], "max_channels": 3, "max_attempts": 2,
                   "retry_minutes": 0, "key_timeout_seconds": 0.2})


def tomorrow(client: TestClient) -> str:
    zone = client.app[SETTINGS_KEY].clinic.zone()
    return (dt.datetime.now(zone).date() + dt.timedelta(days=1)).isoformat()


async def booked_patient(client: TestClient, staff: Staff, name: str, number: str, **patch: Any) -> int:
    response = await client.post("/api/patients", headers=staff.headers("admin"), json={
        "full_name": name, "phones": [{"number": number, "label": "mobile"}]})
    assert response.status == 201, await response.text()
    patient_id = int((await response.json())["patient"]["id"])
    response = await client.patch(f"/api/patients/{patient_id}", headers=staff.headers("admin"),
                                  json={"booking_date": tomorrow(client), **patch})
    assert response.status == 200, await response.text()
    return patient_id


async def start(client: TestClient, staff: Staff, kind: str = "appointment") -> int:
    response = await client.post("/api/reminders/campaigns", headers=staff.headers("supervisor"), json={"kind": kind})
    assert response.status == 201, await response.text()
    return int((await response.json())["campaign"]["id"])


async def finished(client: TestClient, staff: Staff, campaign_id: int) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        response = await client.get(f"/api/reminders/campaigns/{campaign_id}", headers=staff.headers("supervisor"))
        body = await response.json()
        return body if body["campaign"]["state"] == "done" else None
    return dict(await until(done, f"campaign {campaign_id} done"))


def by_patient(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {t["patient_id"]: t for t in body["targets"]}


def dialled(client: TestClient, number: str) -> int:
    pbx = client.app[DEMO_PBX_KEY]
    return sum(1 for a in pbx.received if first(a, "Action") == "Originate" and number in (first(a, "Channel") or ""))


async def calls_of(client: TestClient, patient_id: int) -> list[Call]:
    async with client.app[DB_KEY].session() as s:
        return list((await s.scalars(select(Call).where(Call.patient_id == patient_id).order_by(Call.id))).all())


async def test_campaign_confirms_calls_back_retries_and_skips(client: TestClient, staff: Staff) -> None:
    await client.app[AMI_LINK_KEY].wait_ready(10)
    confirms = await booked_patient(client, staff, "Nguyễn Văn An", "0901234561")
    wants_call = await booked_patient(client, staff, "Trần Thị Bình", "0901234566")
    busy_first = await booked_patient(client, staff, "Lê Văn Cường", "0901234569")
    never = await booked_patient(client, staff, "Phạm Thị Dung", "0901230003")
    refused = await booked_patient(client, staff, "Hoàng Văn Em", "0901234571", do_not_call=True)
    same_number = await booked_patient(client, staff, "Nguyễn Thị An", "0901234561")
    campaign_id = await start(client, staff)
    body = await finished(client, staff, campaign_id)
    targets = by_patient(body)

    assert targets[confirms]["state"] == "confirmed" and targets[confirms]["key"] == "1"
    assert targets[wants_call]["state"] == "callback" and targets[wants_call]["key"] == "2"
    assert targets[busy_first]["state"] == "confirmed" and targets[busy_first]["attempts"] == 2
    assert targets[never]["state"] == "not_reached" and targets[never]["attempts"] == 2
    assert targets[refused] == {**targets[refused], "state": "skipped", "skip_reason": "do_not_call", "attempts": 0}
    assert targets[same_number]["state"] == "skipped" and targets[same_number]["skip_reason"] == "number_called_today"
    assert dialled(client, "0901234561") == 1 and dialled(client, "0901234571") == 0
    assert dialled(client, "0901234569") == 2 and dialled(client, "0901230003") == 2
    progress = body["campaign"]["progress"]
    assert (progress["confirmed"], progress["callback"], progress["not_reached"], progress["skipped"]) == (2, 1, 1, 2)
    assert progress["called"] == 6
    # the targets (patient, number) the supervisor read are in the audit trail
    trail = await (await client.get(f"/api/audit?patient_id={never}&action=reminders", headers=staff.headers("admin"))).json()
    assert trail["items"] and {row["user_id"] for row in trail["items"]} == {staff.ids["supervisor"]}

    # every attempt is a call in the call log, linked to the patient, with its real disposition
    assert [(c.origin, c.disposition) for c in await calls_of(client, busy_first)] == [
        ("reminder", "busy"), ("reminder", "answered")]
    assert [c.disposition for c in await calls_of(client, never)] == ["no_answer", "no_answer"]
    assert await calls_of(client, refused) == []

    # the results where an agent expects them
    admin = staff.headers("admin")
    card = (await (await client.get(f"/api/patients/{confirms}", headers=admin)).json())["patient"]
    assert card["booking_confirmed"] is True
    other = (await (await client.get(f"/api/patients/{wants_call}", headers=admin)).json())["patient"]
    assert other["booking_confirmed"] is False
    due = await (await client.get("/api/worklists/due_today", headers=admin)).json()
    assert [p["id"] for p in due["items"]] == [wants_call]
    missed = await (await client.get("/api/worklists/not_reached", headers=admin)).json()
    assert [p["id"] for p in missed["items"]] == [never]

    async def noted() -> list[dict[str, Any]]:
        return (await (await client.get(f"/api/patients/{confirms}/notes", headers=admin)).json())["items"]
    notes = await until(noted, "the care note of the result")
    call_ids = [c.id for c in await calls_of(client, confirms)]
    assert [(n["call_id"], n["reached"]) for n in notes] == [(call_ids[0], True)]

    # a second campaign the same day calls none of these numbers again
    again = await start(client, staff)
    assert {t["state"] for t in (await finished(client, staff, again))["targets"]} <= {"skipped"}
    assert dialled(client, "0901234566") == 1
    assert client.app[DEMO_PBX_KEY].played, "the FastAGI script streamed the rendered reminder"


async def test_asterisk_down_then_up_loses_no_attempt(client: TestClient, staff: Staff) -> None:
    link, pbx, dialler = client.app[AMI_LINK_KEY], client.app[DEMO_PBX_KEY], client.app[DIALLER_KEY]
    await link.wait_ready(10)
    port = pbx.port
    patients = [await booked_patient(client, staff, f"Bệnh nhân {i}", f"090123450{i}") for i in (1, 5)]
    await pbx.close()  # Asterisk is gone before the campaign starts

    async def link_down() -> bool:
        return not link.ready
    await until(link_down, "the AMI link sees the PBX gone")
    campaign_id = await start(client, staff)
    rounds = dialler.rounds
    await until(lambda: dialler.rounds >= rounds + 3, "three dialler rounds while Asterisk is down")
    async with client.app[DB_KEY].session() as s:
        assert set((await s.scalars(select(Target.state).where(Target.campaign_id == campaign_id))).all()) == {"pending"}
        assert (await s.scalars(select(Attempt))).all() == []

    await pbx.start(port=port)  # back: the waiting targets are called
    body = await finished(client, staff, campaign_id)
    assert {t["patient_id"]: (t["state"], t["attempts"]) for t in body["targets"]} == {
        p: ("confirmed", 1) for p in patients}

    # gone again while a call is out: that attempt is cut off, not counted, and called again
    late = await booked_patient(client, staff, "Bệnh nhân muộn", "0901234510")
    second = await start(client, staff, "appointment")

    async def call_out() -> bool:
        async with client.app[DB_KEY].session() as s:
            return bool(await s.scalar(select(Target.call_id).where(Target.campaign_id == second,
                                                                    Target.call_id.is_not(None))))
    await until(call_out, "a reminder call out")
    await pbx.close()
    await until(link_down, "the AMI link sees the PBX gone")
    await pbx.start(port=port)
    body = await finished(client, staff, second)
    target = by_patient(body)[late]
    assert (target["state"], target["attempts"]) == ("confirmed", 1)
    async with client.app[DB_KEY].session() as s:
        attempts = (await s.scalars(select(Attempt).where(Attempt.target_id == target["id"]))).all()
    assert [a.counted for a in attempts][-1] is True and len([a for a in attempts if a.counted]) == 1


async def test_a_service_restart_mid_campaign_resumes_it(client: TestClient, staff: Staff,
                                                         aiohttp_client: Callable[..., Any], settings: Settings) -> None:
    """The campaign's state is in the database: a new process (and a restarted PBX) carries on, calls
    every patient still to call, and calls nobody twice who was already settled."""
    settings.reminders.max_channels = 1
    await client.app[AMI_LINK_KEY].wait_ready(10)
    numbers = {await booked_patient(client, staff, f"Bệnh nhân {i}", f"09012345{i}"): f"09012345{i}"
               for i in (21, 31, 41, 51)}
    patients = list(numbers)
    campaign_id = await start(client, staff)

    async def one_settled() -> list[int]:
        async with client.app[DB_KEY].session() as s:
            return list((await s.scalars(select(Target.patient_id).where(
                Target.campaign_id == campaign_id, Target.state == "confirmed"))).all())
    settled_before = await until(one_settled, "a first patient confirmed")
    await client.close()  # the service stops mid-campaign

    again: TestClient = await aiohttp_client(create_app(settings))
    body = await finished(again, staff, campaign_id)
    assert {t["patient_id"]: t["state"] for t in body["targets"]} == dict.fromkeys(patients, "confirmed")
    async with again.app[DB_KEY].session() as s:
        called = (await s.execute(select(Target.patient_id, func.count()).join(Attempt, Attempt.target_id == Target.id)
                                  .where(Attempt.counted.is_(True)).group_by(Target.patient_id))).all()
    assert dict(called) == dict.fromkeys(patients, 1)
    assert all(dialled(again, numbers[p]) == 0 for p in settled_before)  # settled before the stop: not again


async def test_queue_position_by_phone(client: TestClient, staff: Staff) -> None:
    await client.app[AMI_LINK_KEY].wait_ready(10)
    admin = staff.headers("admin")
    response = await client.post("/api/services", headers=admin, json={"prefix": "A", "names": {"vi": "Khám", "en": "Exam"}})
    assert response.status == 201, await response.text()
    service_id = (await response.json())["service"]["id"]
    waiting = await booked_patient(client, staff, "Nguyễn Văn An", "0912345678")
    for patient in (None, waiting):
        response = await client.post("/api/tickets", headers=admin, json={"service_id": service_id, "patient_id": patient})
        assert response.status == 201, await response.text()
    pbx = client.app[DEMO_PBX_KEY]
    before = len(pbx.played)
    call = await pbx.inbound("0912345678")

    async def heard() -> dict[str, str] | None:
        chan = pbx.channels.get(call["call_uniqueid"])
        return chan.variables if chan and chan.variables.get("CLINICALL_QUEUE_AGENT") == "1" else None
    variables = await until(heard, "the caller heard the position and pressed 0")
    assert variables["CLINICALL_QUEUE_HEARD"] == "1"
    assert len(pbx.played) - before >= 4  # ticket number, people ahead, wait, "press 0"


async def test_turn_near_is_a_short_spoken_call_without_an_sms_gateway(client: TestClient, staff: Staff) -> None:
    """No SMS gateway: an opted-in waiting patient gets one short call (origin turn_near, linked to the
    patient, the message played by FastAGI), its result on the card's timeline; do-not-call is honoured;
    with Asterisk away the call waits and is placed once when it is back."""
    link, pbx = client.app[AMI_LINK_KEY], client.app[DEMO_PBX_KEY]
    await link.wait_ready(10)
    admin, reception = staff.headers("admin"), staff.headers("reception")
    response = await client.post("/api/services", headers=admin, json={"prefix": "A", "names": {"vi": "Khám", "en": "Exam"}})
    assert response.status == 201, await response.text()
    service_id = (await response.json())["service"]["id"]

    async def ticket(patient_id: int | None) -> int:
        response = await client.post("/api/tickets", headers=reception,
                                     json={"service_id": service_id, "patient_id": patient_id})
        assert response.status == 201, await response.text()
        return int((await response.json())["ticket"]["id"])

    async def opt_in(ticket_id: int, phone: str) -> dict[str, Any]:
        response = await client.post("/api/turn-near", headers=reception, json={"ticket_id": ticket_id, "phone": phone})
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def final(ticket_id: int) -> TurnNearCall:
        async def done() -> TurnNearCall | None:
            async with client.app[DB_KEY].session() as s:
                row = await s.scalar(select(TurnNearCall).where(TurnNearCall.ticket_id == ticket_id))
            return row if row is not None and row.state not in ("pending", "calling") else None
        return await until(done, f"the turn-near call of ticket {ticket_id} settled")

    assert (await (await client.get("/api/turn-near/channel")).json()) == {"channel": "call"}
    waiting = await booked_patient(client, staff, "Nguyễn Văn An", "0901234561")
    refuses = await booked_patient(client, staff, "Trần Thị Bình", "0901234566", do_not_call=True)
    first_ticket, refused_ticket = await ticket(waiting), await ticket(refuses)
    played_before = len(pbx.played)
    assert await opt_in(first_ticket, "0901 234 561") == {
        "ticket_id": first_ticket, "to": "+84901234561", "texted": True, "channel": "call"}
    row = await final(first_ticket)
    assert (row.state, row.disposition, row.played, row.patient_id) == ("answered", "answered", True, waiting)
    assert row.speech[:2] == ["Sắp đến lượt của quý khách.", "Số thứ tự"] and row.speech[2] == "a một"
    assert len(pbx.played) - played_before >= 2 * len(row.speech)  # every piece, twice
    calls = await calls_of(client, waiting)
    assert [(c.origin, c.disposition, c.number) for c in calls] == [("turn_near", "answered", "+84901234561")]

    async def noted() -> list[dict[str, Any]]:
        return (await (await client.get(f"/api/patients/{waiting}/notes", headers=admin)).json())["items"]
    notes = await until(noted, "the turn-near result on the care timeline")
    assert [(n["call_id"], n["author_id"]) for n in notes] == [(calls[0].id, None)]
    assert "đã nghe hết thông báo" in notes[0]["note"]

    # once per ticket: the queue changing again calls nobody, a second opt-in is refused
    await ticket(None)
    again = await client.post("/api/turn-near", headers=reception, json={"ticket_id": first_ticket, "phone": "0901234561"})
    assert (await again.json())["code"] == "turn_near_already_sent"
    # do-not-call: not called, the reason on the patient's timeline
    await opt_in(refused_ticket, "0901234566")
    assert ((await final(refused_ticket)).state, (await final(refused_ticket)).skip_reason) == ("skipped", "do_not_call")
    assert dialled(client, "0901234566") == 0
    log = await client.get("/api/messages?origin=turn_near", headers=staff.headers("supervisor"))
    assert (await log.json())["items"] == []  # a call, not an SMS waiting for a gateway

    # Asterisk away: the call waits (no Originate), then is placed exactly once when it is back
    port = pbx.port
    await pbx.close()
    await until(lambda: not link.ready, "the AMI link sees the PBX gone")
    walk_in = await ticket(None)
    await opt_in(walk_in, "0901234571")
    rounds = client.app[DIALLER_KEY].rounds
    await until(lambda: client.app[DIALLER_KEY].rounds >= rounds + 3, "three dialler rounds while Asterisk is down")
    async with client.app[DB_KEY].session() as s:
        assert await s.scalar(select(TurnNearCall.state).where(TurnNearCall.ticket_id == walk_in)) == "pending"
    await pbx.start(port=port)
    assert (await final(walk_in)).state == "answered"
    assert dialled(client, "0901234571") == 1 and dialled(client, "0901234561") == 1
