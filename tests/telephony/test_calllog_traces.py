"""Every recorded Asterisk 22 call scenario, fed to the call log: the rows it writes, idempotence,
independence from the order across event types, and inbound calls."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from telephony.models import Call
from tests.telephony.conftest import LogHarness, make_harness
from tests.telephony.traces import load

OUTBOUND = {
    # trace: [(originate index, disposition, hangup_code, billsec)]
    "click_to_call_answered": [(0, "answered", 16, 2)],
    "click_to_call_answered_cdr_unanswered_no": [(0, "answered", 16, 2)],
    "click_to_call_channelid_answered": [(0, "answered", 16, 2)],
    "click_to_call_agent_busy": [(0, "busy", 17, 0)],
    "click_to_call_agent_busy_cdr_unanswered_no": [(0, "busy", 17, 0)],
    "click_to_call_channelid_busy": [(0, "busy", 17, 0)],
    "click_to_call_no_answer": [(0, "no_answer", 19, 0)],
    "click_to_call_no_answer_cdr_unanswered_no": [(0, "no_answer", 19, 0)],
    "click_to_call_concurrent": [(0, "answered", 16, 2), (1, "busy", 17, 0)],
    "click_to_call_bad_channel": [(0, "failed", 0, 0)],
    "ami_shutdown_during_call": [(0, "failed", 0, 0)],
}


async def feed(h: LogHarness, trace_name: str, *, order: str = "recorded", twice: bool = False,
               hangup_requested: bool = False) -> list[int]:
    trace = load(trace_name)
    indexes = [i for i, *_ in OUTBOUND.get(trace_name, [])] or ([0] if trace.originates() and "inbound" not in trace_name
                                                                 else [])
    ids = [await h.outbound_from_trace(trace, i) for i in indexes]
    if hangup_requested:
        for call_id in ids:
            await h.log.hangup_requested(call_id)
    messages = trace.timed_messages()
    if order == "shuffled":
        messages = shuffle_across_types(messages, random.Random(trace_name))
    for _ in range(2 if twice else 1):
        for ev, at in messages:
            await h.log.handle(ev, at)
    await h.bus.drain()
    return ids


def shuffle_across_types(messages: list[tuple[dict[str, str], float]], rng: random.Random
                         ) -> list[tuple[dict[str, str], float]]:
    """Interleave the event types at random while each type keeps its own order (what Stasis and
    the originate thread can do to a client)."""
    by_type: dict[str, list[tuple[dict[str, str], float]]] = {}
    for item in messages:
        by_type.setdefault(item[0].get("Event") or "Response", []).append(item)
    out = []
    queues = {k: list(v) for k, v in by_type.items()}
    while queues:
        kind = rng.choice(sorted(queues))
        out.append(queues[kind].pop(0))
        if not queues[kind]:
            del queues[kind]
    return out


def summary(call: Call) -> dict[str, Any]:
    return {k: getattr(call, k) for k in ("direction", "state", "disposition", "hangup_code", "billsec", "patient_id",
                                          "agent_extension", "number", "originate_reason")}


@pytest.mark.parametrize("trace_name", sorted(OUTBOUND))
async def test_outbound_trace_gives_the_recorded_outcome(harness: LogHarness, trace_name: str) -> None:
    settings_dial = trace_name.endswith("_dial")
    assert not settings_dial
    ids = await feed(harness, trace_name)
    for call_id, (_, disposition, code, billsec) in zip(ids, OUTBOUND[trace_name], strict=True):
        call = await harness.row(call_id)
        assert call.state == "ended", trace_name
        assert (call.disposition, call.hangup_code, call.billsec) == (disposition, code, billsec), trace_name
        assert call.ended_at is not None and call.ended_at >= call.created_at
        assert call.duration is not None and call.duration >= call.billsec
        if disposition == "answered":
            assert call.answered_at is not None and call.created_at <= call.answered_at <= call.ended_at
        else:
            assert call.answered_at is None
    states = [e.data["state"] for e in harness.events if e.data["call_id"] == ids[0]]
    assert states[-1] == "ended"
    assert all(s == "ended" for s in states[states.index("ended"):]), "a call never leaves 'ended'"
    last = [e.data for e in harness.events if e.data["call_id"] == ids[0]][-1]
    assert (last["disposition"], last["billsec"]) == (OUTBOUND[trace_name][0][1], OUTBOUND[trace_name][0][3])
    rows = await harness.rows()
    assert all(r.direction == "outbound" for r in rows), "a click-to-call trace must not create an inbound call"


async def test_failed_originate_is_linked_by_action_id_only(harness: LogHarness) -> None:
    # Without ChannelId the failure's channels carry Asterisk's own ids: only the ActionID links the call.
    ids = await feed(harness, "click_to_call_agent_busy_cdr_unanswered_no")
    call = await harness.row(ids[0])
    assert (call.disposition, call.originate_reason, call.hangup_cause) == ("busy", "5", "User busy")


async def test_no_answer_rang_first(harness: LogHarness) -> None:
    ids = await feed(harness, "click_to_call_no_answer")
    call = await harness.row(ids[0])
    assert call.ringing_at is not None and call.ringing_at < call.ended_at  # type: ignore[operator]
    states = [e.data["state"] for e in harness.events]
    assert states.index("ringing") < states.index("ended")


async def test_cancelled_by_the_agent(harness: LogHarness) -> None:
    ids = await feed(harness, "click_to_call_cancel", hangup_requested=True)
    call = await harness.row(ids[0])
    assert (call.state, call.disposition, call.originate_reason) == ("ended", "cancelled", "0")


async def test_answered_through_dial_counts_the_patient_leg(sqlite_url: str) -> None:
    async for h in make_harness(sqlite_url, outbound_context="outbound_dial"):
        ids = await feed_dial(h)
        call = await h.row(ids[0])
        assert (call.state, call.disposition, call.hangup_code) == ("ended", "answered", 16)
        assert call.billsec is not None and call.billsec >= 2
        assert call.ringing_at is not None and call.answered_at is not None


async def feed_dial(h: LogHarness) -> list[int]:
    trace = load("click_to_call_answered_dial")
    ids = [await h.outbound_from_trace(trace, 0)]
    for ev, at in trace.timed_messages():
        await h.log.handle(ev, at)
    await h.bus.drain()
    return ids


INBOUND = {  # number stored E.164 (the raw form beside it), patient id
    "inbound_call": (("+84912345678", "0912345678"), 42),
    "inbound_call_e164": (("+84912345678", "+84912345678"), 42),
    "inbound_call_with_name": (("+84987654321", "0987654321"), 42),
    "inbound_call_anonymous": ((None, None), 42),
    "inbound_call_agi_down": (("+84912345678", "0912345678"), None),
}


@pytest.mark.parametrize("trace_name", sorted(INBOUND))
async def test_inbound_trace_logs_one_inbound_call(harness: LogHarness, trace_name: str) -> None:
    await feed(harness, trace_name)
    rows = await harness.rows()
    assert len(rows) == 1, [summary(r) for r in rows]
    call = rows[0]
    number, patient = INBOUND[trace_name]
    assert (call.direction, call.state, call.disposition) == ("inbound", "ended", "answered")
    assert ((call.number, call.number_raw), call.patient_id, call.agent_extension) == (number, patient, "1001")
    assert call.origin == "trunk" and call.talk_seconds is not None and int(call.talk_seconds) == call.billsec
    assert call.billsec == 2 and call.hangup_code == 16
    assert call.answered_at is not None and call.ringing_at is not None


@pytest.fixture
async def both_db_harness(db_url: str) -> AsyncIterator[LogHarness]:
    async for h in make_harness(db_url):
        yield h


@pytest.mark.parametrize("trace_name", ["click_to_call_concurrent", "inbound_call"])
async def test_same_events_twice_change_nothing(both_db_harness: LogHarness, trace_name: str) -> None:
    h = both_db_harness
    await feed(h, trace_name)
    first_rows = [summary(r) | {"ended_at": r.ended_at, "answered_at": r.answered_at} for r in await h.rows()]
    published = len(h.events)
    trace = load(trace_name)
    for ev, at in trace.timed_messages(base=1_800_000_500.0):  # the same events, later
        await h.log.handle(ev, at)
    await h.bus.drain()
    again = [summary(r) | {"ended_at": r.ended_at, "answered_at": r.answered_at} for r in await h.rows()]
    assert again == first_rows
    assert len(h.events) == published, "a replayed event must not publish call.updated again"


@pytest.mark.parametrize("trace_name", sorted(OUTBOUND) + sorted(INBOUND))
async def test_order_across_event_types_does_not_matter(sqlite_url: str, tmp_path: Any, trace_name: str) -> None:
    results = []
    for order in ("recorded", "shuffled"):
        url = f"sqlite+aiosqlite:///{tmp_path}/{order}.db"
        import shutil

        shutil.copyfile(sqlite_url.removeprefix("sqlite+aiosqlite:///"), url.removeprefix("sqlite+aiosqlite:///"))
        async for h in make_harness(url):
            await feed(h, trace_name, order=order)
            results.append([summary(r) for r in await h.rows()])
    assert results[0] == results[1]
