"""Click-to-call end to end through the HTTP API, the AMI link and the demo PBX over real TCP:
202 at once, live progress on /ws/agent, the call row, outcome logged and listed; number policy,
rate limit, control characters refused with nothing on the wire, hang up, and /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from clinicall.auth.models import User
from clinicall.auth.token_cache import TOKEN_CACHE_KEY
from clinicall.keys import BUS_KEY, DB_KEY, SETTINGS_KEY
from clinicall.settings import Settings
from telephony.keys import AMI_LINK_KEY, CALL_LOG_KEY, DEMO_PBX_KEY, RATE_LIMIT_KEY
from telephony.wire import all_values, first
from tests.conftest import Staff, db_url_on_both_for, health_details

ON_BOTH_DATABASES: set[str] = {"test_click_to_call_answered_end_to_end", "test_recording_file_name_comes_from_the_call_id"}


db_url = db_url_on_both_for(*ON_BOTH_DATABASES)


@pytest.fixture
def settings(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(db_url, telephony={"demo_pbx": True, "demo_time_scale": 0.02, "agi_enabled": False,
                                            "calls_per_minute_per_agent": 20})


async def ready(client: TestClient) -> None:
    link = client.app[AMI_LINK_KEY]
    assert link is not None
    await link.wait_ready(10)


async def new_patient(client: TestClient, staff: Staff, *numbers: str, agent: str = "agent") -> tuple[int, list[int]]:
    response = await client.post("/api/patients", headers=staff.headers("admin"), json={
        "full_name": "Nguyễn Văn An", "assigned_agent_id": staff.ids[agent],
        "phones": [{"number": n, "label": "mobile"} for n in numbers]})
    assert response.status == 201, await response.text()
    patient = (await response.json())["patient"]
    return patient["id"], [p["id"] for p in patient["phones"]]


async def updates_until_ended(ws: aiohttp.ClientWebSocketResponse, call_id: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        msg = await asyncio.wait_for(ws.receive(), 15)
        body = json.loads(msg.data)
        if body["type"] == "call.updated" and body["data"]["call_id"] == call_id:
            seen.append(body["data"])
            if body["data"]["state"] == "ended":
                return seen
    raise AssertionError(f"call {call_id} did not end: {seen}")


def originates(client: TestClient) -> list[list[tuple[str, str]]]:
    pbx = client.app[DEMO_PBX_KEY]
    assert pbx is not None
    return [a for a in pbx.received if first(a, "Action") == "Originate"]


async def test_click_to_call_answered_end_to_end(client: TestClient, staff: Staff) -> None:
    await ready(client)
    patient_id, (phone_id,) = await new_patient(client, staff, "0901234567")
    async with client.ws_connect("/ws/agent", headers=staff.headers("agent")) as ws, \
            client.ws_connect("/ws/agent", headers=staff.headers("agent2")) as other:
        hello = json.loads((await ws.receive()).data)
        assert hello["type"] == "hello" and hello["data"]["extension"] == "1001"
        await other.receive()
        response = await client.post("/api/calls", headers=staff.headers("agent"),
                                     json={"patient_id": patient_id, "phone_id": phone_id})
        assert response.status == 202, await response.text()
        call = (await response.json())["call"]
        assert (call["state"], call["direction"], call["patient_id"]) == ("dialing", "outbound", patient_id)
        updates = await updates_until_ended(ws, call["id"])
        states = [u["state"] for u in updates]
        assert states[0] == "dialing" and states[-1] == "ended"
        # a batch of AMI events projects once, so a loaded machine may skip a state; never out of order
        order = ["dialing", "ringing", "answered", "ended"]
        assert [order.index(state) for state in states] == sorted(order.index(state) for state in states)
        assert updates[-1]["disposition"] == "answered"
        # agent2 got nothing of agent1's call
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                while True:
                    msg = await other.receive()
                    assert json.loads(msg.data)["type"] != "call.updated", msg.data

    sent = originates(client)[-1]
    installation = await client.app[CALL_LOG_KEY].installation()
    assert len(installation) == 8 and int(installation, 16) >= 0
    tag = f"clinicall-{installation}-{call['id']}"
    assert first(sent, "Channel") == "Local/1001@agents"
    assert (first(sent, "Context"), first(sent, "Exten"), first(sent, "Priority")) == ("outbound", "0901234567", "1")
    assert (first(sent, "Async"), first(sent, "ChannelId"), first(sent, "OtherChannelId")) == ("true", tag, f"{tag}-2")
    assert first(sent, "ActionID") == tag and first(sent, "CallerID") == "Clinic <1000>"
    assert all_values(sent, "Variable") == [f"CLINICALL_CALL_ID={call['id']}", f"PATIENT_ID={patient_id}"]

    row = (await (await client.get(f"/api/calls/{call['id']}", headers=staff.headers("agent"))).json())["call"]
    assert (row["state"], row["disposition"], row["hangup_code"]) == ("ended", "answered", 16)
    assert row["answered_at"] and row["ringing_at"] and row["ended_at"] and row["billsec"] is not None

    outcome = await client.post(f"/api/calls/{call['id']}/outcome", headers=staff.headers("agent"),
                                json={"note": "Hẹn tái khám", "callback_date": "2030-01-15"})
    assert outcome.status == 201, await outcome.text()
    listed = await client.get(f"/api/calls?patient_id={patient_id}", headers=staff.headers("agent"))
    calls = (await listed.json())["calls"]
    assert [c["id"] for c in calls] == [call["id"]]
    assert calls[0]["outcome"] is not None and "Hẹn tái khám" in json.dumps(calls[0]["outcome"], ensure_ascii=False)
    # the patient moves to another agent: the call stays in this agent's list, but writes no note on them
    moved = await client.post(f"/api/patients/{patient_id}/assign", json={"agent_id": staff.ids["agent2"]},
                              headers=staff.headers("supervisor"))
    assert moved.status == 200
    late = await client.post(f"/api/calls/{call['id']}/outcome", headers=staff.headers("agent"), json={"note": "muộn"})
    assert late.status == 403 and (await late.json())["code"] == "not_your_patient"


@pytest.mark.parametrize("number, disposition", [("0901230002", "busy"), ("0901230004", "failed")])
async def test_demo_patient_outcomes(client: TestClient, staff: Staff, number: str, disposition: str) -> None:
    await ready(client)
    patient_id, (phone_id,) = await new_patient(client, staff, number)
    async with client.ws_connect("/ws/agent", headers=staff.headers("agent")) as ws:
        await ws.receive()
        response = await client.post("/api/calls", headers=staff.headers("agent"),
                                     json={"patient_id": patient_id, "phone_id": phone_id})
        assert response.status == 202
        call_id = (await response.json())["call"]["id"]
        updates = await updates_until_ended(ws, call_id)
    assert updates[-1]["disposition"] == disposition
    assert updates[-1]["answered_at"] is None and updates[-1]["billsec"] == 0


async def test_hangup_while_ringing_cancels(client: TestClient, staff: Staff) -> None:
    await ready(client)
    patient_id, (phone_id,) = await new_patient(client, staff, "0901230003")  # never answers
    client.app[DEMO_PBX_KEY].no_answer_seconds = 500  # type: ignore[union-attr]  # 10 s at this time scale
    async with client.ws_connect("/ws/agent", headers=staff.headers("agent")) as ws:
        await ws.receive()
        response = await client.post("/api/calls", headers=staff.headers("agent"),
                                     json={"patient_id": patient_id, "phone_id": phone_id})
        call_id = (await response.json())["call"]["id"]
        while True:
            body = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            if body["type"] == "call.updated" and body["data"]["state"] == "ringing" and \
                    body["data"].get("ringing_at"):
                break
        await asyncio.sleep(0.05)
        # the patient moves to agent2 mid-call: the agent on the call still hangs up from the console
        moved = await client.post(f"/api/patients/{patient_id}/assign", json={"agent_id": staff.ids["agent2"]},
                                  headers=staff.headers("supervisor"))
        assert moved.status == 200, await moved.text()
        other = await client.post(f"/api/calls/{call_id}/hangup", headers=staff.headers("agent2"))
        assert other.status == 403
        hung = await client.post(f"/api/calls/{call_id}/hangup", headers=staff.headers("agent"))
        assert hung.status == 202, await hung.text()
        updates = await updates_until_ended(ws, call_id)
    assert updates[-1]["disposition"] == "cancelled"
    hangups = [a for a in client.app[DEMO_PBX_KEY].received if first(a, "Action") == "Hangup"]  # type: ignore[union-attr]
    assert len(hangups) == 1


INJECTIONS: list[dict[str, Any]] = [
    {"patient_id": "1\r\nAction: Hangup", "phone_id": 1},
    {"patient_id": 1, "phone_id": "1\nChannel: x"},
    {"patient_id": 1, "phone_id": 1, "x\r\nAction: Originate": 1},
    {"patient_id": 1, "phone_id": 1, "note": "a\x00b"},
]


async def test_control_characters_never_reach_asterisk(client: TestClient, staff: Staff) -> None:
    await ready(client)
    patient_id, (phone_id,) = await new_patient(client, staff, "0901234567")
    before = len(originates(client))
    for body in INJECTIONS:
        response = await client.post("/api/calls", headers=staff.headers("agent"), json=body)
        # a NUL is refused for every JSON body before any handler (422 invalid_characters)
        assert response.status == (422 if "\\u0000" in json.dumps(body) else 400), (body, await response.text())
        assert response.content_type == "application/problem+json"
    # the agent's extension (set by an admin) carrying CR/LF
    async with client.app[DB_KEY].transaction() as s:
        await s.execute(update(User).where(User.id == staff.ids["agent"]).values(extension="1001\r\nAction: Hangup"))
    client.app[TOKEN_CACHE_KEY].clear()  # changed behind the service's back: forgotten as a change through it is
    response = await client.post("/api/calls", headers=staff.headers("agent"),
                                 json={"patient_id": patient_id, "phone_id": phone_id})
    assert response.status == 400, await response.text()
    async with client.app[DB_KEY].transaction() as s:
        await s.execute(update(User).where(User.id == staff.ids["agent"]).values(extension="1001"))
    # configured fields too: caller ID and context
    tel = client.app[SETTINGS_KEY].telephony
    for name, value in (("caller_id", 'Clinic <1000>\r\nAction: Originate'), ("outbound_context", "out\nbound")):
        original = getattr(tel, name)
        setattr(tel, name, value)
        try:
            response = await client.post("/api/calls", headers=staff.headers("agent"),
                                         json={"patient_id": patient_id, "phone_id": phone_id})
            assert response.status == 400, await response.text()
            assert "Nothing was sent" in (await response.json())["detail"]
        finally:
            setattr(tel, name, original)
    await asyncio.sleep(0.1)
    assert len(originates(client)) == before
    async with client.app[DB_KEY].session() as s:
        from sqlalchemy import func, select

        from telephony.models import Call

        assert await s.scalar(select(func.count()).select_from(Call)) == 0, "no half-written call row"


async def test_number_policy_access_and_rate_limit(client: TestClient, staff: Staff) -> None:
    await ready(client)
    patient_id, phones = await new_patient(client, staff, "+14155550123", "19001234", "0901234567")
    for phone_id in phones[:2]:
        response = await client.post("/api/calls", headers=staff.headers("agent"),
                                     json={"patient_id": patient_id, "phone_id": phone_id})
        assert response.status == 400, await response.text()
        assert (await response.json())["title"] == "Number not allowed"
    # another agent's patient
    response = await client.post("/api/calls", headers=staff.headers("agent2"),
                                 json={"patient_id": patient_id, "phone_id": phones[2]})
    assert response.status == 403
    # reception cannot click to call; a phone of another patient is not found
    response = await client.post("/api/calls", headers=staff.headers("reception"),
                                 json={"patient_id": patient_id, "phone_id": phones[2]})
    assert response.status == 403
    other_patient, (other_phone,) = await new_patient(client, staff, "0907654321")
    response = await client.post("/api/calls", headers=staff.headers("agent"),
                                 json={"patient_id": patient_id, "phone_id": other_phone})
    assert response.status == 404
    client.app[RATE_LIMIT_KEY].per_minute = 2
    statuses = []
    for _ in range(3):
        response = await client.post("/api/calls", headers=staff.headers("agent"),
                                     json={"patient_id": patient_id, "phone_id": phones[2]})
        statuses.append(response.status)
    assert statuses == [202, 202, 429]
    response = await client.post("/api/calls", headers=staff.headers("agent"),  # the phone is refused first
                                 json={"patient_id": patient_id, "phone_id": other_phone})
    assert response.status == 404
    assert len(originates(client)) == 2


async def test_health_and_screenpop(client: TestClient, staff: Staff) -> None:
    await ready(client)
    health = await health_details(client)
    asterisk = health["checks"]["asterisk"]
    assert asterisk["ok"] is True and asterisk["demo"] is True and asterisk["state"] == "ready"
    async with client.ws_connect("/ws/agent", headers=staff.headers("agent2")) as ws:
        await ws.receive()
        bus = client.app[BUS_KEY]
        await bus.publish("call.screenpop", {"agent_ids": [staff.ids["agent"]], "agent_extensions": [],
                                             "number": "+84912345678", "known": False, "patient": None})
        await bus.publish("call.screenpop", {"agent_ids": [], "agent_extensions": ["1002"],
                                             "number": "+84912345679", "known": False, "patient": None})
        body = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        assert body["type"] == "call.screenpop" and body["data"]["number"] == "+84912345679"
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/ws/agent", headers={**staff.headers("agent"), "Origin": "https://evil.example"})
    metrics = await (await client.get("/metrics", headers=staff.headers("admin"))).text()
    assert "clinicall_ami_up 1.0" in metrics


async def test_recording_file_name_comes_from_the_call_id(client: TestClient, staff: Staff) -> None:
    await ready(client)
    client.app[SETTINGS_KEY].telephony.record_calls = True
    patient_id, (phone_id,) = await new_patient(client, staff, "0901234567")
    async with client.ws_connect("/ws/agent", headers=staff.headers("agent")) as ws:
        await ws.receive()
        response = await client.post("/api/calls", headers=staff.headers("agent"),
                                     json={"patient_id": patient_id, "phone_id": phone_id})
        call = (await response.json())["call"]
        updates = await updates_until_ended(ws, call["id"])
    installation = await client.app[CALL_LOG_KEY].installation()
    expected = f"/var/spool/asterisk/monitor/clinicall/clinicall-{installation}-{call['id']}.wav"
    assert call["recording_path"] == expected and updates[-1]["recording_path"] == expected
    monitors = [a for a in client.app[DEMO_PBX_KEY].received if first(a, "Action") == "MixMonitor"]  # type: ignore[union-attr]
    assert len(monitors) == 1 and first(monitors[0], "File") == expected
    assert (first(monitors[0], "Channel") or "").startswith("Local/1001@agents-")
    # the row as stored (PostgreSQL writes it in one statement), and the click's audit row committed with it
    from sqlalchemy import select

    from crm_bridge.models import PatientAudit
    from telephony.models import Call

    async with client.app[DB_KEY].session() as s:
        row = await s.get(Call, call["id"])
        audit = (await s.scalars(select(PatientAudit).where(PatientAudit.action == "call"))).all()
    assert row is not None and (row.recording_path, row.action_id, row.channel_id) == (
        expected, f"clinicall-{installation}-{call['id']}", f"clinicall-{installation}-{call['id']}")
    assert [(a.patient_id, a.user_id, a.detail) for a in audit] == [
        (patient_id, staff.ids["agent"], f"call {call['id']} to +84901234567")]


async def test_an_unknown_caller_is_linked_once_the_agent_makes_the_card(client: TestClient, staff: Staff) -> None:
    from sqlalchemy import select

    from telephony.models import Call

    await ready(client)
    started = await client.post("/api/demo/inbound", headers=staff.headers("agent"), json={"number": "0987000111"})
    assert started.status == 202, await started.text()
    deadline = time.monotonic() + 20
    call = None
    while time.monotonic() < deadline:
        async with client.app[DB_KEY].session() as s:
            call = await s.scalar(select(Call).where(Call.direction == "inbound"))
        if call is not None and call.state == "ended":
            break
        await asyncio.sleep(0.1)
    assert call is not None and call.state == "ended" and call.patient_id is None
    assert call.number == "+84987000111"
    patient_id, _ = await new_patient(client, staff, "0987000111")
    other_agent = await client.post(f"/api/calls/{call.id}/patient", headers=staff.headers("agent2"),
                                    json={"patient_id": patient_id})
    assert other_agent.status == 403
    linked = await client.post(f"/api/calls/{call.id}/patient", headers=staff.headers("agent"),
                               json={"patient_id": patient_id})
    assert linked.status == 200, await linked.text()
    body = (await linked.json())["call"]
    assert (body["patient_id"], body["caller_name"]) == (patient_id, "Nguyễn Văn An")
    again = await client.post(f"/api/calls/{call.id}/patient", headers=staff.headers("agent"),
                              json={"patient_id": patient_id + 1000})
    assert again.status == 409 and (await again.json())["code"] == "call_already_linked"
    listed = await (await client.get(f"/api/calls?patient_id={patient_id}", headers=staff.headers("agent"))).json()
    assert [c["id"] for c in listed["calls"]] == [call.id]
