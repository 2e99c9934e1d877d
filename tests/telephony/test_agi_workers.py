"""FastAGI in two processes on one port (telephony.agi_workers = 2, no Redis): every session is answered and
audited, and every screen-pop reaches the serve process's bus (a worker forwards its events over its Unix
socket), whichever process the kernel handed the connection to; a script only the serve process has is
served there, whichever process accepted the connection."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from clinicall.bus import Event
from clinicall.keys import BUS_KEY, DB_KEY
from clinicall.settings import Settings
from crm_bridge.audit import list_audit
from crm_bridge.patients import PatientIn, PhoneIn, create_patient
from telephony.agi import FASTAGI_KEY, AGISession
from tests.conftest import Staff
from tests.telephony.agi_peer import Collector, load_trace, run_session, with_callerid


@pytest.fixture
def settings(pg_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(pg_url, telephony={"agi_enabled": True, "agi_port": 0, "agi_workers": 2, "agi_timeout_seconds": 30.0,
                                    "agi_lookup_timeout_seconds": 30.0})


class Screenpops(Collector):
    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.all_in = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        await super().__call__(event)
        if len(self.events) >= self.expected:
            self.all_in.set()


async def test_two_workers_share_the_port(client: TestClient, staff: Staff) -> None:
    db = client.app[DB_KEY]
    patient_id = await create_patient(db, PatientIn(full_name="Trần Thị Mai", phones=[PhoneIn(number="0912345678")],
                                                    assigned_agent_id=staff.ids["agent"]), staff.ids["admin"], "VN")
    server = client.app[FASTAGI_KEY]
    assert server.health()["workers"] == 2 and server.health()["workers_alive"] == 2
    pops = Screenpops(40)
    client.app[BUS_KEY].subscribe("call.screenpop", pops)
    trace = load_trace("inbound_call")
    unknown = with_callerid(trace, b"0281234567")
    sessions = [run_session(server.port, trace.header, trace, wait=60) for _ in range(30)]
    sessions += [run_session(server.port, unknown, trace, wait=60) for _ in range(10)]
    results = await asyncio.gather(*sessions)
    known = ['SET VARIABLE CALLERID(name) "Tran Thi Mai"', f"SET VARIABLE PATIENT_ID {patient_id}",
             "SET VARIABLE CLINICALL_AGENT_EXT 1001"]
    assert results[:30] == [known] * 30
    assert all(commands[0] == 'SET VARIABLE CALLERID(name) "Khach moi"' for commands in results[30:])
    assert server.health()["served"] < 40  # the other process took some (the kernel spreads by address and port)
    rows = await list_audit(db, patient_id=patient_id, action="caller_identified", limit=100)
    assert len(rows) == 30
    async with asyncio.timeout(60):  # a state to wait for: the worker's screen-pops cross its socket
        await pops.all_in.wait()
    assert sorted(event.data["known"] for event in pops.events) == [False] * 10 + [True] * 30


async def test_a_script_only_serve_has_is_handed_over(client: TestClient) -> None:
    server = client.app[FASTAGI_KEY]
    seen: list[str] = []

    async def hello(session: AGISession) -> None:  # registered here only, as another room would
        seen.append(session.env["agi_uniqueid"])
        await session.command('VERBOSE "hello" 1')

    server.scripts["hello"] = hello
    trace = load_trace("inbound_call")
    headers = [re.sub(rb"(?m)^agi_uniqueid: .*$", f"agi_uniqueid: 1795324352.{n}".encode(),
                      trace.header.replace(b"agi_network_script: identify", b"agi_network_script: hello")) for n in range(30)]
    results = await asyncio.gather(*(run_session(server.port, header, trace, wait=60) for header in headers))
    assert results == [['VERBOSE "hello" 1']] * 30
    assert sorted(seen) == sorted(f"1795324352.{n}" for n in range(30))
    assert server.health()["served"] == 30 and server.health()["workers_alive"] == 2
