"""FastAGI under hostile or broken peers, over real TCP (SQLite: the database is not the point here):
early disconnects, stalls, oversize and garbage headers, injection attempts, unknown scripts,
a failing lookup. The call must always go on and nobody else may wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from clinicall.keys import BUS_KEY, DB_KEY
from clinicall.settings import Settings
from telephony.agi import FASTAGI_KEY, parse_header, parse_reply
from telephony.identify import caller_number, safe_callerid_name
from tests.conftest import Staff
from tests.telephony.agi_peer import Collector, load_trace, run_session, with_callerid

TIMEOUT = 3.0
TEAM_DIAL = 'SET VARIABLE CLINICALL_AGENT_DIAL "PJSIP/1001&PJSIP/1002&PJSIP/1009"'
NEW_CALLER = 'SET VARIABLE CALLERID(name) "Khach moi"'


@pytest.fixture
def settings(sqlite_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(sqlite_url, telephony={"agi_enabled": True, "agi_port": 0, "agi_timeout_seconds": TIMEOUT})


def port_of(client: TestClient) -> int:
    return client.app[FASTAGI_KEY].port


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent before closing (b"" when nothing); a reset counts as closed."""
    try:
        return await asyncio.wait_for(reader.read(), within)
    except (ConnectionResetError, BrokenPipeError):
        return b""


async def test_early_disconnect_and_stall_never_block_other_callers(client: TestClient, staff: Staff) -> None:
    port = port_of(client)
    trace = load_trace("inbound_call")
    half = trace.header[: len(trace.header) // 2]

    # Hang up half way through the header: the session ends, nothing is sent.
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(half)
    await writer.drain()
    writer.close()

    # Stall half way through the header and keep the socket open.
    stalled_reader, stalled_writer = await asyncio.open_connection("127.0.0.1", port)
    stalled_writer.write(half)
    await stalled_writer.drain()
    stalled_at = asyncio.get_running_loop().time()

    results = await asyncio.gather(*(run_session(port, trace.header, trace) for _ in range(5)))
    assert all(commands == [NEW_CALLER, TEAM_DIAL] for commands in results)
    if asyncio.get_running_loop().time() - stalled_at < TIMEOUT:  # (a loaded machine may take longer than that)
        # Everyone else was served while the stalled peer still held its connection open.
        assert not stalled_reader.at_eof()
        assert client.app[FASTAGI_KEY].health()["active_sessions"] == 1

    # The stalled peer is dropped after the header timeout, with no command sent to it.
    assert await closed_by_server(stalled_reader, TIMEOUT + 3) == b""
    stalled_writer.close()
    health = client.app[FASTAGI_KEY].health()
    assert health["served"] == 5 and health["failed"] == 2 and health["active_sessions"] == 0


async def test_oversize_and_garbage_headers(client: TestClient, staff: Staff) -> None:
    port = port_of(client)
    trace = load_trace("inbound_call")

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"agi_padding: " + b"x" * 60_000 + b"\n")  # no blank line, far over the 16 KiB cap
    assert await closed_by_server(reader, TIMEOUT + 3) == b""
    writer.close()

    garbage = (b"\x00\xff\xfe binary noise\nno colon on this line\n: empty key\nnot_agi: ignored\n"
               b"agi_bad key: ignored\n" + trace.header)
    assert await run_session(port, garbage, trace) == [NEW_CALLER, TEAM_DIAL]

    # Windows line endings are not what Asterisk sends: the header just never ends, and times out.
    crlf = trace.header.replace(b"\n", b"\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(crlf)
    assert await closed_by_server(reader, TIMEOUT + 3) == b""
    writer.close()


async def test_injection_attempts_in_the_caller_id_reach_asterisk_as_nothing(client: TestClient, staff: Staff) -> None:
    port = port_of(client)
    trace = load_trace("inbound_call")
    pops = Collector()
    client.app[BUS_KEY].subscribe("call.screenpop", pops)
    for callerid in (b'0912345678"\rSET VARIABLE PATIENT_ID 1', b'"Evil" <0912345678>', b"\\\"; EXEC System(rm -rf /)",
                     b"0912\r345678", b"+84 91-234.5678 ext\x07", b"x" * 300):
        commands = await run_session(port, with_callerid(trace, callerid), trace)
        assert commands == [NEW_CALLER, TEAM_DIAL], callerid
    await client.app[BUS_KEY].drain()
    assert [e.data["number"] for e in pops.events] == [None] * 6


async def test_unknown_script_ends_the_session_cleanly(client: TestClient) -> None:
    trace = load_trace("inbound_call")
    header = trace.header.replace(b"agi_network_script: identify", b"agi_network_script: transfer")
    assert await run_session(port_of(client), header, trace) == []
    assert client.app[FASTAGI_KEY].health()["served"] == 1


async def test_a_failing_lookup_never_fails_the_call(client: TestClient, staff: Staff) -> None:
    async with client.app[DB_KEY].engine.begin() as conn:
        await conn.execute(text("DROP TABLE patient_phones"))
    pops = Collector()
    client.app[BUS_KEY].subscribe("call.screenpop", pops)
    trace = load_trace("inbound_call")
    # The caller's name is left alone (we do not know who it is), the team's phones ring.
    assert await run_session(port_of(client), trace.header, trace) == [TEAM_DIAL]
    await client.app[BUS_KEY].drain()
    assert pops.events[0].data["known"] is False and pops.events[0].data["number"] == "+84912345678"


async def test_asterisk_hanging_up_mid_session(client: TestClient, staff: Staff) -> None:
    """res_agi sends HANGUP once when the channel goes away; the reply still follows."""
    trace = load_trace("inbound_call")
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(client))
    writer.write(trace.header)
    commands = []
    first = True
    while line := await asyncio.wait_for(reader.readline(), 5):
        commands.append(line.decode().rstrip("\n"))
        writer.write(b"HANGUP\n200 result=1\n" if first else b"200 result=1\n")
        first = False
    writer.close()
    assert commands == [NEW_CALLER, TEAM_DIAL]
    # A multi-line 520 usage message is one reply (res_agi's answer to a command it cannot parse)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(client))
    writer.write(trace.header)
    commands = []
    usage = b"520-Invalid command syntax.  Proper usage follows:\nUsage: SET VARIABLE <variablename> <value>\n" \
            b"520 End of proper usage.\n"
    while line := await asyncio.wait_for(reader.readline(), 5):
        commands.append(line.decode().rstrip("\n"))
        writer.write(usage if len(commands) == 1 else b"200 result=1\n")
    writer.close()
    assert commands == [NEW_CALLER, TEAM_DIAL]
    # A peer that closes instead of replying: the session ends, logged as a protocol error.
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(client))
    writer.write(trace.header)
    assert (await reader.readline()).startswith(b"SET VARIABLE")
    writer.close()
    for _ in range(100):
        if client.app[FASTAGI_KEY].health()["failed"] == 1:
            break
        await asyncio.sleep(0.02)
    assert client.app[FASTAGI_KEY].health()["failed"] == 1


async def test_refuses_a_non_loopback_address(aiohttp_client: Callable[..., object], sqlite_url: str,
                                              make_settings: Callable[..., Settings]) -> None:
    from clinicall.app import create_app

    settings = make_settings(sqlite_url, telephony={"agi_enabled": True, "agi_port": 0, "agi_host": "0.0.0.0"})
    with pytest.raises(RuntimeError, match="AGI_ALLOW_REMOTE"):
        await aiohttp_client(create_app(settings))  # type: ignore[operator]


def test_caller_id_normalisation_and_name_sanitising() -> None:
    assert caller_number("0912345678") == "0912345678"
    assert caller_number("+84912345678") == "+84912345678"
    assert caller_number(" 091 234-5678 ") == "0912345678"
    assert caller_number("(+84) 91.234.5678") == "+84912345678"
    for withheld in ("unknown", "", "  ", "<unknown>", "Anonymous", None):
        assert caller_number(withheld) is None
    for garbage in ("abc", "0912345678;1", "++84912", "1" * 30, "0912\r\n345678"):
        assert caller_number(garbage) is None

    assert safe_callerid_name("Nguyễn Văn An") == "Nguyen Van An"
    assert safe_callerid_name("Đặng Thị Ánh") == "Dang Thi Anh"
    assert safe_callerid_name("Nguyễn Văn An", ascii_only=False) == "Nguyễn Văn An"
    assert safe_callerid_name('Bad "Name"\\\r\nSET VARIABLE X 1') == "Bad Name SET VARIABLE X 1"
    assert safe_callerid_name("${SHELL(id)}$[1+1]") == "SHELL id 1 1"
    assert safe_callerid_name("O'Brien-Smith Jr.") == "O'Brien-Smith Jr."
    assert len(safe_callerid_name("Nguyễn " * 20)) <= 40
    assert len(safe_callerid_name("Nguyễn " * 20, ascii_only=False).encode()) <= 80
    assert safe_callerid_name("\u202e\u0000\u200b") == ""


def test_header_and_reply_parsing() -> None:
    env = parse_header(load_trace("inbound_call_anonymous").header)
    assert env["agi_callerid"] == "unknown" and env["agi_accountcode"] == "" and len(env) == 22
    assert parse_reply("200 result=1 (0912345678)").data == "0912345678"
    assert parse_reply("200 result=1 ()").data == ""
    reply = parse_reply("510 Invalid or unknown command")
    assert reply.code == 510 and reply.result == ""
