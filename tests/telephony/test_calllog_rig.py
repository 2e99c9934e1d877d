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
SETTINGS = {"inbound_contexts": ["inbound", "from-pstn"]}  # from-pstn: FreePBX's inbound context


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
                              legs=[("1001", "ANSWER", 3.5), ("1002", "ANSWER", 8.5)]),
    "ring_group": dict(direction="inbound", origin="trunk", disposition="answered", number="+84933333333",
                       patient_id=None, agent_extension="1002", talk=6.0, ring=1.0, hangup_code=16,
                       legs=[("1001", "CANCEL", None), ("1002", "ANSWER", 6.0)]),
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
}


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
        assert (call.number_raw is None) == (want["number"] is None), call.number_raw
        assert close(call.talk_seconds, want["talk"]), (name, call.talk_seconds)
        assert close(call.ring_seconds if want["ring"] is not None else None, want["ring"]), (name, call.ring_seconds)
        assert call.billsec == int(want["talk"])
        if want["disposition"] == "answered":
            assert call.answered_at is not None and call.ringing_at is not None
            assert close(seconds_from(call.ringing_at, call.answered_at), want["ring"])
        else:
            assert call.answered_at is None
        legs = [(leg["extension"], leg["dial_status"], leg["talk_seconds"]) for leg in json.loads(call.legs or "[]")]
        assert len(legs) == len(want["legs"]), legs
        for (ext, status, talk), (w_ext, w_status, w_talk) in zip(legs, want["legs"], strict=True):
            assert (ext, status) == (w_ext, w_status) and close(talk, w_talk), legs


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
