"""The AMI link against real recorded Asterisk 22 sessions replayed over TCP: login, events to the
call log, failures linked by ActionID, login failure, boot, shutdown, reconnect with back-off, and
the guarantee that an Originate is never sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from telephony.ami import AmiLink
from telephony.wire import encode_action, first
from tests.telephony.conftest import LogHarness
from tests.telephony.replay import ReplayPeer
from tests.telephony.test_calllog_traces import OUTBOUND
from tests.telephony.traces import load
from tests.waiting import until


async def quiet(link: AmiLink) -> None:
    """Until the link has taken in everything the peer wrote (no new event for 0.2 s)."""
    seen = -1
    while seen != link.calllog.events_seen:
        seen = link.calllog.events_seen
        await asyncio.sleep(0.2)
        await link.drain()


@pytest.fixture
async def link_factory(harness: LogHarness) -> AsyncIterator[Callable[[int], Awaitable[AmiLink]]]:
    links: list[AmiLink] = []

    async def build(port: int) -> AmiLink:
        link = AmiLink(host="127.0.0.1", port=port, username="clinic", secret="clinicpass", calllog=harness.log,
                       min_delay=0.05, max_delay=0.2)
        links.append(link)
        await link.start()
        return link

    yield build
    for link in links:
        await link.stop()


REPLAYED = {**OUTBOUND, "click_to_call_cancel": [(0, "cancelled", 16, 0)],
            "click_to_call_bad_channel": [(0, "failed", 0, 0), (1, "failed", None, 0)]}


@pytest.mark.parametrize("trace_name", sorted(REPLAYED))
async def test_replayed_click_to_call(harness: LogHarness, link_factory: Callable[[int], Awaitable[AmiLink]],
                                      trace_name: str) -> None:
    trace = load(trace_name)
    peer = ReplayPeer([trace])
    link = await link_factory(await peer.start())
    await link.wait_ready()
    expected = REPLAYED[trace_name]
    ids = [await harness.outbound_from_trace(trace, i, now=True) for i, *_ in expected]
    originates = iter(ids)
    for action in trace.actions():
        name = first(action, "Action")
        if name in ("Login", "Logoff"):
            continue
        if name == "Hangup":
            await harness.log.hangup_requested(ids[0])
        sent = link.send_own(action, call_id=next(originates) if name == "Originate" else None)
        assert sent == encode_action(action)
    await asyncio.wait_for(peer.sessions[0].finished.wait(), 20)

    async def all_ended() -> bool:
        return all([(await harness.row(i)).state == "ended" for i in ids])

    await until(all_ended, seconds=10)
    await quiet(link)
    for call_id, (_, disposition, code, billsec) in zip(ids, expected, strict=True):
        call = await harness.row(call_id)
        assert (call.disposition, call.billsec) == (disposition, billsec), trace_name
        if code is not None:
            assert call.hangup_code == code
    login = peer.sessions[0].raw.split(b"\r\n\r\n")[0].decode()
    recorded_login = trace.actions()[0]
    for name, value in recorded_login:
        assert f"{name}: {value}" in login.split("\r\n"), f"login lacks {name}"
    # what the client sent after login is exactly the recorded actions, in order
    assert [a for a in peer.sessions[0].actions if first(a, "Action") != "Login"] == [
        a for a in trace.actions() if first(a, "Action") not in ("Login", "Logoff")]
    await peer.close()


async def test_bad_sync_originate_is_failed_with_asterisks_message(
        harness: LogHarness, link_factory: Callable[[int], Awaitable[AmiLink]]) -> None:
    trace = load("click_to_call_bad_channel")
    peer = ReplayPeer([trace])
    link = await link_factory(await peer.start())
    await link.wait_ready()
    sync_id = await harness.outbound_from_trace(trace, 1, now=True)
    link.send_own(trace.originates()[0])  # the async one, not ours here
    link.send_own(trace.originates()[1], call_id=sync_id)

    async def ended() -> bool:
        return (await harness.row(sync_id)).state == "ended"

    await until(ended, seconds=10)
    call = await harness.row(sync_id)
    assert call.disposition == "failed" and "Originate failed" in (call.hangup_cause or "")
    await peer.close()


async def test_inbound_call_over_tcp(harness: LogHarness, link_factory: Callable[[int], Awaitable[AmiLink]]) -> None:
    trace = load("inbound_call")
    peer = ReplayPeer([trace])
    link = await link_factory(await peer.start())
    await link.wait_ready()
    link.send_own(trace.originates()[0])  # the recorder's simulated caller
    await asyncio.wait_for(peer.sessions[0].finished.wait(), 20)

    async def ended() -> bool:
        rows = await harness.rows()
        return len(rows) == 1 and rows[0].state == "ended"

    await until(ended, seconds=10)
    call = (await harness.rows())[0]
    assert (call.direction, call.disposition, call.number, call.number_raw, call.patient_id, call.agent_extension) == (
        "inbound", "answered", "+84912345678", "0912345678", 42, "1001")
    await peer.close()

    # a caller's name in Vietnamese with an emoji, every character cut between two TCP reads somewhere
    split = ReplayPeer([load("rig/inbound_hostile_caller_id")], split_characters=True)
    await (await link_factory(await split.start())).wait_ready()
    await asyncio.wait_for(split.sessions[0].finished.wait(), 30)

    async def both_ended() -> bool:
        rows = await harness.rows()
        return len(rows) == 3 and all(r.state == "ended" for r in rows)

    await until(both_ended, "both calls ended", 30)
    names = sorted(r.network_name or "" for r in (await harness.rows())[1:])
    assert names == ["Nguy\u1ec5n Th\u1ecb \u00c1nh <b>x</b> \U0001F600", "\\'; DROP TABLE calls; --"], names
    await split.close()


async def test_login_failure_is_reported(harness: LogHarness, link_factory: Callable[[int], Awaitable[AmiLink]]) -> None:
    peer = ReplayPeer([load("login_failure")])
    link = await link_factory(await peer.start())

    async def refused() -> bool:
        return "auth_failed" in link.history

    await until(refused, seconds=10)
    assert not link.ready
    health = link.health()
    assert health["ok"] is False
    await peer.close()


async def test_login_before_fully_booted(harness: LogHarness, link_factory: Callable[[int], Awaitable[AmiLink]]) -> None:
    peer = ReplayPeer([load("ami_connect_during_boot")])
    link = await link_factory(await peer.start())
    await link.wait_ready()
    history = list(link.history)
    assert history.index("booting") < history.index("ready")
    await peer.close()


@pytest.mark.parametrize("first_session", ["ami_reconnect", "ami_restart_now"])
async def test_reconnect_after_shutdown_with_back_off(harness: LogHarness, first_session: str,
                                                      link_factory: Callable[[int], Awaitable[AmiLink]]) -> None:
    peer = ReplayPeer([load(first_session), load("ami_reconnect_after_restart")])
    link = await link_factory(await peer.start())
    await link.wait_ready()

    async def back() -> bool:
        return len(peer.sessions) == 2 and link.ready

    await until(back, seconds=10)
    assert link.reconnects == 1
    history = list(link.history)
    assert history.index("down") < len(history) - 1 - history[::-1].index("ready")
    await until(lambda: _asked(peer), seconds=10)  # reconcile asked CoreShowChannels on FullyBooted
    await peer.close()


async def test_shutdown_during_call_ends_it(harness: LogHarness,
                                           link_factory: Callable[[int], Awaitable[AmiLink]]) -> None:
    trace = load("ami_shutdown_during_call")
    peer = ReplayPeer([trace])
    link = await link_factory(await peer.start())
    await link.wait_ready()
    call_id = await harness.outbound_from_trace(trace, 0, now=True)
    link.send_own(trace.originates()[0], call_id=call_id)

    async def ended() -> bool:
        return (await harness.row(call_id)).state == "ended" and link.state == "down" or "down" in link.history

    await until(ended, seconds=10)
    await quiet(link)
    call = await harness.row(call_id)
    assert (call.state, call.disposition) == ("ended", "failed")
    await peer.close()


@pytest.mark.parametrize("acknowledged", [False, True])
async def test_originate_is_never_sent_twice(harness: LogHarness, acknowledged: bool) -> None:
    """The peer drops the link while an Originate is pending (before or after 'queued'); after the
    reconnect nothing re-sends it, and the call ends as interrupted (whether Asterisk placed it is unknown)."""
    h = harness
    after_restart = load("ami_reconnect_after_restart")
    peer = ReplayPeer([after_restart, load("ami_connect_during_boot")], drop_on="Originate",
                      ack_before_drop=acknowledged)
    link = AmiLink(host="127.0.0.1", port=await peer.start(), username="clinic", secret="clinicpass",
                   calllog=h.log, min_delay=0.05, max_delay=0.2)
    await link.start()
    try:
        await link.wait_ready()
        trace = load("click_to_call_answered")
        call_id = await h.outbound_from_trace(trace, 0, now=True)
        link.send_own(trace.originates()[0], call_id=call_id)

        async def second_session_ready() -> bool:
            return len(peer.sessions) == 2 and link.ready and (await h.row(call_id)).state == "ended"

        await until(second_session_ready, seconds=10)
        await asyncio.sleep(0.3)  # panoramisk would re-send on FullyBooted: give it every chance
        originates = [a for a in peer.all_received() if first(a, "Action") == "Originate"]
        assert len(originates) == 1
        assert not [a for a in link.manager.awaiting_actions if a["action"].lower() == "originate"]  # type: ignore[union-attr]
        call = await h.row(call_id)
        assert (call.state, call.disposition) == ("ended", "interrupted")
        assert "Asterisk" in (call.hangup_cause or "") or "not seen" in (call.hangup_cause or "")
    finally:
        await link.stop()
        await peer.close()


async def _asked(peer: ReplayPeer) -> bool:
    return any(first(a, "Action") == "CoreShowChannels" for a in peer.sessions[-1].extra)
