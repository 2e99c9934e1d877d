"""The issue-17 traces (tests/fixtures/asterisk/rig, recorded from a real Asterisk 22), replayed into the
call log as clinicall's own AMI session received them: each call gives the row MANIFEST.md says
(direction, origin, disposition, number, talk and ring seconds, who answered). The restart runs are
replayed session after session, and the calls that ended while nobody listened are recovered from the
CEL rows the same Asterisk wrote."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telephony.cel_source import CelSource
from telephony.models import Call
from tests.telephony.conftest import LogHarness, make_harness
from tests.telephony.traces import load

RIG = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "rig"

# scenario -> the rows, oldest first: (direction, origin, disposition, number, talk, ring, answered by)
# talk / ring as MANIFEST.md gives them (tenths); the row holds whole seconds.
EXPECTED: dict[str, list[tuple[str, str, str, str | None, float, float | None, str | None]]] = {
    "desk_phone_outbound": [("outbound", "desk_phone", "answered", "+84901234567", 4.5, 2.0, None)],
    "desk_phone_outbound_busy": [("outbound", "desk_phone", "busy", "+84901230002", 0, None, None)],
    "desk_phone_outbound_via_inbound_context": [("outbound", "desk_phone", "answered", "+84901234567", 4.5, 2.0,
                                                 None)],
    "inbound_forwarded_to_mobile": [("inbound", "trunk", "answered", "+84912345678", 4.5, 2.0, None)],
    "blind_transfer": [("inbound", "trunk", "answered", "+84912345678", 11.0, 1.0, "1001")],
    "attended_transfer": [("inbound", "trunk", "answered", "+84912345678", 12.0, 1.0, "1001")],
    "ring_group": [("inbound", "trunk", "answered", "+84933333333", 6.0, 1.0, "1002")],
    "hunt_noanswer_then_group": [("inbound", "trunk", "answered", "+84912345678", 5.0, 5.0, "1001")],
    "inbound_withheld": [("inbound", "trunk", "answered", None, 4.0, 1.0, "1001")],
    "inbound_withheld_midcall": [("inbound", "trunk", "answered", None, 6.0, 1.0, "1001")],
}


@pytest.fixture
async def internal_harness(sqlite_url: str) -> AsyncIterator[LogHarness]:
    """A call log that logs agent-to-agent calls (its own database)."""
    async for h in make_harness(sqlite_url, log_internal_calls=True):
        yield h


def connected_at(session: str) -> float:
    """Asterisk's clock when the session connected, to the millisecond: the rig session (same start as
    clinicall's) got `SuccessfulAuth` with `EventTV` at a known offset. AMI, Cdr and CEL times then agree."""
    for line in (RIG / f"{session}.all.timeline.jsonl").read_text().splitlines():
        step = json.loads(line)
        if step["dir"] == "recv" and (found := re.search(r"EventTV: (\S+)\r\n", step["data"])):
            return dt.datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() - step["t"]
    raise AssertionError(f"{session}: no SuccessfulAuth")


async def replay(h: LogHarness, session: str) -> None:
    trace = load(f"rig/{session}")
    base = connected_at(session)
    for index in range(len(trace.originates())):
        await h.outbound_from_trace(trace, index, base)
    await h.log.handle_batch(trace.timed_messages(base))


def check(row: Call, expected: tuple[str, str, str, str | None, float, float | None, str | None]) -> None:
    direction, origin, disposition, number, talk, ring, agent = expected
    got = {"direction": row.direction, "origin": row.origin, "disposition": row.disposition, "number": row.number,
           "state": row.state}
    assert got == {"direction": direction, "origin": origin, "disposition": disposition, "number": number,
                   "state": "ended"}, row.id
    assert row.talk_seconds is not None and abs(row.talk_seconds - talk) <= 1, (row.talk_seconds, talk)
    if ring is not None:
        assert row.ring_seconds is not None and abs(row.ring_seconds - ring) <= 1, (row.ring_seconds, ring)
    if agent is not None:
        assert row.agent_extension == agent
    if disposition == "answered":
        assert row.answered_at is not None and row.ended_at is not None


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
async def test_each_call_of_the_trace_gives_its_row(harness: LogHarness, scenario: str) -> None:
    await replay(harness, scenario)
    rows = await harness.rows()
    assert len(rows) == len(EXPECTED[scenario]), [(r.direction, r.origin, r.linkedid) for r in rows]
    for row, expected in zip(rows, EXPECTED[scenario], strict=True):
        check(row, expected)


async def test_a_withheld_number_is_not_stored_even_raw(harness: LogHarness) -> None:
    for scenario in ("inbound_withheld", "inbound_withheld_midcall"):
        await replay(harness, scenario)
    for row in await harness.rows():
        assert "0912345678" not in json.dumps({c.key: str(getattr(row, c.key)) for c in Call.__table__.columns})


async def test_transfers_keep_every_leg(harness: LogHarness) -> None:
    for scenario in ("blind_transfer", "attended_transfer"):
        await replay(harness, scenario)
    for row in await harness.rows():
        legs = json.loads(row.legs or "[]")
        answered = {leg.get("extension") for leg in legs if leg.get("answered_at")}
        assert {"1001", "1002"} <= answered, legs


async def test_an_internal_call_is_not_logged_by_default(harness: LogHarness) -> None:
    await replay(harness, "desk_phone_internal")
    assert await harness.rows() == []


async def test_an_internal_call_is_logged_when_asked(internal_harness: LogHarness) -> None:
    await replay(internal_harness, "desk_phone_internal")
    (row,) = await internal_harness.rows()
    assert (row.direction, row.state, row.number) == ("internal", "ended", None)


async def test_restart_then_stop_session_after_session(harness: LogHarness) -> None:
    sessions = ["restart_then_stop", "restart_then_stop_after_restart", "restart_then_stop_after_stop"]
    snapshots: dict[int, dict[str, Any]] = {}
    for session in sessions:
        await replay(harness, session)
        for row in await harness.rows():
            values = {c.key: getattr(row, c.key) for c in Call.__table__.columns if c.key != "updated_at"}
            if row.id in snapshots:
                assert values == snapshots[row.id], f"call {row.id} rewritten by {session}"
            elif row.state == "ended":
                snapshots[row.id] = values
    rows = {row.action_id or row.linkedid: row for row in await harness.rows()}
    assert sorted(rows) == ["1796139823.51", "clinicall-101", "clinicall-102", "clinicall-103"]
    check(rows["clinicall-101"], ("outbound", "click_to_call", "answered", "+84901234567", 4.5, 2.0, "1001"))
    check(rows["clinicall-102"], ("outbound", "click_to_call", "answered", "+84901230005", 3.0, 2.0, "1001"))
    check(rows["1796139823.51"], ("inbound", "trunk", "answered", "+84912345678", 5.0, 1.0, "1002"))
    check(rows["clinicall-103"], ("outbound", "click_to_call", "answered", "+84901230005", 3.0, 2.0, "1001"))


async def test_calls_that_ended_while_nobody_listened_come_back_from_cel(harness: LogHarness, tmp_path: Path) -> None:
    await replay(harness, "ended_while_disconnected")
    harness.log.link_lost()
    db = tmp_path / "master.db"
    with sqlite3.connect(db) as conn:
        conn.executescript((RIG / "ended_while_disconnected.cel.sqlite.sql").read_text())
    harness.log.cel_source = CelSource(str(db), tz=dt.UTC)
    await replay(harness, "ended_while_disconnected_reconnect")
    await harness.log.reconcile(set(), connected_at("ended_while_disconnected_reconnect"), [])

    rows = {row.action_id or row.linkedid: row for row in await harness.rows()}
    check(rows["clinicall-201"], ("outbound", "click_to_call", "answered", "+84901234567", 4.5, 2.0, "1001"))
    check(rows["1796139927.2"], ("inbound", "trunk", "answered", "+84912345678", 5.0, 1.0, "1002"))
    assert rows["clinicall-201"].hangup_code == 16
