"""FastAGI `identify` through real TCP: the recorded Asterisk headers replayed byte for byte
against the running app, patients from crm_bridge, screen-pops on the bus (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from clinicall.keys import BUS_KEY, DB_KEY
from clinicall.settings import Settings
from crm_bridge.audit import list_audit
from telephony.agi import FASTAGI_KEY
from tests.conftest import PASSWORD, Staff, health_details
from tests.telephony.agi_peer import Collector, load_trace, run_session, with_callerid


@pytest.fixture
def settings(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    # Generous limits: these tests assert what is answered, never how fast (the bench measures that).
    return make_settings(db_url, telephony={"agi_enabled": True, "agi_port": 0, "agi_timeout_seconds": 30.0,
                                            "agi_lookup_timeout_seconds": 30.0})


async def add_patient(client: TestClient, staff: Staff, name: str, number: str, agent: str | None) -> int:
    from crm_bridge.patients import PatientIn, PhoneIn, create_patient

    data = PatientIn(full_name=name, phones=[PhoneIn(number=number)],
                     assigned_agent_id=staff.ids[agent] if agent else None)
    return await create_patient(client.app[DB_KEY], data, staff.ids["admin"], "VN")


def agi_port(client: TestClient) -> int:
    return client.app[FASTAGI_KEY].port


def screenpops(client: TestClient) -> Collector:
    collector = Collector()
    client.app[BUS_KEY].subscribe("call.screenpop", collector)
    return collector


async def test_recorded_inbound_calls_identify_the_patient(client: TestClient, staff: Staff) -> None:
    patient_id = await add_patient(client, staff, "Nguyễn Văn An", "0912345678", "agent")
    pops = screenpops(client)
    port = agi_port(client)

    for name in ("inbound_call", "inbound_call_e164"):
        trace = load_trace(name)
        commands = await run_session(port, trace.header, trace)
        assert commands == [
            'SET VARIABLE CALLERID(name) "Nguyen Van An"',
            f"SET VARIABLE PATIENT_ID {patient_id}",
            "SET VARIABLE CLINICALL_AGENT_EXT 1001",
        ], name
    await client.app[BUS_KEY].drain()
    assert [e.data["call_uniqueid"] for e in pops.events] == ["1795324352.13", "1795324360.20"]
    for event in pops.events:
        assert event.data["agent_ids"] == [staff.ids["agent"]]
        assert event.data["agent_extensions"] == ["1001"]
        assert event.data["number"] == "+84912345678"
        assert event.data["known"] is True
        assert event.data["patient"] == {"id": patient_id, "full_name": "Nguyễn Văn An", "care_status": "new",
                                         "assigned_agent_id": staff.ids["agent"]}
        assert event.data["at"]
    health = client.app[FASTAGI_KEY].health()
    assert health["ok"] and health["served"] == 2 and health["failed"] == 0


async def test_unknown_and_withheld_callers_pop_a_new_caller_card_on_every_agent(client: TestClient, staff: Staff) -> None:
    pops = screenpops(client)
    port = agi_port(client)
    team_dial = 'SET VARIABLE CLINICALL_AGENT_DIAL "PJSIP/1001&PJSIP/1002&PJSIP/1009"'

    named = load_trace("inbound_call_with_name")  # a number clinicall does not know, with a network name
    assert await run_session(port, named.header, named) == ['SET VARIABLE CALLERID(name) "Khach moi"', team_dial]
    anonymous = load_trace("inbound_call_anonymous")  # agi_callerid: unknown
    assert await run_session(port, anonymous.header, anonymous) == ['SET VARIABLE CALLERID(name) "Khach moi"', team_dial]
    await client.app[BUS_KEY].drain()

    team = [staff.ids["agent"], staff.ids["agent2"], staff.ids["supervisor"]]
    first, second = (e.data for e in pops.events)
    assert first["known"] is False and first["patient"] is None and first["number"] == "+84987654321"
    assert second["known"] is False and second["patient"] is None and second["number"] is None
    for data in (first, second):
        assert data["agent_ids"] == team
        assert data["agent_extensions"] == ["1001", "1002", "1009"]
    assert [first["call_uniqueid"], second["call_uniqueid"]] == ["1795324515.8", "1795324508.1"]


async def test_unassigned_patient_rings_the_team_and_the_assigned_agent_only_when_active(
        client: TestClient, staff: Staff) -> None:
    from clinicall.auth import service as auth_service

    unassigned = await add_patient(client, staff, "Trần Thị Bình", "0987654321", None)
    assigned = await add_patient(client, staff, "Lê Văn Cường", "0901234567", "agent2")
    await auth_service.update_user(client.app[DB_KEY], staff.ids["agent2"], active=False)
    trace = load_trace("inbound_call")
    port = agi_port(client)

    assert await run_session(port, with_callerid(trace, b"0987654321"), trace) == [
        'SET VARIABLE CALLERID(name) "Tran Thi Binh"', f"SET VARIABLE PATIENT_ID {unassigned}",
        'SET VARIABLE CLINICALL_AGENT_DIAL "PJSIP/1001&PJSIP/1009"']
    # The assigned agent left: the call goes to the team instead of a phone nobody answers, and the team's
    # phones show the masked name, as the team's consoles do (another agent's patient).
    assert await run_session(port, with_callerid(trace, b"84901234567"), trace) == [
        'SET VARIABLE CALLERID(name) "Le V. C."', f"SET VARIABLE PATIENT_ID {assigned}",
        'SET VARIABLE CLINICALL_AGENT_DIAL "PJSIP/1001&PJSIP/1009"']


async def test_fifty_concurrent_sessions(client: TestClient, staff: Staff) -> None:
    patient_id = await add_patient(client, staff, "Phạm Thị Dung", "0912345678", "agent")
    pops = screenpops(client)
    trace = load_trace("inbound_call")
    port = agi_port(client)
    results = await asyncio.gather(*(run_session(port, trace.header, trace, wait=60) for _ in range(50)))
    for commands in results:
        assert commands == ['SET VARIABLE CALLERID(name) "Pham Thi Dung"', f"SET VARIABLE PATIENT_ID {patient_id}",
                            "SET VARIABLE CLINICALL_AGENT_EXT 1001"]
    # every identification is in the audit trail once the caller has been answered (no flush needed)
    rows = await list_audit(client.app[DB_KEY], patient_id=patient_id, action="caller_identified", limit=100)
    assert [(row["user_id"], row["detail"]) for row in rows] == [(None, "inbound call 1795324352.13")] * 50
    await client.app[BUS_KEY].drain()
    assert len(pops.events) == 50
    assert client.app[FASTAGI_KEY].health()["served"] == 50


async def test_a_shared_number_identifies_the_patient_with_the_latest_activity(client: TestClient, staff: Staff) -> None:
    """The batched lookup (one statement on PostgreSQL) picks the patient best_matches picks, and audits that one."""
    import datetime as dt

    from sqlalchemy import update

    from crm_bridge.models import Patient

    older = await add_patient(client, staff, "Đỗ Thị Hà", "0987654321", None)
    newer = await add_patient(client, staff, "Đỗ Văn Nam", "0987654321", None)
    trace = load_trace("inbound_call_with_name")  # agi_callerid 0987654321
    port = agi_port(client)
    assert (await run_session(port, trace.header, trace))[:2] == [
        'SET VARIABLE CALLERID(name) "Do Van Nam"', f"SET VARIABLE PATIENT_ID {newer}"]
    async with client.app[DB_KEY].transaction() as s:
        await s.execute(update(Patient).where(Patient.id == older).values(
            last_activity_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))
    assert (await run_session(port, trace.header, trace))[:2] == [
        'SET VARIABLE CALLERID(name) "Do Thi Ha"', f"SET VARIABLE PATIENT_ID {older}"]
    for patient_id in (newer, older):
        rows = await list_audit(client.app[DB_KEY], patient_id=patient_id, action="caller_identified")
        assert [(row["user_id"], row["detail"]) for row in rows] == [(None, "inbound call 1795324515.8")]


async def test_identify_api(client: TestClient, staff: Staff) -> None:
    patient_id = await add_patient(client, staff, "Nguyễn Văn An", "0912345678", "agent")
    pops = screenpops(client)

    response = await client.get("/api/callers/identify", params={"number": "+84 912 345 678"},
                                headers=staff.headers("agent"))
    assert response.status == 200
    body = await response.json()
    assert body["known"] is True and body["patient_id"] == patient_id and body["agent_extension"] == "1001"
    assert body["variables"] == [["CALLERID(name)", "Nguyen Van An"], ["PATIENT_ID", str(patient_id)],
                                 ["CLINICALL_AGENT_EXT", "1001"]]
    await client.app[BUS_KEY].drain()
    assert pops.events == []  # no uniqueid: a look-up, not a live call

    # an agent cannot pop a made-up caller on other agents' screens: only the PBX's account reports live calls
    forged = await client.get("/api/callers/identify", params={"number": "0912345678", "uniqueid": "1795324508.9"},
                              headers=staff.headers("agent"))
    assert forged.status == 403 and (await forged.json())["code"] == "screenpop_not_allowed"
    # a supervisor's browser steered here by another site (a GET carries the cookie): refused too
    assert (await client.post("/api/login", json={"username": "supervisor", "password": PASSWORD})).status == 200
    steered = await client.get("/api/callers/identify", params={"number": "0912345678", "uniqueid": "1795324508.9"})
    assert steered.status == 403 and (await steered.json())["code"] == "screenpop_not_allowed"
    client.session.cookie_jar.clear()
    await client.app[BUS_KEY].drain()
    assert pops.events == []

    response = await client.get("/api/callers/identify", params={"number": "unknown", "uniqueid": "1795324508.1"},
                                headers=staff.headers("supervisor"))
    body = await response.json()
    assert body["known"] is False and body["number"] is None and body["patient"] is None
    await client.app[BUS_KEY].drain()
    assert [e.data["call_uniqueid"] for e in pops.events] == ["1795324508.1"]

    for params, status in (({}, 400), ({"number": "1" * 201}, 400),
                           ({"number": "0912345678", "uniqueid": "x\r\ny"}, 400)):
        response = await client.get("/api/callers/identify", params=params, headers=staff.headers("agent"))
        assert response.status == status
        assert response.content_type == "application/problem+json"
    assert (await client.get("/api/callers/identify", params={"number": "0912345678"})).status == 401
    response = await client.get("/api/callers/identify", params={"number": "0912345678"},
                                headers=staff.headers("reception"))
    assert response.status == 403


async def test_health_reports_the_listener(client: TestClient) -> None:
    body = await health_details(client)
    assert body["checks"]["fastagi"]["listening"] is True
    assert body["checks"]["fastagi"]["address"].startswith("127.0.0.1:")


async def test_screenpop_of_another_agents_patient_is_masked_on_the_agent_socket(
        client: TestClient, staff: Staff) -> None:
    """The assigned agent is away, so the team's phones ring: an agent's console learns that the caller is
    known, with the masked name only (the card's rule, as GET /api/callers/identify); a supervisor sees all."""
    from clinicall.auth import service as auth_service

    patient_id = await add_patient(client, staff, "Lê Văn Cường", "0901234567", "agent2")
    await auth_service.update_user(client.app[DB_KEY], staff.ids["agent2"], active=False)
    sockets = {who: await client.ws_connect("/ws/agent", headers=staff.headers(who)) for who in ("agent", "supervisor")}
    for ws in sockets.values():
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
    trace = load_trace("inbound_call")
    await run_session(agi_port(client), with_callerid(trace, b"0901234567"), trace)
    pops = {who: await ws.receive_json(timeout=10) for who, ws in sockets.items()}
    for ws in sockets.values():
        await ws.close()
    assert pops["supervisor"]["type"] == "call.screenpop"
    assert pops["supervisor"]["data"]["patient"]["full_name"] == "Lê Văn Cường"
    seen = pops["agent"]["data"]
    assert pops["agent"]["type"] == "call.screenpop" and "Cường" not in str(seen)
    assert seen["patient"] == {"assigned_agent_id": staff.ids["agent2"]} and patient_id != seen.get("patient_id")
    assert seen["known"] is True and seen["other_agents_patient"] is True and seen["masked_name"] == "Lê V. C."
    # the supervisor's screen showed the card: audited for the supervisor (the agent saw a masked name only)
    trail = await client.get(f"/api/audit?patient_id={patient_id}&action=screenpop", headers=staff.headers("admin"))
    assert [row["user_id"] for row in (await trail.json())["items"]] == [staff.ids["supervisor"]]
