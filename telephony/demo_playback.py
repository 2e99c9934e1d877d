"""The demo PBX's automated calls (reminder campaigns) and the keys its callers press.

An Originate into one of the PBX's playback contexts (`clinicall-reminder`) dials the patient
(`Local/<number>@patient`) first. By the dialled number, deterministically:
  - ...0002 busy, ...0003 rings and never answers (Reason 3 at the Originate's Timeout, capped at
    `no_answer_seconds`), ...0004 unreachable (congestion), as for click-to-call;
  - a number ending in 9 is busy the first time this PBX dials it, then answers and presses 1;
  - otherwise the last digit decides what the patient presses: 0, 1, 3, 5 -> "1"; 6, 7 -> "2"; 8 -> nothing.
Answered calls run the FastAGI script of the Originate's Exten (`s`: `reminder`, `turn-near`: `turn_near`,
as in config/asterisk/extensions.conf; `agi://<agi host>:<port>/<script>`) with the
environment and replies of Asterisk 22: STREAM FILE fails (`result=-1`) when the sound file is not
there (the demo caller listens to the end of every sound); WAIT FOR DIGIT and GET DATA return the
caller's key, then 0 (a timeout); the patient hangs up when the script ends.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from telephony.wire import Header, first

if TYPE_CHECKING:
    from telephony.demo_pbx import Chan, DemoPbx

SOUND_EXTENSIONS = (".wav", ".sln", ".ulaw", ".alaw", ".gsm")
PLAYBACK_SCRIPTS = {"s": "reminder", "turn-near": "turn_near"}  # by the Originate's Exten
KEYS_BY_LAST_DIGIT = {"0": "1", "1": "1", "3": "1", "5": "1", "6": "2", "7": "2", "8": "", "9": "1"}


def demo_outcome(exten: str, attempt: int) -> tuple[str, str]:
    """(answer | busy | noanswer | unavailable, the key pressed) for the n-th call (1-based) to a number."""
    if exten.endswith("0002"):
        return "busy", ""
    if exten.endswith("0003"):
        return "noanswer", ""
    if exten.endswith("0004"):
        return "unavailable", ""
    if exten.endswith("9") and attempt == 1:
        return "busy", ""
    return "answer", KEYS_BY_LAST_DIGIT.get(exten[-1:], "1")


def sound_exists(name: str) -> bool:
    path = Path(name)
    return path.is_absolute() and any(path.with_name(path.name + ext).is_file() for ext in SOUND_EXTENSIONS)


def key_reply(pbx: DemoPbx, command: str, pressed: list[str]) -> str | None:
    """The reply to a command that plays sound or reads a key; None for any other command."""
    words = command.split(None, 2)
    if len(words) < 2:
        return None
    verb = " ".join(words[:2]).upper()
    if verb == "STREAM FILE":
        try:
            args = shlex.split(words[2]) if len(words) > 2 else []
        except ValueError:
            return "520 Invalid command syntax.  Proper usage not available."
        name = (args + [""])[0]
        if not sound_exists(name):
            return "200 result=-1 endpos=0"
        pbx.played.append(name)
        return "200 result=0 endpos=16000"  # the demo caller listens to the end, then presses
    if verb == "WAIT FOR":
        if pressed and pressed[0]:
            return f"200 result={ord(pressed.pop(0))}"
        return "200 result=0"
    if verb == "GET DATA":
        args = words[2].split() if len(words) > 2 else []
        if args and sound_exists(args[0]):
            pbx.played.append(args[0])
        digits = pressed.pop(0) if pressed and pressed[0] else ""
        return f"200 result={digits}" if digits else "200 result= (timeout)"
    if verb.startswith("HANGUP"):
        return "200 result=1"
    return None


@dataclass
class AutoOriginate:
    """The fields of an Originate into a playback context."""

    action_id: str
    dial: str
    context: str
    exten: str
    variables: list[list[str]]
    timeout: float
    cid_num: str
    cid_name: str

    @classmethod
    def parse(cls, action: list[Header]) -> AutoOriginate:
        caller = re.match(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>', first(action, "CallerID") or "")
        cid_name, cid_num = (caller.group(1), caller.group(2)) if caller else ("", first(action, "CallerID") or "")
        return cls(first(action, "ActionID") or "", first(action, "Channel") or "", first(action, "Context") or "",
                   first(action, "Exten") or "s",
                   [v.split("=", 1) for v in (val for k, val in action if k.lower() == "variable") if "=" in v],
                   float(first(action, "Timeout") or 30000) / 1000, cid_num, cid_name)

    def respond(self, pbx: DemoPbx, ok: bool, reason: int, chan: Chan | None = None) -> None:
        pbx.broadcast("OriginateResponse", [("ActionID", self.action_id), ("Response", "Success" if ok else "Failure"),
                                            ("Channel", chan.name if chan else self.dial), ("Context", self.context),
                                            ("Exten", self.exten), ("Reason", reason),
                                            ("Uniqueid", chan.uniqueid if chan else "<unknown>"),
                                            ("CallerIDNum", self.cid_num or "<unknown>"),
                                            ("CallerIDName", self.cid_name or "<unknown>")])


async def automated_call(pbx: DemoPbx, action: list[Header]) -> None:
    orig = AutoOriginate.parse(action)
    match = re.match(r"^Local/([^@]+)@(.+)$", orig.dial)
    if match is None:
        orig.respond(pbx, False, 0)
        return
    number, dest_ctx = match.group(1), match.group(2)
    pbx.dialled[number] = pbx.dialled.get(number, 0) + 1
    outcome, key = demo_outcome(number, pbx.dialled[number])
    one, two = pbx._local_pair(f"{number}@{dest_ctx}", dest_ctx, number, None,
                               first(action, "ChannelId"), first(action, "OtherChannelId"))
    pbx.hangup_requests[one.linkedid] = asyncio.Event()
    try:
        for name, value in orig.variables:
            pbx._varset(one, name, value)
        pbx._callerid(one, orig.cid_num, orig.cid_name)
        pbx._newexten(two, "NoOp", f"patient phone {number}")
        if await _not_answered(pbx, orig, one, two, outcome):
            return
        pbx._newexten(two, "Answer", "")
        pbx._state(two, 6)
        pbx._state(one, 6)
        orig.respond(pbx, True, 4, one)
        await _run_context(pbx, one, orig.context, orig.exten, number, key)
        for chan in (two, one):
            pbx._hangup_chan(chan, 16)
        pbx._cdr(one, orig.cid_num, orig.exten, orig.context, "", "AGI", dict(orig.variables).get("PATIENT_ID", ""))
    finally:
        pbx.hangup_requests.pop(one.linkedid, None)


async def _not_answered(pbx: DemoPbx, orig: AutoOriginate, one: Chan, two: Chan, outcome: str) -> bool:
    """Busy, congestion, no answer or a Hangup while ringing: the channels end, the Originate fails."""
    if outcome in ("busy", "unavailable"):
        await pbx._sleep(0.3)
        cause = 17 if outcome == "busy" else 34
        pbx._hangup_chan(two, cause)
        pbx._hangup_chan(one, cause)
        orig.respond(pbx, False, 5 if outcome == "busy" else 8)
        return True
    pbx._state(two, 5)
    pbx._state(one, 5)
    wait = min(orig.timeout, pbx.no_answer_seconds) if outcome == "noanswer" else pbx.ring_seconds
    if await pbx._wait_or_hangup(one.linkedid, wait) or outcome == "noanswer":
        cause = 19 if outcome == "noanswer" else 16
        pbx._hangup_chan(two, cause)
        pbx._hangup_chan(one, cause)
        orig.respond(pbx, False, 3 if outcome == "noanswer" else 1)
        return True
    return False


async def _run_context(pbx: DemoPbx, chan: Chan, context: str, exten: str, number: str, key: str) -> None:
    """The playback context on the answered channel: its FastAGI script, then Hangup()."""
    chan.context, chan.exten, chan.priority = context, exten, 1
    script = PLAYBACK_SCRIPTS.get(exten, "reminder")
    request = f"agi://{pbx.agi_host}:{pbx.agi_port}/{script}"
    pbx._newexten(chan, "AGI", request)
    status = "FAILURE"
    if pbx.agi_host and pbx.agi_port:
        status = await pbx._run_fastagi(chan, number, request, script, keys=key)
    pbx._varset(chan, "AGISTATUS", status)
    pbx._newexten(chan, "Hangup", "")
