"""clinicall against the real Asterisk 22 (tests/fixtures/asterisk/rig/config), end to end: click-to-call
answered / busy / no answer, an inbound caller identified (screen-pop, the call row's patient),
`core restart now` and `core stop now` in the middle of calls, and a call that ends while clinicall is
killed (`clinicall serve`, SIGKILL), whose true end comes from Asterisk's CEL database. Every finished
call must stay exactly as it was. Asterisk writes its CEL rows to SQLite and to the tests' PostgreSQL
(cel_pgsql) at once; the calls are kept on SQLite, and on PostgreSQL in the restart test. Skipped, with
the reason, where no Asterisk is found (tests/telephony/asterisk_rig.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from clinicall.app import create_app
from clinicall.db import Database
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from telephony.models import Call
from tests.conftest import Staff
from tests.servers import free_port
from tests.telephony.asterisk_rig import Asterisk
from tests.telephony.real_asterisk import asterisk_idle, inbound_call, link_ready
from tests.waiting import until

# test -> (clinicall's database, the CEL database it recovers from); SQLite for both otherwise
DATABASES = {
    "test_restart_and_stop_mid_call_leave_finished_calls_exactly_as_they_were": ("postgresql", "sqlite"),
    "test_a_call_that_ends_while_clinicall_is_killed_gets_its_true_end_from_cel": ("sqlite", "postgresql"),
}


@pytest.fixture
def settings(request: pytest.FixtureRequest, rig_settings: Callable[..., Settings], asterisk: Asterisk) -> Settings:
    calls, cel = DATABASES.get(request.node.originalname, ("sqlite", "sqlite"))
    database = request.getfixturevalue("pg_url" if calls == "postgresql" else "sqlite_url")
    cel_database = request.getfixturevalue("cel_postgres") if cel == "postgresql" else str(asterisk.sqlite_path)
    return rig_settings(database, cel_database)


async def new_patient(client: TestClient, staff: Staff, number: str, agent: str = "agent") -> tuple[int, int]:
    response = await client.post("/api/patients", headers=staff.headers("admin"), json={
        "full_name": "Nguyễn Văn An", "assigned_agent_id": staff.ids[agent],
        "phones": [{"number": number, "label": "mobile"}]})
    assert response.status == 201, await response.text()
    patient = (await response.json())["patient"]
    return patient["id"], patient["phones"][0]["id"]


async def dial(client: TestClient, staff: Staff, number: str, agent: str = "agent") -> int:
    patient_id, phone_id = await new_patient(client, staff, number, agent)
    response = await client.post("/api/calls", headers=staff.headers(agent),
                                 json={"patient_id": patient_id, "phone_id": phone_id})
    assert response.status == 202, await response.text()
    return int((await response.json())["call"]["id"])


async def call(client: TestClient, call_id: int) -> dict[str, Any]:
    """The call's row, every column (the API shows only some)."""
    async with client.app[DB_KEY].session() as session:
        row = await session.get(Call, call_id)
        assert row is not None, call_id
        return {column.key: getattr(row, column.key) for column in Call.__table__.columns}


async def calls_of(client: TestClient, patient_id: int) -> list[dict[str, Any]]:
    async with client.app[DB_KEY].session() as session:
        ids = (await session.execute(select(Call.id).where(Call.patient_id == patient_id))).scalars().all()
    return [await call(client, i) for i in sorted(ids)]


async def ended(client: TestClient, staff: Staff, call_id: int, seconds: float = 30) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        row = await call(client, call_id)
        return row if row["state"] == "ended" else None
    return dict(await until(done, f"call {call_id} ended", seconds))


async def settled(client: TestClient, staff: Staff, call_id: int) -> dict[str, Any]:
    """The ended call once its late events (Cdr, CEL) are in: the row no longer changes for 1.5 s."""
    row = await ended(client, staff, call_id)
    while True:
        await asyncio.sleep(1.5)
        again = await call(client, call_id)
        if again == row:
            return row
        row = again


async def answered(client: TestClient, staff: Staff, call_id: int) -> dict[str, Any]:
    async def up() -> dict[str, Any] | None:
        row = await call(client, call_id)
        return row if row["answered_at"] else None
    return dict(await until(up, f"call {call_id} answered", 20))


async def test_click_to_call_answered_busy_and_no_answer(client: TestClient, staff: Staff) -> None:
    await link_ready(client)
    rows = {}
    for number in ("0901234567", "0901230002", "0901230003"):
        rows[number] = await ended(client, staff, await dial(client, staff, number))

    ok, busy, silent = rows["0901234567"], rows["0901230002"], rows["0901230003"]
    assert (ok["direction"], ok["disposition"], ok["hangup_code"]) == ("outbound", "answered", 16)
    assert ok["number"] == "+84901234567" and ok["origin"] == "click_to_call"
    # the patient's phone rings 2 s, then the patient talks 2 s: the agent's own answer (0.5 s) counts for neither
    assert ok["answered_at"] and 1 <= ok["talk_seconds"] <= 3, ok
    assert 1 <= ok["ring_seconds"] <= 3, ok
    assert (busy["disposition"], busy["answered_at"], busy["talk_seconds"]) == ("busy", None, 0)
    assert (silent["disposition"], silent["answered_at"], silent["talk_seconds"]) == ("no_answer", None, 0)
    assert silent["ring_seconds"] >= 2  # the patient leg is dialled for 3 s


async def test_inbound_caller_identified_screen_pop_and_row(client: TestClient, staff: Staff,
                                                           asterisk: Asterisk) -> None:
    await link_ready(client)
    patient_id, _ = await new_patient(client, staff, "0912345678")
    async with client.ws_connect("/ws/agent", headers=staff.headers("agent")) as ws:
        assert json.loads((await ws.receive()).data)["type"] == "hello"
        inbound_call(asterisk, "inbound-known", "0912345678", 2)
        pop = await until(lambda: receive_type(ws, "call.screenpop"), "the screen-pop", 20)
    assert pop["data"]["known"] is True and pop["data"]["patient"]["id"] == patient_id
    assert pop["data"]["agent_extensions"] == ["1001"] and pop["data"]["number"] == "+84912345678"

    async def logged() -> dict[str, Any] | None:
        calls = await calls_of(client, patient_id)
        return calls[0] if calls and calls[0]["state"] == "ended" else None
    row = await until(logged, "the inbound call's row", 20)
    assert (row["direction"], row["disposition"], row["patient_id"]) == ("inbound", "answered", patient_id)
    assert row["number"] == "+84912345678" and row["caller_name"] == "Nguyễn Văn An"
    assert row["agent_extension"] == "1001" and 1 <= row["talk_seconds"] <= 3


async def receive_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any] | None:
    try:
        message = await ws.receive(timeout=0.5)
    except TimeoutError:
        return None
    body = json.loads(message.data)
    return body if body["type"] == kind else None


async def test_restart_and_stop_mid_call_leave_finished_calls_exactly_as_they_were(
        client: TestClient, staff: Staff, asterisk: Asterisk) -> None:
    await link_ready(client)
    first = await settled(client, staff, await dial(client, staff, "0901234567"))
    assert first["disposition"] == "answered"

    # two calls up, then `core restart now`
    patient_id, _ = await new_patient(client, staff, "0912345678", agent="agent2")
    inbound_call(asterisk, "inbound-restart", "0912345678", 60)
    long_call = await dial(client, staff, "0901230005")  # the patient talks 60 s
    await answered(client, staff, long_call)
    await until(lambda: "Local/1002@agents" in asterisk.cli("core show channels"), "agent 1002 up", 20)
    asterisk.cli("core restart now")
    asterisk.wait_booted()
    await link_ready(client, readies=2)

    cut = await settled(client, staff, long_call)
    assert cut["disposition"] == "answered" and cut["answered_at"] and cut["ended_at"]
    (inbound,) = await calls_of(client, patient_id)
    inbound = await settled(client, staff, inbound["id"])
    assert (inbound["direction"], inbound["disposition"], inbound["agent_extension"]) == ("inbound", "answered", "1002")
    finished = {row["id"]: row for row in (first, cut, inbound)}
    assert await call(client, first["id"]) == first

    # another call up, then `core stop now`, then Asterisk again
    last = await dial(client, staff, "0901230005")
    await answered(client, staff, last)
    asterisk.cli("core stop now")
    asterisk.wait_stopped()
    asterisk.start()
    await link_ready(client, readies=3)
    stopped = await ended(client, staff, last)
    assert stopped["disposition"] == "answered" and stopped["ended_at"]
    for call_id, before in finished.items():
        assert await call(client, call_id) == before, f"call {call_id} was rewritten"


def serve_env(settings: Settings, http_port: int) -> dict[str, str]:
    """`clinicall serve` with exactly these settings (each section as JSON), on its own HTTP port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICALL_")}
    for key, value in settings.model_dump(mode="json").items():
        env[f"CLINICALL_{key.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    env["CLINICALL_HTTP"] = json.dumps({**settings.model_dump(mode="json")["http"], "port": http_port})
    env["CLINICALL_LOG_LEVEL"] = "WARNING"
    return env


async def test_a_call_that_ends_while_clinicall_is_killed_gets_its_true_end_from_cel(
        client: TestClient, staff: Staff, asterisk: Asterisk, settings: Settings,
        aiohttp_client: Callable[..., Any], tmp_path: Path) -> None:
    patient_id, phone_id = await new_patient(client, staff, "0901234567")
    await client.close()  # the in-process app only set up the users and the patient

    port = free_port()
    output = tmp_path / "serve.log"
    with output.open("wb") as log:
        server = await asyncio.create_subprocess_exec(sys.executable, "-m", "clinicall.cli", "serve",
                                                      env=serve_env(settings, port), stdout=log, stderr=log)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async def started() -> int | None:
                if server.returncode is not None:
                    raise AssertionError(f"clinicall serve exited:\n{output.read_text()}")
                try:
                    response = await http.post("/api/calls", headers=staff.headers("agent"),
                                               json={"patient_id": patient_id, "phone_id": phone_id})
                except aiohttp.ClientConnectionError:
                    return None
                if response.status == 503:  # AMI not ready yet
                    return None
                assert response.status == 202, await response.text()
                return int((await response.json())["call"]["id"])
            call_id = await until(started, "clinicall serve took the call", 60)
            await until(lambda: answered_in(settings, call_id), "the call answered", 20)
        server.kill()  # kill -9 while the patient talks
        await server.wait()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    await asterisk_idle(asterisk)

    again: TestClient = await aiohttp_client(create_app(settings))
    await link_ready(again)
    row = await ended(again, staff, call_id)
    assert (row["state"], row["disposition"], row["hangup_code"]) == ("ended", "answered", 16)
    assert 1 <= row["talk_seconds"] <= 3, row
    assert row["ended_at"] > row["answered_at"]


async def answered_in(settings: Settings, call_id: int) -> bool:
    db = Database(settings.database.url)
    try:
        async with db.session() as session:
            row = await session.get(Call, call_id)
            return row is not None and row.answered_at is not None
    finally:
        await db.dispose()
