"""Projection of a call clinicall did not start: inbound (from the trunk or an inbound context), an
agent's desk phone dialling out, or internal (agent to agent)."""

from __future__ import annotations

import re

from telephony.calltrack import CAUSE_DISPOSITION, Channel, Dial, Projection
from telephony.models import DIRECTION_OF
from telephony.projection import (
    View,
    dial_disposition,
    final_party,
    finish,
    hangup_cause,
    legs_json,
    real_end,
    ring_seconds,
    state_of,
    talk_spans,
)

NUMBER = re.compile(r"^\+?[0-9*#]{2,40}\Z")
CALLER_FIRST = ("trunk", "unknown")  # projected from the party that started the call (its number, its dials)
LAST_DIALS = 0.5  # seconds: dials ending this close to the last one ended together (a ring group's)


def origin_side(view: View) -> set[str]:
    linkedid = view.spec.linkedid or (view.linkedids[0] if view.linkedids else "")
    return {c.uniqueid for c in view.tracker.origin_side(linkedid)}


def dialled_number(dial_string: str) -> str | None:
    """`Local/0901234567@patients`, `PJSIP/0901234567@trunk`, `0901234567@patients` -> 0901234567."""
    tail = dial_string.split("/")[-1].split("@")[0].split(",")[0]
    return tail if NUMBER.match(tail) else None


def _caller(chans: list[Channel], answered_at: float | None) -> tuple[str | None, str | None]:
    """The caller's number and name. A name that reached the caller's channel only once someone answered
    is that party's (a pickup or a transfer updates the connected line), never the caller's."""
    ordered = sorted(chans, key=lambda c: (c.seen_at, c.uniqueid))
    name = next((c.caller_name for c in ordered if c.caller_name
                 and (answered_at is None or c.caller_name_at < answered_at)), None)
    if any(c.withheld for c in chans):
        return None, name
    return next((c.caller_num for c in ordered if c.caller_num), None), name


def _dialled(view: View, dials: list[Dial], side: set[str]) -> str | None:
    for dial in dials:
        found = dialled_number(dial.dial_string) or dialled_number(dial.dest_name)
        if found:
            return found
    for uid in sorted(side):
        for text in view.chans[uid].dial_strings:
            if found := dialled_number(text.split("&")[0]):
                return found
    return None


def _answered(dials: list[Dial], spans: list[tuple[float, float, str]]) -> float | None:
    times = [d.end_at for d in dials if d.status == "ANSWER" and d.end_at is not None]
    if spans:
        times.append(spans[0][0])
    return min(times) if times else None


def _last_statuses(dials: list[Dial]) -> list[str]:
    """The DIALSTATUS of the dials that ended last: how the call ended (a busy agent first, then the caller
    hanging up while the ring group rang, is an abandoned call, not a busy one)."""
    ended = [(d.end_at if d.end_at is not None else d.begin_at or 0.0, d.status) for d in dials if d.status]
    last = max((at for at, _ in ended), default=0.0)
    return [status for at, status in ended if at >= last - LAST_DIALS]


def _disposition(view: View, dials: list[Dial], side: set[str], code: int | None) -> str:
    # CEL's HANGUP dialstatus is the DIALSTATUS variable: a Dial cut by the caller leaves the one before it
    # there, so it only counts when no DialEnd was seen (a call known from CEL alone)
    statuses = _last_statuses(dials) or [s for u in sorted(side) if (s := view.chans[u].dialstatus) and s != "ANSWER"]
    if statuses:  # the called party's cause counts where the patient was called (a desk phone dialling out)
        return dial_disposition(statuses, "no_answer", None if view.spec.origin in CALLER_FIRST else code)
    if code is not None and code in CAUSE_DISPOSITION and code != 16:
        return CAUSE_DISPOSITION[code]
    if view.spec.origin in CALLER_FIRST and not any(view.chans[u].ended_by_dialplan for u in side):
        return "cancelled"  # no phone rang and the dialplan did not end it: the caller hung up (menu, queue)
    return "no_answer"


def _agent(view: View, dials: list[Dial], spans: list[tuple[float, float, str]], origin: str,
           side: set[str]) -> tuple[str | None, str | None]:
    """(extension, channel) of the agent: the desk phone that dialled, or who answered / was rung."""
    if origin in ("desk_phone", "internal"):
        first = sorted(side)[0] if side else None
        chan = next((view.chans[u] for u in sorted(side) if view.ext(u)), None)
        return (view.ext(chan.uniqueid), chan.name) if chan else (None, view.chans[first].name if first else None)
    for _start, _end, partner in spans:
        uid = final_party(view, partner)
        if view.ext(uid):
            return view.ext(uid), view.chans[uid].name
    answered = [d for d in dials if d.status == "ANSWER" and view.ext(d.dest_uid)]
    if answered:
        return view.ext(answered[0].dest_uid), answered[0].dest_name
    for dial in dials:  # the first agent rung, also behind a Local channel that passed the call on (a queue's)
        rung = next((d for d in [dial, *sorted(view.dials, key=lambda d: d.begin_at or 0.0)]
                     if view.ext(d.dest_uid) and (d is dial or d.caller_uid in view.twins({dial.dest_uid}))), None)
        if rung is not None:
            return view.ext(rung.dest_uid), None
    return None, None


def project_group(view: View) -> Projection:
    origin = view.spec.origin or "trunk"
    side = origin_side(view)
    dials = sorted((d for d in view.dials if d.caller_uid is not None and d.caller_uid in view.twins(side)),
                   key=lambda d: (d.begin_at or d.end_at or 0.0, d.dest_uid))
    if origin in CALLER_FIRST:
        patient = view.twins(side)
    else:
        patient = view.twins({d.dest_uid for d in dials if not view.ext(d.dest_uid)}) if origin == "desk_phone" \
            else view.twins({d.dest_uid for d in dials})
    ended = real_end(view)
    spans = talk_spans(view, patient, ended)
    answered_at = _answered([d for d in dials if d.dest_uid not in patient] if origin in CALLER_FIRST else
                            [d for d in dials if d.dest_uid in patient], spans)
    code, cause = hangup_cause(view, patient)
    disposition = None
    if ended is not None:
        disposition = "answered" if answered_at is not None else _disposition(view, dials, side, code)
    done = finish(view, answered_at=answered_at, ended_at=ended, disposition=disposition, patient=patient,
                  cause=(code, cause))
    if origin in CALLER_FIRST:
        number, network_name = _caller([view.chans[u] for u in side], answered_at)
        ringing_at: float | None = view.spec.created_at
    else:
        number, network_name = _dialled(view, dials, side), None
        ringing_at = min((t for d in dials if (t := d.ringing_at or d.begin_at) is not None), default=None)
    ext, agent_channel = _agent(view, dials, spans, origin, side)
    return Projection(
        state=state_of(done["ended_at"], answered_at, ringing_at), disposition=done["disposition"],
        ringing_at=ringing_at, answered_at=answered_at, ended_at=done["ended_at"], duration=done["duration"],
        billsec=done["billsec"], hangup_code=done["hangup_code"], hangup_cause=done["hangup_cause"],
        originate_reason=None, patient_id=done["patient_id"] if done["patient_id"] is not None
        else _cdr_patient(view), agent_extension=ext, number=number, caller_name=None,
        linkedid=view.linkedids[0] if view.linkedids else None, agent_channel=agent_channel,
        direction=DIRECTION_OF.get(origin, "outbound"), origin=origin,
        talk_seconds=done["talk_seconds"], ring_seconds=ring_seconds(ringing_at, answered_at, done["ended_at"]),
        legs=legs_json(view, patient, done["spans"], view.twins(side)), network_name=network_name)


def _cdr_patient(view: View) -> int | None:
    from telephony.calltrack import _int

    return next((p for c in view.cdrs if (p := _int(c.get("PatientID"))) is not None), None)
