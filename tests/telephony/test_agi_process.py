"""`clinicall-agi identify`, the pyst2 process AGI, run as a real process: the recorded Asterisk
header on its stdin, its commands read from stdout and answered like res_agi, against the real
app serving HTTP on a real port."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from clinicall.auth import service as auth_service
from clinicall.keys import BUS_KEY, DB_KEY
from clinicall.settings import Settings
from tests.conftest import PASSWORD, Staff
from tests.servers import free_port
from tests.telephony.agi_peer import Collector, load_trace

CLINICALL_AGI = [str(Path(sys.executable).parent / "clinicall-agi")]
# The fast path the docs recommend: the file itself, without importing the telephony package.
AGI_FILE = [sys.executable, "-P", str(Path(__file__).resolve().parents[2] / "telephony" / "agi_process.py")]


@pytest.fixture
def settings(sqlite_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(sqlite_url)


@pytest.fixture
async def agi_token(client: TestClient, staff: Staff) -> str:
    """A service account for Asterisk: role supervisor (it identifies every agent's callers), no extension
    (so its phone never rings)."""
    db = client.app[DB_KEY]
    user = await auth_service.create_user(db, "asterisk", PASSWORD, ["supervisor"], "Asterisk AGI")
    return await auth_service.create_api_token(db, user.id, "clinicall-agi")


async def run_agi(url: str, token: str, header: bytes, config_file: Path | None = None,
                  command: list[str] = CLINICALL_AGI) -> tuple[list[str], int, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLINICALL_")}
    if config_file is None:
        env.update(CLINICALL_AGI_URL=url, CLINICALL_AGI_TOKEN=token, CLINICALL_AGI_CONFIG="/nonexistent/agi.toml")
    else:
        env["CLINICALL_AGI_CONFIG"] = str(config_file)
    process = await asyncio.create_subprocess_exec(
        *command, "identify", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    assert process.stdin and process.stdout and process.stderr
    process.stdin.write(header)
    await process.stdin.drain()
    commands = []
    while line := await asyncio.wait_for(process.stdout.readline(), 30):
        commands.append(line.decode().rstrip("\n"))
        process.stdin.write(b"200 result=1\n")
        await process.stdin.drain()
    code = await asyncio.wait_for(process.wait(), 30)
    return commands, code, (await process.stderr.read()).decode()


async def test_process_agi_identifies_through_the_http_api(client: TestClient, staff: Staff, agi_token: str,
                                                          tmp_path: Path) -> None:
    from crm_bridge.patients import PatientIn, PhoneIn, create_patient

    patient_id = await create_patient(client.app[DB_KEY], PatientIn(
        full_name="Nguyễn Văn An", phones=[PhoneIn(number="0912345678")], assigned_agent_id=staff.ids["agent"]),
        staff.ids["admin"], "VN")
    pops = Collector()
    client.app[BUS_KEY].subscribe("call.screenpop", pops)
    url = str(client.make_url(""))

    expected = ['SET VARIABLE "CALLERID(name)" "Nguyen Van An"', f'SET VARIABLE "PATIENT_ID" "{patient_id}"',
                'SET VARIABLE "CLINICALL_AGENT_EXT" "1001"']
    for command in (CLINICALL_AGI, AGI_FILE):
        commands, code, _ = await run_agi(url, agi_token, load_trace("inbound_call").header, command=command)
        assert (commands, code) == (expected, 0), command

    # The same from a config file instead of the environment; a withheld number is a new caller.
    config = tmp_path / "agi.toml"
    config.write_text(f'url = "{url}"\ntoken = "{agi_token}"\ntimeout_seconds = 5\n')
    commands, code, _ = await run_agi(url, agi_token, load_trace("inbound_call_anonymous").header, config)
    assert code == 0
    assert commands == ['SET VARIABLE "CALLERID(name)" "Khach moi"',
                        'SET VARIABLE "CLINICALL_AGENT_DIAL" "PJSIP/1001&PJSIP/1002&PJSIP/1009"']

    await client.app[BUS_KEY].drain()
    assert [(e.data["call_uniqueid"], e.data["known"], e.data["agent_ids"]) for e in pops.events] == [
        ("1795324352.13", True, [staff.ids["agent"]]),
        ("1795324352.13", True, [staff.ids["agent"]]),
        ("1795324508.1", False, [staff.ids["agent"], staff.ids["agent2"], staff.ids["supervisor"]])]


async def test_process_agi_sets_nothing_and_exits_0_when_the_service_fails(client: TestClient, agi_token: str) -> None:
    header = load_trace("inbound_call").header
    commands, code, stderr = await run_agi(str(client.make_url("")), "wrong-token", header)
    assert (commands, code) == ([], 0)
    assert "lookup failed" in stderr and "401" in stderr

    commands, code, stderr = await run_agi(f"http://127.0.0.1:{free_port()}", agi_token, header)
    assert (commands, code) == ([], 0)
    assert "lookup failed" in stderr
