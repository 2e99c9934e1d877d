"""Call shapes no recorded trace has, written as the AMI events Asterisk 22 sends for them (headers as in
the recorded traces): a SIP trunk named by `trunk_channels`, and a click-to-call whose agent phone is
reached through a Dial (the agent's answer is not the patient's)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from telephony.models import Call
from tests.telephony.conftest import make_harness

T0 = 1_800_000_000.0


def chan(event: str, name: str, uid: str, linkedid: str, state: str = "4", context: str = "from-trunk",
         num: str = "0912345678", **extra: str) -> dict[str, str]:
    return {"Event": event, "Privilege": "call,all", "Channel": name, "ChannelState": state, "CallerIDNum": num,
            "CallerIDName": "x", "Context": context, "Exten": "s", "Uniqueid": uid, "Linkedid": linkedid, **extra}


def dial(event: str, caller: dict[str, str] | None, dest: dict[str, str], **extra: str) -> dict[str, str]:
    ev = {"Event": event, "Privilege": "call,all", **extra}
    if caller:
        ev.update({k: v for k, v in caller.items() if k not in ("Event", "Privilege")})
    ev.update({"Dest" + k: v for k, v in dest.items() if k not in ("Event", "Privilege")})
    return ev


def bridge(event: str, channel: dict[str, str], bridge_id: str) -> dict[str, str]:
    return {**channel, "Event": event, "BridgeUniqueid": bridge_id}


async def feed(url: str, events: list[tuple[float, dict[str, str]]], call: dict[str, Any] | None = None,
               **settings: Any) -> list[Call]:
    async for h in make_harness(url, **settings):
        if call is not None:
            async with h.db.transaction() as s:
                row = Call(**call)
                s.add(row)
                await s.flush()
            async with h.db.session() as s:
                h.log.register(await s.get(Call, row.id))  # type: ignore[arg-type]
        for at, ev in events:
            await h.log.handle(ev, T0 + at)
        return await h.rows()
    return []


async def test_a_call_starting_on_a_trunk_channel_is_inbound(sqlite_url: str) -> None:
    trunk = chan("Newchannel", "PJSIP/trunk-00000001", "1.1", "1.1")
    agent = chan("Newchannel", "PJSIP/1001-00000002", "1.2", "1.1", state="0", context="agents", num="1001")
    events = [(0.0, trunk), (0.1, dial("DialBegin", trunk, agent)),
              (2.0, dial("DialEnd", trunk, {**agent, "ChannelState": "6"}, DialStatus="ANSWER")),
              (2.0, bridge("BridgeEnter", agent, "b1")), (2.0, bridge("BridgeEnter", trunk, "b1")),
              (7.5, bridge("BridgeLeave", trunk, "b1")), (7.5, {**trunk, "Event": "Hangup", "Cause": "16"}),
              (7.5, bridge("BridgeLeave", agent, "b1")), (7.6, {**agent, "Event": "Hangup", "Cause": "16"})]
    rows = await feed(sqlite_url, events, agent_channel="PJSIP/{ext}", trunk_channels=["PJSIP/trunk-"])
    assert [(r.direction, r.origin, r.disposition, r.agent_extension, r.number, r.talk_seconds, r.ring_seconds)
            for r in rows] == [("inbound", "trunk", "answered", "1001", "+84912345678", 5.5, 2.0)]


async def test_click_to_call_agent_reached_through_a_dial_is_not_the_patients_answer(sqlite_url: str) -> None:
    lid = "clinicall-1"
    one = chan("Newchannel", "Local/1001@agentdial-00000001;1", lid, lid, state="0", context="agentdial", num="1001")
    two = chan("Newchannel", "Local/1001@agentdial-00000001;2", f"{lid}-2", lid, context="agentdial", num="1001")
    phone = chan("Newchannel", "PJSIP/1001-00000002", "1.3", lid, state="0", context="agents", num="1001")
    trunk = chan("Newchannel", "PJSIP/trunk-00000003", "1.4", lid, state="0", context="from-trunk", num="0901234567")
    one_up = {**one, "ChannelState": "6", "Context": "outbound"}
    events = [(0.0, one), (0.0, two), (0.0, dial("DialBegin", None, one)),
              (0.1, dial("DialBegin", two, phone, DialString="1001")),
              (2.0, dial("DialEnd", two, {**phone, "ChannelState": "6"}, DialStatus="ANSWER")),  # the agent
              (2.0, dial("DialEnd", None, one_up, DialStatus="ANSWER")),
              (2.0, bridge("BridgeEnter", two, "b1")), (2.0, bridge("BridgeEnter", phone, "b1")),
              (2.1, dial("DialBegin", one_up, trunk, DialString="trunk/0901234567")),
              (6.0, dial("DialEnd", one_up, {**trunk, "ChannelState": "6"}, DialStatus="ANSWER")),  # the patient
              (6.0, bridge("BridgeEnter", one_up, "b2")), (6.0, bridge("BridgeEnter", trunk, "b2")),
              (10.0, bridge("BridgeLeave", trunk, "b2")), (10.0, {**trunk, "Event": "Hangup", "Cause": "16"}),
              (10.0, bridge("BridgeLeave", one_up, "b2")), (10.0, {**one_up, "Event": "Hangup", "Cause": "16"}),
              (10.0, bridge("BridgeLeave", two, "b1")), (10.0, {**two, "Event": "Hangup", "Cause": "16"}),
              (10.0, bridge("BridgeLeave", phone, "b1")), (10.1, {**phone, "Event": "Hangup", "Cause": "16"})]
    created = dt.datetime.fromtimestamp(T0 - 0.1, dt.UTC)
    (call,) = await feed(sqlite_url, events, dict(direction="outbound", origin="click_to_call", state="dialing",
                                                  action_id=lid, channel_id=lid, dial_string="Local/1001@agentdial",
                                                  patient_id=42, number="+84901234567", created_at=created),
                         agent_channel="PJSIP/{ext}", trunk_channels=["PJSIP/trunk-"])
    assert (call.disposition, call.talk_seconds, call.hangup_code) == ("answered", 4.0, 16)
    assert call.answered_at is not None and (call.answered_at - created).total_seconds() > 6.0
    assert call.ring_seconds == 3.9
