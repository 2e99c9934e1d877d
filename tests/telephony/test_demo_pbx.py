"""The demo PBX speaks AMI like the recorded Asterisk and plays inbound calls through FastAGI."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.settings import Settings
from telephony.ami import AmiLink
from telephony.demo_pbx import DemoPbx
from telephony.keys import AMI_LINK_KEY
from telephony.wire import StreamParser
from tests.conftest import Staff, health_details
from tests.telephony.conftest import LogHarness
from tests.telephony.traces import FIXTURES, load


async def read_messages(reader: asyncio.StreamReader, parser: StreamParser, count: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    while len(out) < count:
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        if not chunk:
            break
        out.extend(parser.feed(chunk))
    return out


def header_names(raw: str, event: str) -> list[str]:
    for block in raw.split("\r\n\r\n"):
        if block.startswith(f"Event: {event}\r\n"):
            return [line.split(":", 1)[0] for line in block.split("\r\n")]
    raise AssertionError(event)


async def test_demo_pbx_speaks_like_the_recorded_asterisk() -> None:
    pbx = DemoPbx(username="clinic", secret="clinicpass", time_scale=0.01)
    port = await pbx.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.readexactly(len(b"Asterisk Call Manager/11.0.0\r\n")) == b"Asterisk Call Manager/11.0.0\r\n"
        parser = StreamParser(expect_greeting=False)
        writer.write(b"Action: Ping\r\nActionID: early\r\n\r\n")
        (denied,) = await read_messages(reader, parser, 1)
        assert (denied["Response"], denied["Message"]) == ("Error", "Permission denied")
        writer.write(b"Action: Login\r\nUsername: clinic\r\nSecret: clinicpass\r\nActionID: login-1\r\n\r\n")
        login, booted, auth = await read_messages(reader, parser, 3)
        assert (login["Response"], login["ActionID"], login["Message"]) == ("Success", "login-1", "Authentication accepted")
        assert booted["Event"] == "FullyBooted" and auth["Event"] == "SuccessfulAuth"
        writer.write(b"Action: NoSuchAction\nActionID: x\n\n")  # bare LF framing is accepted, as by Asterisk
        (unknown,) = await read_messages(reader, parser, 1)
        assert unknown["Message"].startswith("Invalid/unknown command: NoSuchAction.")
        writer.write(b"Action: Originate\r\nActionID: o0\r\n\r\n")
        (no_channel,) = await read_messages(reader, parser, 1)
        assert no_channel["Message"] == "Channel not specified"
        writer.write(b"Action: Originate\r\nChannel: Local/1001@agents\r\nContext: outbound\r\nExten: 0901234567\r\n"
                     b"Priority: 1\r\nCallerID: Clinic <1001>\r\nAsync: true\r\nChannelId: c-1\r\nOtherChannelId: c-1-2\r\n"
                     b"ActionID: o1\r\nVariable: PATIENT_ID=42\r\n\r\n")
        raw = b""
        deadline = time.monotonic() + 5
        while b"Event: Cdr" not in raw or raw.count(b"Event: Hangup\r\n") < 4:
            raw += await asyncio.wait_for(reader.read(65536), max(0.1, deadline - time.monotonic()))
        text = raw.decode()
        assert text.startswith("Response: Success\r\nActionID: o1\r\nMessage: Originate successfully queued\r\n\r\n")
        recorded = load("click_to_call_answered_dial").recv.decode()
        for event in ("Newchannel", "Newstate", "Hangup", "OriginateResponse", "DialEnd", "Cdr", "VarSet"):
            assert header_names(text, event) == header_names(recorded, event), event
        assert re.search(r"Channel: Local/1001@agents-[0-9a-f]{8};1\r\n", text)
        assert "Uniqueid: c-1\r\nLinkedid: c-1\r\n" in text and "Uniqueid: c-1-2\r\nLinkedid: c-1\r\n" in text
        assert "Response: Success\r\nChannel: Local/1001@agents-00000000;1" in text and "Reason: 4" in text
        writer.write(b"Action: Logoff\r\nActionID: logoff-1\r\n\r\n")
        goodbye = await read_messages(reader, parser, 200)
        assert goodbye[-1]["Response"] == "Goodbye"
        writer.close()
        # a wrong secret: Authentication failed, then the socket is closed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"Action: Login\r\nUsername: clinic\r\nSecret: wrong\r\nActionID: login-bad\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 30)
        assert rest == b"Response: Error\r\nActionID: login-bad\r\nMessage: Authentication failed\r\n\r\n"
        writer.close()
    finally:
        await pbx.close()


async def fastagi_responder(seen: dict[str, object]) -> asyncio.Server:
    """What the recorded FastAGI listener did: read the agi_* block, GET CALLERID(num), SET the name and
    PATIENT_ID, close."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["env"] = await reader.readuntil(b"\n\n")
        replies = []
        for command in ("GET VARIABLE CALLERID(num)", 'SET VARIABLE CALLERID(name) "Nguyen Van A"',
                        "SET VARIABLE PATIENT_ID 42", "SET VARIABLE CLINICALL_AGENT_EXT 1001"):
            writer.write(command.encode() + b"\n")
            replies.append((await reader.readline()).decode())
        seen["replies"] = replies
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_demo_inbound_runs_fastagi_and_logs_the_call(harness: LogHarness) -> None:
    seen: dict[str, object] = {}
    agi = await fastagi_responder(seen)
    pbx = DemoPbx(username="clinic", secret="clinicpass", agi_host="127.0.0.1",
                  agi_port=agi.sockets[0].getsockname()[1], time_scale=0.01)
    link = AmiLink(host="127.0.0.1", port=await pbx.start(), username="clinic", secret="clinicpass",
                   calllog=harness.log)
    await link.start()
    try:
        await link.wait_ready()
        await pbx.inbound("0912345678")

        async def logged() -> bool:
            rows = await harness.rows()
            return bool(rows) and rows[0].state == "ended"

        deadline = time.monotonic() + 10
        while not await logged():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        env = seen["env"]
        assert isinstance(env, bytes) and b"\r" not in env
        recorded = (FIXTURES / "inbound_call.fastagi.recv.raw").read_bytes().split(b"\n\n")[0].decode()
        ours = env.decode().rstrip("\n")
        assert [line.split(":")[0] for line in ours.split("\n")] == [line.split(":")[0] for line in recorded.split("\n")]
        assert "agi_callerid: 0912345678" in ours and "agi_calleridname: unknown" in ours
        assert seen["replies"] == ["200 result=1 (0912345678)\n", "200 result=1\n", "200 result=1\n", "200 result=1\n"]
        call = (await harness.rows())[0]
        assert (call.direction, call.number, call.number_raw, call.patient_id, call.agent_extension,
                call.disposition) == ("inbound", "+84912345678", "0912345678", 42, "1001", "answered")
        assert call.caller_name == "Nguyen Van A" or call.caller_name is None
    finally:
        await link.stop()
        await pbx.close()
        agi.close()


ON_BOTH_DATABASES: set[str] = set()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Only what depends on the database runs twice; the rest of this module runs on SQLite."""
    if request.param == "postgresql" and request.node.originalname not in ON_BOTH_DATABASES:
        pytest.skip("database-independent; covered on PostgreSQL by the end-to-end test")
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def settings(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(db_url, telephony={"demo_pbx": True, "demo_time_scale": 0.02, "agi_enabled": True,
                                            "agi_port": 0})


async def test_demo_inbound_endpoint_with_the_services_fastagi(client: TestClient, staff: Staff) -> None:
    link = client.app[AMI_LINK_KEY]
    assert link is not None
    await link.wait_ready(10)
    response = await client.post("/api/patients", headers=staff.headers("admin"), json={
        "full_name": "Trần Thị Bình", "assigned_agent_id": staff.ids["agent"],
        "phones": [{"number": "0912345678", "label": "mobile"}]})
    patient_id = (await response.json())["patient"]["id"]
    assert (await client.post("/api/demo/inbound", headers=staff.headers("agent"),
                              json={"number": "09\r\n1"})).status == 400
    # another agent cannot pop this patient's call up on the agent's screen through the demo
    other = await client.post("/api/demo/inbound", headers=staff.headers("agent2"), json={"number": "0912345678"})
    assert other.status == 403 and (await other.json())["code"] == "not_your_patient"
    # nor an unassigned patient's card on every agent's screen (the team rings); a supervisor may
    await client.post("/api/patients", headers=staff.headers("admin"), json={
        "full_name": "Đỗ Văn Chung", "assigned_agent_id": None, "phones": [{"number": "0912345699"}]})
    team = await client.post("/api/demo/inbound", headers=staff.headers("agent"), json={"number": "0912345699"})
    assert team.status == 403 and (await team.json())["code"] == "demo_team_call"
    async with client.ws_connect("/ws/agent", headers=staff.headers("agent")) as ws:
        await ws.receive()
        response = await client.post("/api/demo/inbound", headers=staff.headers("agent"), json={"number": "0912345678"})
        assert response.status == 202, await response.text()
        kinds: list[str] = []
        ended = None
        deadline = time.monotonic() + 15
        while ended is None and time.monotonic() < deadline:
            body = json.loads((await asyncio.wait_for(ws.receive(), 15)).data)
            kinds.append(body["type"])
            if body["type"] == "call.updated" and body["data"]["state"] == "ended":
                ended = body["data"]
    assert ended is not None, kinds
    assert (ended["direction"], ended["patient_id"], ended["agent_extension"], ended["disposition"]) == (
        "inbound", patient_id, "1001", "answered")
    if "call.screenpop" not in kinds:
        pytest.skip("the FastAGI identify script published no screen pop (telephony-AGI's part)")


async def test_without_asterisk(aiohttp_client: Callable[..., object], sqlite_url: str,
                                make_settings: Callable[..., Settings]) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings(sqlite_url)))  # type: ignore[operator]
    health = await health_details(client)
    assert health["checks"]["asterisk"] == {"ok": True, "optional": True, "configured": False,
                                            "detail": "no Asterisk configured"}
    from clinicall.auth import service as auth_service
    from clinicall.keys import DB_KEY

    db = client.app[DB_KEY]
    user = await auth_service.create_user(db, "solo", "correct-horse-battery", ["agent"], "Solo", "1001")
    headers = {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 't')}"}
    assert (await client.post("/api/demo/inbound", headers=headers, json={"number": "0912345678"})).status == 404


async def test_calls_open_at_start_up_are_reconciled(aiohttp_client: Callable[..., object], sqlite_url: str,
                                                     make_settings: Callable[..., Settings]) -> None:
    """A call still 'ringing' from before a restart has no live channel on the PBX and no recorded end: it
    ends as interrupted, with the reason (never failed by guess)."""
    import datetime as dt

    from clinicall.db import Database
    from telephony.models import Call

    db = Database(sqlite_url)
    async with db.transaction() as s:
        stale = Call(direction="outbound", state="ringing", action_id="clinicall-77", channel_id="clinicall-77",
                     created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        s.add(stale)
        await s.flush()
        stale_id = stale.id
    await db.dispose()
    settings = make_settings(sqlite_url, telephony={"demo_pbx": True, "agi_enabled": False})
    client: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    link = client.app[AMI_LINK_KEY]
    assert link is not None
    await link.wait_ready(10)
    from clinicall.keys import DB_KEY

    deadline = time.monotonic() + 10
    while True:
        async with client.app[DB_KEY].session() as s:
            call = await s.get(Call, stale_id)
        assert call is not None
        if call.state == "ended" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert (call.state, call.disposition) == ("ended", "interrupted")
    assert "Interrupted" in (call.hangup_cause or "")


async def test_agent_socket_with_a_session_cookie(aiohttp_client: Callable[..., object], sqlite_url: str,
                                                  make_settings: Callable[..., Settings]) -> None:
    from clinicall.auth import service as auth_service
    from clinicall.keys import DB_KEY

    client: TestClient = await aiohttp_client(create_app(make_settings(sqlite_url)))  # type: ignore[operator]
    await auth_service.create_user(client.app[DB_KEY], "hoa", "correct-horse-battery", ["agent"], "Hoa", "1001")
    login = await client.post("/api/login", json={"username": "hoa", "password": "correct-horse-battery"})
    assert login.status == 200
    own = {"Origin": str(client.make_url("/").origin())}
    async with client.ws_connect("/ws/agent", headers=own) as ws:
        hello = json.loads((await ws.receive()).data)
        assert hello["data"]["extension"] == "1001"
        await ws.send_str("ping")
        assert json.loads((await ws.receive()).data)["type"] == "pong"
    import aiohttp

    for refused in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {}):  # a cookie needs our own page
        with pytest.raises(aiohttp.WSServerHandshakeError) as error:
            await client.ws_connect("/ws/agent", headers=refused)
        assert error.value.status == 403
    client.session.cookie_jar.clear()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/ws/agent")
