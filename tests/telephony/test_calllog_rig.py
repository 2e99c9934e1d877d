"""The issue-17 traces of a real Asterisk 22 (tests/fixtures/asterisk/rig, MANIFEST.md), replayed into the
call log with their recorded timing: direction, origin, number, patient, agent, disposition, talk and
ring time, hangup cause and legs, as the manifest says each call must be logged."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.telephony.conftest import LogHarness, make_harness
from tests.telephony.traces import Step, Trace

RIG = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "rig"
CONFIG = Path(__file__).resolve().parents[2] / "config" / "asterisk"
SETTINGS = {"inbound_contexts": ["inbound", "from-pstn", "from-trunk"]}  # from-pstn, from-trunk: FreePBX's


def rig_trace(name: str) -> Trace:
    steps = []
    for line in (RIG / f"{name}.timeline.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item.get("dir") in ("recv", "send"):
            steps.append(Step(item["t"], item["dir"], item["data"].encode("utf-8")))
    return Trace(name, (RIG / f"{name}.recv.raw").read_bytes(), (RIG / f"{name}.sent.raw").read_bytes(), steps)


def wallclock(name: str) -> float:
    first = json.loads((RIG / f"{name}.timeline.jsonl").read_text().splitlines()[0])
    return dt.datetime.strptime(first["wallclock"], "%Y-%m-%dT%H:%M:%S%z").timestamp()


async def replay(h: LogHarness, name: str, base: float | None = None) -> list[int]:
    """The clinicall session of a scenario: its click-to-call rows written first, then every message."""
    trace = rig_trace(name)
    base = wallclock(name) if base is None else base
    ids = [await h.outbound_from_trace(trace, i, base=base) for i in range(len(trace.originates()))]
    for ev, at in trace.timed_messages(base=base):
        await h.log.handle(ev, at)
    await h.bus.drain()
    return ids


def seconds_from(start: dt.datetime, value: dt.datetime | None) -> float | None:
    return None if value is None else round((value - start).total_seconds(), 1)


# scenario: direction, origin, disposition, number, patient, agent, talk, ring, cause, legs (extension, status, talk)
OTHER_PBX: dict[str, dict[str, Any]] = {
    "freepbx_ringgroup_e164": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                   patient_id=None, agent_extension="1002", talk=6.0, ring=1.0, hangup_code=16,
                                   legs=[("1001", "CANCEL", None), ("1002", "ANSWER", 6.0)]),
    "freepbx_ivr_then_group": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                   patient_id=None, agent_extension="1001", talk=4.4, ring=3.6, hangup_code=16,
                                   legs=[("1002", "CANCEL", None), ("1001", "ANSWER", 4.4)]),  # the IVR's answer is no one's
    "freepbx_cfb_external": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                 patient_id=None, agent_extension="1001", talk=4.5, ring=2.2, hangup_code=16,
                                 legs=[("1001", "BUSY", None), (None, "ANSWER", 4.5)]),  # forwarded on busy, outside
    "wazo_user_chain": dict(direction="inbound", origin="trunk", disposition="answered", number="+84933333333",
                            patient_id=None, agent_extension="1001", talk=5.0, ring=1.0, hangup_code=16,
                            legs=[("1001", "ANSWER", 5.0)]),
    "freepbx_outbound_prefix": dict(direction="outbound", origin="desk_phone", disposition="answered",
                                    number="+84901234567", patient_id=None, agent_extension="1001", talk=4.5, ring=2.0,
                                    hangup_code=16, legs=[(None, "ANSWER", 4.5), ("1001", None, 4.5)]),
}
EXPECTED: dict[str, dict[str, Any]] = {
    "desk_phone_outbound": dict(direction="outbound", origin="desk_phone", disposition="answered",
                                number="+84901234567", patient_id=None, agent_extension="1001", talk=4.5, ring=2.0,
                                hangup_code=16, legs=[(None, "ANSWER", 4.5), ("1001", None, 4.5)]),
    "desk_phone_outbound_busy": dict(direction="outbound", origin="desk_phone", disposition="busy",
                                     number="+84901230002", patient_id=None, agent_extension="1002", talk=0.0,
                                     ring=None, hangup_code=17, legs=[(None, "BUSY", 0.0)]),
    "desk_phone_outbound_via_inbound_context": dict(direction="outbound", origin="desk_phone", disposition="answered",
                                                    number="+84901234567", patient_id=None, agent_extension="1001",
                                                    talk=4.5, ring=2.0, hangup_code=16,
                                                    legs=[(None, "ANSWER", 4.5), ("1001", None, 4.5)]),
    "inbound_forwarded_to_mobile": dict(direction="inbound", origin="trunk", disposition="answered",
                                        number="+84912345678", patient_id=42, agent_extension=None, talk=4.5, ring=2.0,
                                        hangup_code=16, legs=[(None, "ANSWER", 4.5)]),
    "blind_transfer": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                           patient_id=42, agent_extension="1001", talk=11.0, ring=1.0, hangup_code=16,
                           legs=[("1001", "ANSWER", 3.0), ("1002", "ANSWER", 8.0)]),
    "attended_transfer": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                              patient_id=42, agent_extension="1001", talk=12.0, ring=1.0, hangup_code=16,
                              legs=[("1001", "ANSWER", 3.5), ("1002", "ANSWER", 8.5),
                                    ("1002", None, 2.0)]),  # the consultation: 1001 with 1002, 2 s
    "ring_group": dict(direction="inbound", origin="trunk", disposition="answered", number="+84933333333",
                       patient_id=None, agent_extension="1002", talk=6.0, ring=1.0, hangup_code=16,
                       legs=[("1001", "CANCEL", None), ("1002", "ANSWER", 6.0)]),
    "inbound_abandoned_while_ringing": dict(direction="inbound", origin="trunk", disposition="cancelled",
                                            number="+84912345678", patient_id=42, agent_extension="1001", talk=0.0,
                                            ring=3.1, hangup_code=16, legs=[("1001", "CANCEL", None)]),
    "hunt_noanswer_then_group": dict(direction="inbound", origin="trunk", disposition="answered",
                                     number="+84912345678", patient_id=42, agent_extension="1001", talk=5.0, ring=5.0,
                                     hangup_code=16, legs=[("1003", "NOANSWER", None), ("1001", "ANSWER", 5.0),
                                                           ("1002", "CANCEL", None)]),
    "inbound_withheld": dict(direction="inbound", origin="trunk", disposition="answered", number=None,
                             patient_id=None, agent_extension="1001", talk=4.0, ring=1.0, hangup_code=16,
                             legs=[("1001", "ANSWER", 4.0), ("1002", "CANCEL", None)]),
    "inbound_withheld_midcall": dict(direction="inbound", origin="trunk", disposition="answered", number=None,
                                     patient_id=42, agent_extension="1001", talk=6.0, ring=1.0, hangup_code=16,
                                     legs=[("1001", "ANSWER", 6.0)]),
    # MANIFEST.md "More call mixes and faults"
    **{name: dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678", patient_id=42,
                  agent_extension="1001", talk=6.0, ring=1.1, hangup_code=16, legs=[("1001", "ANSWER", 6.0)])
       for name in ("inbound_followme_optimised", "inbound_followme_no_optimise")},
    "inbound_agent_early_media": dict(direction="inbound", origin="trunk", disposition="answered",
                                      number="+84912345678", patient_id=42, agent_extension="1001", talk=5.1, ring=2.1,
                                      hangup_code=16, legs=[("1001", "ANSWER", 5.1)]),
    "inbound_nobody_available": dict(direction="inbound", origin="trunk", disposition="busy", number="+84912345678",
                                     patient_id=42, agent_extension="1003", talk=0.0, ring=0.0, hangup_code=16,
                                     legs=[("1003", "CONGESTION", None), ("1001", "BUSY", None),
                                           ("1002", "CONGESTION", None)]),
    "inbound_busy_then_abandoned": dict(direction="inbound", origin="trunk", disposition="cancelled",
                                        number="+84912345678", patient_id=42, agent_extension="1003", talk=0.0,
                                        ring=3.1, hangup_code=16, legs=[("1003", "BUSY", None),
                                                                        ("1001", "CANCEL", None),
                                                                        ("1002", "CANCEL", None)]),
    "inbound_voicemail": dict(direction="inbound", origin="trunk", disposition="no_answer", number="+84912345678",
                              patient_id=42, agent_extension="1001", talk=0.0, ring=9.1, hangup_code=0,
                              legs=[("1001", "NOANSWER", None)]),
    "inbound_hangup_before_ringing": dict(direction="inbound", origin="trunk", disposition="cancelled",
                                          number="+84912345678", patient_id=42, agent_extension=None, talk=0.0,
                                          ring=1.5, hangup_code=16, legs=[]),
    "blind_transfer_external": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                    patient_id=42, agent_extension="1001", talk=6.6, ring=1.0, hangup_code=16,
                                    legs=[("1001", "ANSWER", 2.0), (None, "ANSWER", 4.6)]),
    "redirect_to_agent": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                              patient_id=42, agent_extension="1001", talk=9.0, ring=1.0, hangup_code=16,
                              legs=[("1001", "ANSWER", 2.1), ("1002", "ANSWER", 6.9)]),
    "click_to_call_blind_transfer": dict(direction="outbound", origin="click_to_call", disposition="answered",
                                         number="+84901230005", patient_id=42, agent_extension="1001", talk=5.2,
                                         ring=2.0, hangup_code=16, legs=[("1001", "ANSWER", 2.1), (None, "ANSWER", 5.2),
                                                                         ("1002", "ANSWER", 3.1)]),
    "pickup_ringing_agent": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                 patient_id=42, agent_extension="1002", talk=6.0, ring=3.0, hangup_code=16,
                                 legs=[("1001", None, None), ("1002", "ANSWER", 6.0)]),
    "queue_ringall": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                          patient_id=42, agent_extension="1002", talk=5.0, ring=2.0, hangup_code=16,
                          legs=[("1002", "ANSWER", 5.0), ("1001", "CANCEL", None)]),
    "queue_rrmemory": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                           patient_id=42, agent_extension="1001", talk=5.0, ring=5.0, hangup_code=16,
                           legs=[("1003", "NOANSWER", None), ("1001", "ANSWER", 5.0)]),
    "queue_abandoned": dict(direction="inbound", origin="trunk", disposition="cancelled", number="+84912345678",
                            patient_id=42, agent_extension="1002", talk=0.0, ring=3.0, hangup_code=16,
                            legs=[("1002", "CANCEL", None), ("1001", "CANCEL", None)]),
    "queue_timeout": dict(direction="inbound", origin="trunk", disposition="no_answer", number="+84912345678",
                          patient_id=42, agent_extension="1002", talk=0.0, ring=4.1, hangup_code=16,
                          legs=[("1002", "NOANSWER", None), ("1001", "NOANSWER", None)]),
    "conference_three_way": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                 patient_id=42, agent_extension="1001", talk=12.0, ring=1.1, hangup_code=16,
                                 legs=[("1001", "ANSWER", 12.0), ("1002", "ANSWER", 8.9),
                                       ("1002", None, 1.0)]),  # 1001 and 1002 alone after the caller left
    "parked_and_retrieved": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                 patient_id=42, agent_extension="1001", talk=8.0, ring=1.0, hangup_code=16,
                                 legs=[("1001", "ANSWER", 2.1), ("1002", "ANSWER", 6.0)]),  # 4 s parked: no talk
    # MANIFEST.md "Other PBXs' dialplans": FreePBX / Wazo contexts, caller IDs +84 / 0084 / 84, Local chains
    **OTHER_PBX,
    # MANIFEST.md "Queues with FreePBX members, transfers by the phones' keys"
    "queue_fpbx_ringall": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                               patient_id=42, agent_extension="1002", talk=5.0, ring=2.1, hangup_code=16,
                               legs=[("1002", "ANSWER", 5.0), ("1001", "CANCEL", None)]),
    "queue_fpbx_rrmemory": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                patient_id=42, agent_extension="1001", talk=5.0, ring=5.0, hangup_code=16,
                                legs=[("1003", "NOANSWER", None), ("1001", "ANSWER", 5.0)]),  # its ring time ran out
    "queue_fpbx_abandoned": dict(direction="inbound", origin="trunk", disposition="cancelled", number="+84912345678",
                                 patient_id=42, agent_extension="1002", talk=0.0, ring=3.1, hangup_code=16,
                                 legs=[("1002", "CANCEL", None), ("1001", "CANCEL", None)]),
    "queue_timeout_voicemail": dict(direction="inbound", origin="trunk", disposition="no_answer",
                                    number="+84912345678", patient_id=42, agent_extension="1002", talk=0.0, ring=9.1,
                                    hangup_code=0, legs=[("1002", "NOANSWER", None), ("1001", "NOANSWER", None)]),
    "dtmf_blind_transfer": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                patient_id=42, agent_extension="1001", talk=9.0, ring=1.0, hangup_code=16,
                                legs=[("1001", "ANSWER", 3.0), ("1002", "ANSWER", 6.0)]),
    "dtmf_attended_transfer": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                   patient_id=42, agent_extension="1001", talk=9.6, ring=1.1, hangup_code=16,
                                   legs=[("1001", "ANSWER", 3.4), ("1002", "ANSWER", 6.3), ("1002", None, 2.0)]),
    "dtmf_attended_transfer_blonde": dict(direction="inbound", origin="trunk", disposition="answered",
                                          number="+84912345678", patient_id=42, agent_extension="1001", talk=9.0,
                                          ring=1.0, hangup_code=16,  # the caller waited while 1002 rang: no talk
                                          legs=[("1001", "ANSWER", 3.3), ("1002", "ANSWER", 5.7)]),
    # MANIFEST.md "Faults with calls in every state; pickups, a supervisor, early media, dial gosubs"
    "click_to_call_early_media_rejected": dict(direction="outbound", origin="click_to_call", disposition="failed",
                                               number="+84901230006", patient_id=42, agent_extension="1001",
                                               talk=0.0, ring=2.2, hangup_code=1,  # Dial says NOANSWER; cause 1 says why
                                               legs=[("1001", "ANSWER", None), (None, "NOANSWER", 0.0)]),
    "desk_phone_early_media_rejected": dict(direction="outbound", origin="desk_phone", disposition="failed",
                                            number="+84901230006", patient_id=None, agent_extension="1001", talk=0.0,
                                            ring=None, hangup_code=1, legs=[(None, "NOANSWER", 0.0)]),
    "inbound_abandoned_during_early_media": dict(direction="inbound", origin="trunk", disposition="cancelled",
                                                 number="+84912345678", patient_id=42, agent_extension="1001",
                                                 talk=0.0, ring=2.1, hangup_code=16, legs=[("1001", "CANCEL", None)]),
    "pickup_group_star8": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                               patient_id=42, agent_extension="1002", talk=6.0, ring=3.0, hangup_code=16,
                               legs=[("1001", None, None), ("1002", "ANSWER", 6.0)]),
    "pickup_directed": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                            patient_id=42, agent_extension="1003", talk=6.1, ring=3.3, hangup_code=16,
                            legs=[("1001", None, None), ("1003", "ANSWER", 6.1)]),
    "supervisor_whisper": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                               patient_id=42, agent_extension="1001", talk=8.0, ring=1.0, hangup_code=16,
                               legs=[("1001", "ANSWER", 8.0)]),  # the supervisor listening is no party of it
    "followme_second_step": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                 patient_id=42, agent_extension="1002", talk=5.5, ring=5.3, hangup_code=16,
                                 legs=[("1001", None, None), ("1002", "ANSWER", 5.5)]),  # FollowMe: no DialBegin
    "dtmf_park_and_retrieve": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                   patient_id=42, agent_extension="1001", talk=7.8, ring=1.1, hangup_code=16,
                                   legs=[("1001", "ANSWER", 2.8), ("1002", "ANSWER", 5.0)]),  # parked 3.5 s: no talk
    "dial_screening_gosub": dict(direction="inbound", origin="trunk", disposition="answered", number="+84912345678",
                                 patient_id=42, agent_extension="1001", talk=8.0, ring=3.0, hangup_code=16,
                                 legs=[("1001", "ANSWER", 8.0)]),  # put through after the 2 s U() screening
}
CONSULTED = {"attended_transfer": [("1001", "1002")], "conference_three_way": [("1001", "1002")],
             "dtmf_attended_transfer": [("1001", "1002")]}
TRANSFERRED = {"blind_transfer": "blind", "dtmf_blind_transfer": "blind", "click_to_call_blind_transfer": "blind",
               "blind_transfer_external": "blind",
               "attended_transfer": "attended", "dtmf_attended_transfer": "attended",
               "dtmf_attended_transfer_blonde": "attended",
               "dtmf_park_and_retrieve": "blind"}  # #700: a blind transfer to the parking lot  # each by agent 1001


def close(a: float | None, b: float | None) -> bool:
    return (a is None) == (b is None) and (a is None or abs(a - b) <= 0.2)  # type: ignore[operator]


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_each_call_is_logged_as_the_manifest_says(sqlite_url: str, name: str) -> None:
    want = EXPECTED[name]
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        await replay(h, name)
        rows = await h.rows()
        assert len(rows) == 1, [(r.direction, r.origin, r.linkedid) for r in rows]
        call = rows[0]
        got = {k: getattr(call, k) for k in ("direction", "origin", "disposition", "number", "patient_id",
                                              "agent_extension", "hangup_code")}
        assert got == {k: want[k] for k in got}, name
        assert call.state == "ended"
        if call.origin != "click_to_call":  # a click-to-call keeps the patient's phone, not a raw caller id
            assert (call.number_raw is None) == (want["number"] is None), call.number_raw
        assert close(call.talk_seconds, want["talk"]), (name, call.talk_seconds)
        assert close(call.ring_seconds if want["ring"] is not None else None, want["ring"]), (name, call.ring_seconds)
        assert call.billsec == int(want["talk"])
        if want["disposition"] == "answered":
            assert call.answered_at is not None and call.ringing_at is not None
            if call.origin != "click_to_call":  # there the agent's phone rings first
                assert close(seconds_from(call.ringing_at, call.answered_at), want["ring"])
        else:
            assert call.answered_at is None
        legs = [(leg["extension"], leg["dial_status"], leg["talk_seconds"]) for leg in json.loads(call.legs or "[]")]
        assert len(legs) == len(want["legs"]), legs
        for (ext, status, talk), (w_ext, w_status, w_talk) in zip(legs, want["legs"], strict=True):
            assert (ext, status) == (w_ext, w_status) and close(talk, w_talk), legs
        consulted = [leg for leg in json.loads(call.legs or "[]") if leg.get("consultation")]
        assert [(leg["with_extension"], leg["extension"]) for leg in consulted] == CONSULTED.get(name, [])
        transfers = [(leg["extension"], leg["transferred"]) for leg in json.loads(call.legs) if "transferred" in leg]
        assert transfers == ([("1001", TRANSFERRED[name])] if name in TRANSFERRED else []), transfers


async def test_internal_calls_are_logged_only_when_asked(sqlite_url: str, tmp_path: Path) -> None:
    import shutil

    url = f"sqlite+aiosqlite:///{tmp_path}/internal.db"
    shutil.copyfile(sqlite_url.removeprefix("sqlite+aiosqlite:///"), url.removeprefix("sqlite+aiosqlite:///"))
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        await replay(h, "desk_phone_internal")
        assert await h.rows() == []
    async for h in make_harness(url, agent_channel="Local/{ext}@agents", log_internal_calls=True, **SETTINGS):
        await replay(h, "desk_phone_internal")
        (call,) = await h.rows()
        assert (call.direction, call.origin, call.disposition, call.number) == ("internal", "internal", "answered", None)
        assert close(call.talk_seconds, 3.0) and call.agent_extension == "1001"


@pytest.mark.parametrize("name", ["freepbx_ivr_then_group", "freepbx_cfb_external"])
async def test_a_call_the_settings_cannot_place_is_logged_as_unknown(sqlite_url: str, name: str) -> None:
    """A FreePBX/Wazo trace against settings that do not name its inbound context (from-trunk) or its trunk:
    the call is still logged once over, with its facts, and direction `unknown` (never dropped, never guessed)."""
    want = OTHER_PBX[name]
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents"):  # inbound_contexts: ["inbound"]
        await replay(h, name)
        (call,) = await h.rows()
        assert (call.direction, call.origin, call.state) == ("unknown", "unknown", "ended")
        assert (call.disposition, call.number, call.agent_extension) == (want["disposition"], want["number"],
                                                                         want["agent_extension"])
        assert close(call.talk_seconds, want["talk"]) and call.billsec == int(want["talk"])


def as_pjsip(name: str, *renames: tuple[bytes, bytes]) -> Trace:
    """A recorded trace with its channels named as chan_pjsip names them (every other byte as recorded)."""
    trace = rig_trace(name)
    for step in trace.steps:
        for old, new in renames:
            step.data = step.data.replace(old, new)
    return trace


PJSIP_PHONES = ((b"Local/1001@agents-", b"PJSIP/1001-"), (b"Local/1002@agents-", b"PJSIP/1002-"),
                (b"Local/1003@agents-", b"PJSIP/1003-"))


async def test_a_pjsip_trunk_named_like_an_agent_is_the_trunk(sqlite_url: str, tmp_path: Path) -> None:
    """`PJSIP/{ext}` fits a trunk `PJSIP/viettel-…` too. Inbound (freepbx_ringgroup_e164 as chan_pjsip names it):
    the trunk's channel sits in an inbound context, so the call is inbound, answered by 1002 (not a desk phone of
    "viettel"). Outbound (freepbx_outbound_prefix, trunk context not listed): 1001's Dial names an outside number,
    so the call goes out (not an internal call between "agents" 1001 and "vnpt", which is not logged)."""
    import shutil

    url, queues = (f"sqlite+aiosqlite:///{tmp_path}/{db}.db" for db in ("outbound", "queues"))
    for copy in (url, queues):
        shutil.copyfile(sqlite_url.removeprefix("sqlite+aiosqlite:///"), copy.removeprefix("sqlite+aiosqlite:///"))
    inbound = as_pjsip("freepbx_ringgroup_e164", (b"Local/2873001234@from-trunk-", b"PJSIP/viettel-"), *PJSIP_PHONES)
    async for h in make_harness(sqlite_url, agent_channel="PJSIP/{ext}", inbound_contexts=["from-trunk"]):
        for ev, at in inbound.timed_messages(base=wallclock("freepbx_ringgroup_e164")):
            await h.log.handle(ev, at)
        (call,) = await h.rows()
        legs = [(leg["extension"], leg["dial_status"]) for leg in json.loads(call.legs)]
        assert (call.direction, call.origin, call.disposition, call.number, call.agent_extension) == (
            "inbound", "trunk", "answered", "+84912345678", "1002")
        assert legs == [("1001", "CANCEL"), ("1002", "ANSWER")] and close(call.talk_seconds, 6.0)

    outbound = as_pjsip("freepbx_outbound_prefix", (b"Local/0901234567@vnpt-trunk-", b"PJSIP/vnpt-"), *PJSIP_PHONES)
    async for h in make_harness(url, agent_channel="PJSIP/{ext}"):
        for ev, at in outbound.timed_messages(base=wallclock("freepbx_outbound_prefix")):
            await h.log.handle(ev, at)
        (call,) = await h.rows()
        assert (call.direction, call.origin, call.disposition, call.number, call.agent_extension) == (
            "outbound", "desk_phone", "answered", "+84901234567", "1001")
        assert close(call.talk_seconds, 4.5) and close(call.ring_seconds, 2.0)

    async for h in make_harness(queues, agent_channel="PJSIP/{ext}"):  # app_queue with plain `PJSIP/<ext>` members
        for name in ("queue_rrmemory", "queue_abandoned"):
            for ev, at in as_pjsip(name, *PJSIP_PHONES).timed_messages(base=wallclock(name)):
                await h.log.handle(ev, at)
            call = next(r for r in await h.rows() if r.linkedid and r.linkedid.startswith(queue_linkedid(name)))
            want = EXPECTED[name]
            legs = [(leg["extension"], leg["dial_status"], leg["talk_seconds"]) for leg in json.loads(call.legs)]
            assert (call.direction, call.disposition, call.agent_extension, legs) == (
                "inbound", want["disposition"], want["agent_extension"], want["legs"])
            assert close(call.talk_seconds, want["talk"]) and close(call.ring_seconds, want["ring"])


def queue_linkedid(name: str) -> str:
    return next(ev["Linkedid"] for ev, _ in rig_trace(name).timed_messages(base=0.0) if ev.get("Event") == "Newchannel")


async def test_agents_named_by_their_from_internal_local_channel_have_one_leg_each(sqlite_url: str) -> None:
    """`agent_channel = "Local/{ext}@from-internal"` (FreePBX's channel for click-to-call): the ring group's
    `Local/1002@from-internal` is the agent and the phone it rang behind it is the same party: one leg per agent,
    with the talk, not an agent leg without talk plus an unnamed one with it."""
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@from-internal", inbound_contexts=["from-trunk"]):
        await replay(h, "freepbx_ringgroup_e164")
        (call,) = await h.rows()
        legs = [(leg["extension"], leg["dial_status"], leg["talk_seconds"]) for leg in json.loads(call.legs)]
        assert (call.agent_extension, legs) == ("1002", [("1001", "CANCEL", None), ("1002", "ANSWER", 6.0)])


def cel_database(run: str, path: Path) -> Path:
    """The SQLite database cel_sqlite3_custom wrote during the run (tables cel and cdr)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.executescript((RIG / f"{run}.cel.sqlite.sql").read_text())
    return path


def aligned_base(name: str, database: Path) -> float:
    """The session's clock against Asterisk's: the first Newchannel's time in the timeline and its CEL
    CHAN_START (microseconds) in the database (the timeline's wallclock has whole seconds only)."""
    import sqlite3

    trace = rig_trace(name)
    first = next((ev, at) for ev, at in trace.timed_messages(base=0.0) if ev.get("Event") == "Newchannel")
    with sqlite3.connect(database) as conn:
        row = conn.execute("SELECT eventtime FROM cel WHERE eventtype = 'CHAN_START' AND uniqueid = ?",
                           (first[0]["Uniqueid"],)).fetchone()
    return float(row[0]) - first[1] if row else wallclock(name)


def summary(call: Any) -> dict[str, Any]:
    return {k: getattr(call, k) for k in ("direction", "origin", "state", "disposition", "number", "patient_id",
                                          "agent_extension", "answered_at", "ended_at", "talk_seconds", "ring_seconds",
                                          "hangup_code", "hangup_cause", "legs")}


async def test_restart_then_stop_leaves_every_call_as_it_ended(sqlite_url: str, tmp_path: Path) -> None:
    database = cel_database("restart_then_stop", tmp_path / "master.db")
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        from telephony.cel_source import CelSource

        h.log.cel_source = CelSource(str(database))
        first = await replay(h, "restart_then_stop", aligned_base("restart_then_stop", database))
        h.log.link_lost()
        await h.log.asterisk_shutdown()
        before = {r.id: summary(r) for r in await h.rows()}
        assert len(before) == 3 and all(r["state"] == "ended" for r in before.values())
        base = aligned_base("restart_then_stop_after_restart", database)
        assert await h.log.reconcile(set(), base, []) == []
        third = await replay(h, "restart_then_stop_after_restart", base)
        h.log.link_lost()
        await h.log.asterisk_shutdown()
        assert await h.log.reconcile(set(), wallclock("restart_then_stop_after_stop"), []) == []
        await replay(h, "restart_then_stop_after_stop")
        after = {r.id: summary(r) for r in await h.rows()}
        assert {k: after[k] for k in before} == before, "a restart or a stop rewrote a finished call"
        c101, c102 = after[first[0]], after[first[1]]
        inbound = next(r for r in after.values() if r["direction"] == "inbound")
        c103 = after[third[0]]
        assert (c101["disposition"], c101["origin"]) == ("answered", "click_to_call")
        assert close(c101["talk_seconds"], 4.5) and close(c101["ring_seconds"], 2.0) and c101["hangup_code"] == 16
        for call, talk in ((c102, 3.0), (inbound, 5.0), (c103, 3.0)):
            assert call["disposition"] == "answered" and close(call["talk_seconds"], talk), call
        assert (inbound["number"], inbound["patient_id"], inbound["agent_extension"]) == ("+84912345678", 42, "1002")


async def test_calls_ended_while_nobody_listened_get_their_true_end_from_cel(sqlite_url: str, tmp_path: Path) -> None:
    from telephony.cel_source import CelSource

    database = cel_database("ended_while_disconnected", tmp_path / "master.db")
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        h.log.cel_source = CelSource(str(database))
        (click,) = await replay(h, "ended_while_disconnected", aligned_base("ended_while_disconnected", database))
        open_rows = [r for r in await h.rows() if r.state != "ended"]
        assert len(open_rows) == 2 and all(r.state == "answered" for r in open_rows)
        h.log.link_lost()  # clinicall killed: no Shutdown, no Hangup
        base = wallclock("ended_while_disconnected_reconnect")
        await replay(h, "ended_while_disconnected_reconnect", base)
        assert await h.log.reconcile(set(), base, []) == []
        await assert_true_ends_from_cel(h, click)


async def assert_true_ends_from_cel(h: LogHarness, click: int) -> None:
    """The three calls of ended_while_disconnected as their CEL rows tell (MANIFEST.md)."""
    rows = {r.id: r for r in await h.rows()}
    assert len(rows) == 3 and all(r.state == "ended" for r in rows.values())
    c201 = rows[click]
    inbound = next(r for r in rows.values() if r.direction == "inbound")
    desk = next(r for r in rows.values() if r.origin == "desk_phone")
    assert (c201.disposition, c201.hangup_code) == ("answered", 16)
    assert close(c201.talk_seconds, 4.5) and close(c201.ring_seconds, 2.0)
    assert (inbound.disposition, inbound.number, inbound.patient_id, inbound.agent_extension) == (
        "answered", "+84912345678", 42, "1002")
    assert close(inbound.talk_seconds, 5.0)
    assert (desk.direction, desk.disposition, desk.number, desk.agent_extension, desk.hangup_code) == (
        "outbound", "answered", "+84901234568", "1001", 16)
    assert close(desk.talk_seconds, 4.5) and close(desk.ring_seconds, 2.0)


async def test_an_unreachable_cel_database_leaves_calls_unknown_until_it_answers(sqlite_url: str, tmp_path: Path,
                                                                                  postgres: Any) -> None:
    """cel_pgsql's database does not answer at the reconnect: the calls are settled as interrupted with that
    reason (not "no end in CEL"), nothing is guessed, and the call that began and ended in the outage is owed;
    once the database answers, a later read gives every call its true end (the rows cel_pgsql wrote)."""
    import asyncpg

    from telephony.cel_source import CelSource
    from tests.servers import free_port

    name = f"cel_down_{free_port()}"
    url = postgres.database_url(name).replace("postgresql+asyncpg://", "postgresql://", 1)
    base = aligned_base("ended_while_disconnected", cel_database("ended_while_disconnected", tmp_path / "master.db"))
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        h.log.cel_source = CelSource(url, tz=dt.UTC, timeout=2.0)
        h.log.cel_catch_up = 0.5
        (click,) = await replay(h, "ended_while_disconnected", base)
        h.log.link_lost()
        again = wallclock("ended_while_disconnected_reconnect")
        await replay(h, "ended_while_disconnected_reconnect", again)
        assert sorted(await h.log.reconcile(set(), again, [])) == sorted(r.id for r in await h.rows())
        rows = await h.rows()
        assert len(rows) == 2 and {r.disposition for r in rows} == {"interrupted"}
        assert all("CEL database" in (r.hangup_cause or "") for r in rows), [r.hangup_cause for r in rows]
        assert h.log.cel_owed and not await h.log.retry_cel()  # still down: still owed, nothing changes
        assert [summary(r) for r in await h.rows()] == [summary(r) for r in rows]

        admin = await asyncpg.connect(postgres.url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute((CONFIG / "cel_pgsql.sql").read_text())
            await conn.execute((CONFIG / "cdr_pgsql.sql").read_text())
            await conn.execute((RIG / "ended_while_disconnected.cel.pgsql.sql").read_text())
        finally:
            await conn.close()
        assert await h.log.retry_cel() and not h.log.cel_owed
        await assert_true_ends_from_cel(h, click)


async def assert_rebuild_changes_nothing(h: LogHarness) -> None:
    """The journal alone (shutdown flags, when Asterisk was last heard from) gives the same rows."""
    from telephony.rebuild import rebuild
    from tests.telephony.conftest import telephony_settings

    before = [summary(r) for r in await h.rows()]
    report = await rebuild(h.db, telephony_settings(**SETTINGS), since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    after = [summary(r) for r in await h.rows()]
    diff = [{k: (v, b[k]) for k, v in a.items() if b[k] != v} for a, b in zip(before, after, strict=True) if a != b]
    assert report.changed == 0 and not diff, [{k: (json.loads(a), json.loads(b)) for k, (a, b) in d.items()} for d in diff]


def live_channels(name: str) -> set[str]:
    """The uniqueids and Linkedids a reconnect's CoreShowChannels listed (what the link hands reconcile)."""
    return {v for ev, _ in rig_trace(name).timed_messages(base=0.0) if ev.get("Event") == "CoreShowChannel"
            for v in (ev.get("Uniqueid"), ev.get("Linkedid")) if v}


async def test_kill_9_of_asterisk_interrupts_the_call_up_and_keeps_the_finished_one(sqlite_url: str,
                                                                                    tmp_path: Path) -> None:
    """No Hangup, no Shutdown, no CEL end: the call up at the kill is `interrupted`, its talk counted until
    Asterisk was last heard from (not until clinicall gave up on it); the call finished before stays."""
    from telephony.cel_source import CelSource

    database = cel_database("asterisk_killed", tmp_path / "master.db")
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        h.log.cel_source = CelSource(str(database))
        h.log.cel_catch_up = 0.3
        base = aligned_base("asterisk_killed", database)
        (click,) = await replay(h, "asterisk_killed", base)
        heard = rig_trace("asterisk_killed").timed_messages(base)[-1][1]
        h.log.link_lost(heard)  # EOF, no Shutdown: Asterisk was last heard from then
        finished = summary(await h.row(click))
        assert (finished["state"], finished["disposition"]) == ("ended", "answered")
        base = wallclock("asterisk_killed_after_restart")
        await replay(h, "asterisk_killed_after_restart", base)
        (inbound,) = [r for r in await h.rows() if r.id != click]
        assert await h.log.reconcile(set(), base, []) == [inbound.id]
        assert summary(await h.row(click)) == finished
        call = await h.row(inbound.id)
        assert (call.direction, call.disposition, call.number, call.patient_id, call.agent_extension) == (
            "inbound", "interrupted", "+84912345678", 42, "1002")
        assert call.answered_at is not None and "Interrupted" in (call.hangup_cause or "")
        # the talk is known until Asterisk's last message, not until the reconnect (an outage of any length)
        assert call.ended_at is not None and abs(call.ended_at.timestamp() - heard) < 0.01
        assert close(call.talk_seconds, heard - call.answered_at.timestamp()) and call.talk_seconds > 0
        await assert_rebuild_changes_nothing(h)


async def test_a_call_answered_while_the_ami_link_was_down_gets_its_true_answer(sqlite_url: str,
                                                                                tmp_path: Path) -> None:
    """The AMI connection drops while 1001's phone rings; 1001 answers during the gap; clinicall
    reconnects while the call is up (CoreShowChannels lists it) and sees its end: answer and talk come
    from Asterisk's CEL records, not from the moment clinicall came back."""
    from telephony.cel_source import CelSource

    database = cel_database("ami_link_dropped", tmp_path / "master.db")
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        h.log.cel_source = CelSource(str(database))
        h.log.cel_catch_up = 0.3
        await replay(h, "ami_link_dropped", aligned_base("ami_link_dropped", database))
        h.log.link_lost()
        name = "ami_link_dropped_reconnect"
        base = aligned_base("ami_link_dropped", database)  # one clock for both sessions of the run
        trace = rig_trace(name)
        messages = trace.timed_messages(base=base)
        cut = next(i for i, (ev, _) in enumerate(messages) if ev.get("Event") == "CoreShowChannelsComplete") + 1
        for ev, at in messages[:cut]:
            await h.log.handle(ev, at)
        assert await h.log.reconcile(live_channels(name), messages[0][1], []) == []
        for ev, at in messages[cut:]:
            await h.log.handle(ev, at)
        (call,) = await h.rows()
        assert (call.state, call.disposition, call.agent_extension, call.patient_id) == ("ended", "answered", "1001", 42)
        assert close(seconds_from(call.created_at, call.answered_at), 2.1), call.answered_at
        assert close(call.talk_seconds, 6.0), call.talk_seconds


async def test_clinicall_killed_during_a_transfer_follows_the_call_again_from_journal_and_cel(
        sqlite_url: str, tmp_path: Path) -> None:
    """clinicall is killed -9 while 1001 talks with the caller; 1001 blind-transfers the caller to 1002 while
    it is away; a new clinicall process (same database, Asterisk still up) reloads the open call from the
    journal, reconnects (CoreShowChannels lists 1002's channels) and reads CEL: one call, both legs, true times."""
    from telephony.cel_source import CelSource

    name = "transfer_while_clinicall_away"
    database = cel_database(name, tmp_path / "master.db")
    base = aligned_base(name, database)
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        await replay(h, name, base)
        (before,) = await h.rows()
        assert (before.state, before.agent_extension) == ("answered", "1001")
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):  # the new process
        h.log.cel_source = CelSource(str(database))
        h.log.cel_catch_up = 0.3
        assert await h.log.load_open_calls() == 1
        messages = rig_trace(f"{name}_reconnect").timed_messages(base=base)
        cut = next(i for i, (ev, _) in enumerate(messages) if ev.get("Event") == "CoreShowChannelsComplete") + 1
        for ev, at in messages[:cut]:
            await h.log.handle(ev, at)
        assert await h.log.reconcile(live_channels(f"{name}_reconnect"), messages[0][1], []) == []
        for ev, at in messages[cut:]:
            await h.log.handle(ev, at)
        (call,) = await h.rows()
        legs = [(leg["extension"], leg["dial_status"], leg["talk_seconds"]) for leg in json.loads(call.legs)]
        assert (call.state, call.disposition, call.agent_extension, call.patient_id) == ("ended", "answered", "1001", 42)
        assert close(seconds_from(call.created_at, call.answered_at), 1.0) and close(call.ring_seconds, 1.0)
        assert close(call.talk_seconds, 9.0) and call.hangup_code == 16
        assert legs == [("1001", "ANSWER", 1.1), ("1002", None, 7.8)]  # 1002 reached by the transfer, seen in CEL


async def test_a_restart_while_an_agent_rings_fails_the_call_and_a_graceful_one_waits(sqlite_url: str) -> None:
    """`core restart now` while 1001's phone rings: Asterisk hangs the call up (cause 16, DialEnd CANCEL, as
    if the caller had hung up), but its SoftHangupRequest says why (flag 4, shutdown): the call `failed`, it
    was not abandoned. `core restart gracefully` waits for the next call to end: an ordinary answered call."""
    from telephony.calltrack import SHUTDOWN_CAUSE

    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        await replay(h, "restart_while_ringing")
        h.log.link_lost()
        await h.log.asterisk_shutdown()
        (rung,) = await h.rows()
        assert (rung.state, rung.disposition, rung.answered_at, rung.hangup_cause) == (
            "ended", "failed", None, SHUTDOWN_CAUSE)
        assert (rung.number, rung.patient_id, rung.agent_extension, rung.talk_seconds) == ("+84912345678", 42, "1001", 0)
        before = summary(rung)
        for session in ("restart_while_ringing_after_restart", "restart_while_ringing_after_graceful"):
            assert await h.log.reconcile(set(), wallclock(session), []) == []
            await replay(h, session)
            h.log.link_lost()
            await h.log.asterisk_shutdown()
        first, second = await h.rows()
        assert summary(first) == before
        assert (second.disposition, second.agent_extension, second.hangup_cause) == ("answered", "1002", "Normal Clearing")
        assert close(second.talk_seconds, 4.0), second.talk_seconds
        await assert_rebuild_changes_nothing(h)


async def test_simultaneous_calls_each_get_their_own_row(sqlite_url: str) -> None:
    """Two click-to-calls (one busy), three inbound callers (one number twice at once) and a desk phone, all
    overlapping: six rows, none mixed up with another."""
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        first, second = await replay(h, "concurrent_mix")
        rows = {r.id: r for r in await h.rows()}
        got = sorted((r.origin, r.number, r.disposition, r.agent_extension, r.talk_seconds) for r in rows.values())
        assert got == sorted([
            ("click_to_call", "+84901234567", "answered", "1001", 4.5),
            ("click_to_call", "+84901230002", "busy", "1002", 0.0),
            ("trunk", "+84912345678", "answered", "1002", 4.0),
            ("trunk", "+84912345678", "answered", "1002", 3.0),
            ("trunk", "+84933333333", "answered", "1001", 5.0),
            ("desk_phone", "+84901234569", "answered", "1003", 4.5)]), got
        assert rows[first].disposition == "answered" and rows[second].disposition == "busy"
        assert len({r.linkedid for r in rows.values()}) == 6


async def test_hostile_caller_ids_are_stored_as_text_and_never_as_a_number(sqlite_url: str) -> None:
    """A name with markup and emoji is kept as the network's name (text, escaped where it is shown); text
    where the number should be is no phone number, and is kept only as the raw caller id."""
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        await replay(h, "inbound_hostile_caller_id")
        formatted, junk = await h.rows()
        assert (formatted.number, formatted.network_name) == ("+84912345678", "Nguy\u1ec5n Th\u1ecb \u00c1nh <b>x</b> \U0001F600")
        assert (junk.number, junk.number_raw, junk.patient_id) == (None, "1234';DROPTABLEcalls;", None)
        assert junk.network_name == "\\'; DROP TABLE calls; --"
        assert all(r.disposition == "answered" and r.caller_name is None for r in (formatted, junk))


@pytest.mark.parametrize("name", ["pickup_ringing_agent", "inbound_followme_optimised"])
async def test_the_new_shapes_do_not_depend_on_the_order_across_event_types(sqlite_url: str, tmp_path: Path,
                                                                            name: str) -> None:
    """A pickup (Linkedid changing under a channel) and Local channels optimised away (a party behind two
    channels at once): the same row, legs included, whatever order the event types come in, and whatever the
    link does (tests/telephony/mutations.py: bytes split across reads, FullyBooted again mid-call, a reconnect
    mid-call; scripts/trace_mutations.py runs these over every recorded session)."""
    import random
    import shutil

    from tests.telephony import mutations
    from tests.telephony.test_calllog_traces import shuffle_across_types

    results = []
    for order in ("recorded", "shuffled", *mutations.MUTATIONS):
        url = f"sqlite+aiosqlite:///{tmp_path}/{order}.db"
        shutil.copyfile(sqlite_url.removeprefix("sqlite+aiosqlite:///"), url.removeprefix("sqlite+aiosqlite:///"))
        async for h in make_harness(url, agent_channel="Local/{ext}@agents", **SETTINGS):
            if order in mutations.MUTATIONS:
                await mutations.replay(h, rig_trace(name), wallclock(name), order)
            else:
                messages = rig_trace(name).timed_messages(base=wallclock(name))
                if order == "shuffled":
                    messages = shuffle_across_types(messages, random.Random(name))
                for ev, at in messages:
                    await h.log.handle(ev, at)
            results.append([summary(r) for r in await h.rows()])
    for other in results[1:]:
        diff = {k: (v, other[0][k]) for k, v in results[0][0].items() if other[0][k] != v}
        assert not diff and len(other) == len(results[0]) == 1, diff


async def test_two_instances_overlapping_on_the_link_give_one_call_one_row(db_url: str) -> None:
    """A takeover: the standby already reads the AMI link while the holder still does, and its look for the new
    call's row came just before the holder's insert (the window `_create_group_calls` starts in): the standby's
    insert meets the holder's row (calls.linkedid is unique), follows it, and both project it to the same end."""
    name = "ring_group"
    messages = rig_trace(name).timed_messages(base=wallclock(name))
    linkedid = queue_linkedid(name)
    half = len(messages) // 2
    async for holder in make_harness(db_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        for ev, at in messages[:half]:
            await holder.log.handle(ev, at)
        (first,) = await holder.rows()
        async for standby in make_harness(db_url, agent_channel="Local/{ext}@agents", **SETTINGS):
            assert await standby.log._create_group_calls({linkedid: "trunk"}) == {first.id}
            for ev, at in messages[half:]:
                await standby.log.handle(ev, at)
                await holder.log.handle(ev, at)
            (call,) = await holder.rows()
            assert (call.id, call.state, call.agent_extension, call.linkedid) == (first.id, "ended", "1002", linkedid)
            assert close(call.talk_seconds, 6.0) and standby.log.tracker.calls.keys() == {call.id}


# number -> (disposition, agent, talk) of every call of a fault recording (MANIFEST.md, "Faults with calls in
# every state"); +84901234567 is click-to-call 601, finished just before the fault
EVERY_STATE: dict[str, dict[str, tuple[str, str | None, float]]] = {
    "restart_every_state": {"+84901234567": ("answered", "1001", 4.5), "+84912345678": ("failed", "1003", 0.0),
                            "+84933333333": ("answered", "1002", 7.0), "+84944444444": ("failed", None, 0.0),
                            "+84955555555": ("answered", "1001", 1.5)},
    "killed_every_state": {"+84901234567": ("answered", "1001", 4.5), "+84901230003": ("interrupted", "1002", 0.0),
                           "+84912345678": ("interrupted", "1003", 0.0), "+84933333333": ("interrupted", "1002", 6.6),
                           "+84944444444": ("interrupted", None, 0.0), "+84955555555": ("interrupted", "1001", 1.5)},
    "away_every_state": {"+84901234567": ("answered", "1001", 4.5), "+84901230003": ("cancelled", "1002", 0.0),
                         "+84912345678": ("cancelled", "1003", 0.0), "+84933333333": ("answered", "1002", 12.1),
                         "+84944444444": ("cancelled", None, 0.0), "+84955555555": ("answered", "1001", 5.6),
                         "+84901234568": ("answered", "1001", 4.5)},  # a desk phone's call begun and ended while away
    "cel_locked_while_away": {"+84912345678": ("answered", "1001", 4.5), "+84901234568": ("answered", "1002", 4.5),
                              "+84933333333": ("interrupted", "1002", 2.0)},  # its end's CEL rows were lost
}


@pytest.mark.parametrize("name", sorted(EVERY_STATE))
async def test_a_fault_with_calls_in_every_state_rewrites_no_finished_call(sqlite_url: str, tmp_path: Path,
                                                                           name: str) -> None:
    """Calls ringing, talking, queued, on hold in an attended transfer and one just finished, then `core restart
    now`, kill -9 of Asterisk, or clinicall killed -9 (the calls go on and end while it is away, with the CEL/CDR
    database locked for a while in cel_locked_while_away: Asterisk drops the rows it cannot write). One row per
    call; the finished call as it was; every other call ended as AMI or CEL says, else `interrupted` (never a
    guessed end); an attended transfer cut by the restart is no transfer."""
    from telephony.calltrack import SHUTDOWN_CAUSE
    from telephony.cel_source import CelSource

    database = cel_database(name, tmp_path / "master.db")
    base = aligned_base(name, database)
    after = f"{name}_after_restart" if (RIG / f"{name}_after_restart.recv.raw").exists() else f"{name}_reconnect"
    trace = rig_trace(name)
    shutdown = any(ev.get("Event") == "Shutdown" for ev, _ in trace.timed_messages(base))
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):
        for i in range(len(trace.originates())):
            await h.outbound_from_trace(trace, i, base=base)
        messages = trace.timed_messages(base)
        for start in range(0, len(messages), 50):  # as the link hands them over: consecutive events in one batch
            await h.log.handle_batch(messages[start:start + 50])
        finished = {r.id: summary(r) for r in await h.rows() if r.state == "ended"}
        h.log.link_lost(messages[-1][1])
        if shutdown:
            await h.log.asterisk_shutdown()
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents", **SETTINGS):  # clinicall again
        h.log.cel_source = CelSource(str(database))
        h.log.cel_catch_up = 0.3
        await h.log.load_open_calls()
        messages = rig_trace(after).timed_messages(base if after.endswith("_reconnect") else wallclock(after))
        cut = next(i for i, (ev, _) in enumerate(messages) if ev.get("Event") == "CoreShowChannelsComplete") + 1
        for ev, at in messages[:cut]:
            await h.log.handle(ev, at)
        await h.log.reconcile(live_channels(after), messages[0][1], [])
        for ev, at in messages[cut:]:
            await h.log.handle(ev, at)
        rows = await h.rows()
        assert {r.id: summary(r) for r in rows if r.id in finished} == finished, "a fault rewrote a finished call"
        assert len({r.linkedid for r in rows}) == len(rows) == len(EVERY_STATE[name]), [r.number for r in rows]
        for call in rows:
            disposition, agent, talk = EVERY_STATE[name][call.number]
            assert (call.state, call.disposition, call.agent_extension) == ("ended", disposition, agent), call.number
            assert close(call.talk_seconds, talk) and (call.answered_at is not None) == (talk > 0), call.number
            if disposition == "interrupted":
                assert (call.hangup_cause or "").startswith("Interrupted"), call.hangup_cause
            elif shutdown and call.id not in finished:
                assert call.hangup_cause == SHUTDOWN_CAUSE, call.hangup_cause
        transfers = {call.number: [leg.get("transferred") for leg in json.loads(call.legs) if leg.get("transferred")]
                     for call in rows}
        assert transfers.get("+84955555555", []) == (["attended"] if name == "away_every_state" else []), transfers
        await assert_rebuild_changes_nothing(h)
