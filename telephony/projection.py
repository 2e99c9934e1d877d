"""A call's row computed from the facts the tracker holds (pure): who is the patient's side, when the
patient was reached and by whom, how long they talked, how it ended, and the legs.

- The patient's side: inbound, the channel the call started on (and its Local twin); click-to-call
  and desk-phone calls, the channels the agent's side dialled that are not agents' phones.
- `talk_seconds`: the time the patient's side spent in a bridge with someone else (a person: the
  agent, a transfer target, a queue member). Without any bridge (the patient leg runs as dialplan
  on the agent's channel) it is ended − answered.
- `answered_at`: the first of: a Dial from the patient's side (inbound) or to the patient (outbound)
  answered, the patient bridged with someone, an `Answer()` in the outbound context. Never the
  agent's own phone answering.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telephony.calltrack import (
    CAUSE_DISPOSITION,
    CDR_DISPOSITION,
    DIAL_DISPOSITION,
    REASON_CAUSE,
    REASON_DISPOSITION,
    SHUTDOWN_CAUSE,
    UNREACHED_CAUSES,
    CallSpec,
    Channel,
    Dial,
    Originate,
    Projection,
    _int,
)

if TYPE_CHECKING:
    from telephony.calltrack import CallTracker

MAX_LEGS = 30


@dataclass
class View:
    """Everything known about one call."""

    tracker: CallTracker
    spec: CallSpec
    linkedids: list[str]
    chans: dict[str, Channel]
    dials: list[Dial]
    variables: dict[str, str]
    cdrs: list[dict[str, str]]
    orig: Originate | None

    def twins(self, uids: set[str]) -> set[str]:
        bases = {self.chans[u].base for u in uids if u in self.chans and self.chans[u].name}
        return set(uids) | {u for u, c in self.chans.items() if c.name and c.base in bases}

    def ext(self, uid: str) -> str | None:
        chan = self.chans.get(uid)
        return self.tracker.chan_ext(chan) if chan else None


def gather(tracker: CallTracker, spec: CallSpec) -> View:
    linkedids = tracker.linkedids_of(spec.call_id)
    uids = sorted({u for lid in linkedids for u in tracker.groups.get(lid, ())})
    chans = {u: tracker.channels[u] for u in uids if u in tracker.channels}
    keys = sorted({k for lid in linkedids for k in tracker.group_dials.get(lid, ())}, key=str)
    variables: dict[str, str] = {}
    for lid in linkedids:
        for key, value in tracker.group_vars.get(lid, {}).items():
            variables.setdefault(key, value)
    view = View(tracker, spec, linkedids, chans, [tracker.dials[k] for k in keys if k in tracker.dials], variables,
                [tracker.cdrs[u] for u in uids if u in tracker.cdrs],
                tracker.originates.get(spec.action_id or "") if spec.action_id else None)
    view.dials += cel_dials(view)
    return view


def cel_dials(view: View) -> list[Dial]:
    """Dials known only from CEL records (a call that happened while clinicall was not listening): CEL
    has no DialBegin/DialEnd, so each channel started inside a call that no Dial reached was dialled by
    the channel whose HANGUP carries a DIALSTATUS (else by the first channel)."""
    reached = {d.dest_uid for d in view.dials}
    own = {u for u in (view.spec.channel_id, view.spec.other_channel_id) if u}
    dialled = [c for c in view.chans.values() if not c.on_ami and c.uniqueid not in reached and c.uniqueid != c.linkedid
               and c.uniqueid not in own and not c.name.endswith(";2")]
    if not dialled:
        return []
    dialler = next((c for c in sorted(view.chans.values(), key=lambda c: c.seen_at) if c.dialstatus), None)
    if dialler is None:
        dialler = view.chans.get(view.linkedids[0]) if view.linkedids else None
    if dialler is None:
        return []
    out = []
    for chan in sorted(dialled, key=lambda c: (c.seen_at, c.uniqueid)):
        if chan.uniqueid == dialler.uniqueid or chan.base == dialler.base:
            continue
        status = "ANSWER" if chan.up_at is not None else (dialler.dialstatus if dialler.dialstatus != "ANSWER" else None)
        out.append(Dial(dialler.uniqueid, chan.uniqueid, chan.name, begin_at=chan.seen_at, end_at=chan.up_at,
                        status=status))
    return out


# ---- talk ---------------------------------------------------------------------------------------
def talk_spans(view: View, patient: set[str], until: float | None) -> list[tuple[float, float, str]]:
    """(start, end, partner uniqueid) for every time the patient's side shared a bridge with another party."""
    tracker = view.tracker
    bridges = sorted({b for lid in view.linkedids for b in tracker.group_bridges.get(lid, ())})
    out: list[tuple[float, float, str]] = []
    for bridge in bridges:
        spans = tracker.bridges.get(bridge, [])
        for mine in (s for s in spans if s.uniqueid in patient):
            for other in (s for s in spans if s.uniqueid not in patient):
                reached = answered_behind(view, other.uniqueid)
                if reached is None:
                    continue  # a Local channel whose party never answered: the patient waited, nobody talked
                start = max(mine.enter, other.enter, reached)
                ends = [t for t in (mine.leave, other.leave, until) if t is not None]
                if ends and min(ends) > start:
                    out.append((start, min(ends), other.uniqueid))
    return sorted(out)


def answered_behind(view: View, uid: str) -> float | None:
    """When the party behind a channel could talk: a Local channel that dials the call on (a transfer's
    `Local/1002@transfer`, a queue's `Local/1001@from-queue`) can sit in the patient's bridge while the phone
    behind it still rings (an attended transfer completed before the target answered): its answer, or None
    if it never answered. Any other channel: at once (-inf)."""
    twins = view.twins({uid}) - {uid}
    onward = [d for d in view.dials if twins and d.caller_uid in twins]
    if not onward:
        return float("-inf")
    answered = [d.end_at for d in onward if d.status == "ANSWER" and d.end_at is not None]
    return min(answered) if answered else None


def union_seconds(spans: list[tuple[float, float, str]]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end, _ in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _seconds(value: float | None) -> int | None:
    return None if value is None else max(0, int(value + 1e-6))  # whole seconds, truncated like Asterisk's billsec


def _tenths(value: float | None) -> float | None:
    return None if value is None else max(0.0, round(value + 1e-9, 1))


# ---- ends ---------------------------------------------------------------------------------------
def real_end(view: View) -> float | None:
    chans = list(view.chans.values())
    times: list[float] = []
    if chans and all(c.hangup_at is not None for c in chans):
        times = [c.hangup_at for c in chans if c.hangup_at is not None]
    if view.orig is not None and view.orig.response != "Success":
        times.append(view.orig.at)
    return max(times) if times else None


def hangup_cause(view: View, prefer: set[str] | None = None) -> tuple[int | None, str | None]:
    """The most specific Q.850 cause, from the patient's side first (a ring group's losers end with 26
    "Answered elsewhere"; that is not how the call ended)."""
    for chosen_set in (prefer or set(), set(view.chans)):
        hung = [c for u, c in view.chans.items() if u in chosen_set and c.hangup_at is not None and c.cause is not None]
        specific = [c for c in hung if c.cause not in (0, 16)]
        for group in (specific, [c for c in hung if c.cause == 16], hung):
            if group:
                chosen = sorted(group, key=lambda c: c.uniqueid)[0]
                return chosen.cause, chosen.cause_txt or None
    return None, None


def final_party(view: View, uid: str) -> str:
    """A Local channel passes the call on: the party behind it is the one its twin dialled and reached."""
    for _ in range(5):
        twins = view.twins({uid}) - {uid}
        reached = next((d.dest_uid for d in view.dials if d.caller_uid in twins and d.status == "ANSWER"), None)
        if reached is None or reached == uid:
            return uid
        uid = reached
    return uid


def dialled_on(view: View, uid: str) -> set[str]:
    """What a Local channel's other half dialled (a ring group's or a follow-me's `Local/1001@from-internal`
    passing the call on to the phone): answered or not, that is the party behind it."""
    twins = view.twins({uid}) - {uid}
    return {view.chans[d.dest_uid].base if d.dest_uid in view.chans else d.dest_name
            for d in view.dials if twins and d.caller_uid in twins}


def leg_status(view: View, dial: Dial) -> str | None:
    """A dial made by a Local channel that only passes the call on (a queue's `Local/1003@from-queue/n`)
    ends CANCEL whenever its own dialler gives up on it: how the dial that reached that Local channel ended
    says why (the queue's NOANSWER when the member's ring time ran out)."""
    status = dial.status
    for _ in range(5):
        if status != "CANCEL" or dial.caller_uid is None:
            return status
        twins = view.twins({dial.caller_uid}) - {dial.caller_uid}
        outer = next((d for d in view.dials if d.dest_uid in twins), None)
        if outer is None or outer.caller_uid is None or outer.status in (None, "ANSWER"):  # None: an Originate's
            return status
        status, dial = outer.status, outer
    return status


def _iso(epoch: float | None) -> str | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds") if epoch is not None else None


def legs_json(view: View, patient: set[str], spans: list[tuple[float, float, str]],
              caller: set[str] | None = None) -> str:
    """Every party dialled or met in a bridge (not the caller's own channels): who, answered when, talked
    how long with the patient."""
    stays: dict[str, list[tuple[float, float, str]]] = {}
    for start, end, partner in spans:
        uid = final_party(view, partner)
        stays.setdefault(view.chans[uid].base if uid in view.chans else uid, []).append((start, end, partner))
    talk = {base: union_seconds(party) for base, party in stays.items()}  # a party behind two channels at once
    total = union_seconds(spans)
    legs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for dial in sorted(view.dials, key=lambda d: (d.begin_at or d.end_at or 0.0, d.dest_uid)):
        if caller and dial.dest_uid in caller:
            continue
        dest = view.chans.get(dial.dest_uid)
        base = dest.base if dest else dial.dest_name
        if base in seen:
            continue  # one party, two dials: a call picked up (the picker's own Originate, then the caller's)
        seen.add(base)
        behind = dialled_on(view, dial.dest_uid)
        if dial.dest_uid in patient:
            talk.setdefault(base, total)
        elif not view.ext(dial.dest_uid) and behind:
            continue  # a Local channel that only passed the call on (the party behind it has its own leg)
        elif view.ext(dial.dest_uid):  # an agent's Local channel (agent_channel Local/{ext}@from-internal):
            seen |= behind  # the phone it rang is this same leg
        party = final_party(view, dial.dest_uid)
        legs.append({**transferred(view, base), "party": "agent" if view.ext(dial.dest_uid) else "patient" if dial.dest_uid in patient else "other",
                     "channel": base[:80], "extension": view.ext(dial.dest_uid), "dialled_at": _iso(dial.begin_at),
                     "answered_at": _iso(dial.end_at) if dial.status == "ANSWER" else None,
                     "dial_status": leg_status(view, dial),
                     "talk_seconds": _tenths(talk.get(base, talk.get(view.chans[party].base if party in view.chans
                                                                     else party)))})
    for start, _end, partner in spans:
        uid = final_party(view, partner)
        chan = view.chans.get(uid)
        base = chan.base if chan else uid
        if base not in seen:
            seen.add(base)
            legs.append({**transferred(view, base), "party": "agent" if view.ext(uid) else "other", "channel": base[:80],
                         "extension": view.ext(uid), "dialled_at": None, "answered_at": _iso(start),
                         "dial_status": None, "talk_seconds": _tenths(talk.get(base))})
    legs += consultations(view, patient)
    return json.dumps(legs[:MAX_LEGS], separators=(",", ":"))


def transferred(view: View, base: str) -> dict[str, str]:
    """`{"transferred": "blind"|"attended"}` for the party (either half of a Local pair) that transferred the call."""
    kind = next((c.transferred for c in view.chans.values() if c.transferred and c.base == base), None)
    return {"transferred": kind} if kind else {}


def _reached(view: View, uid: str) -> tuple[float, str, float, str | None]:
    """(when it was dialled, uniqueid, when it answered, extension) of the party behind a channel."""
    party = final_party(view, uid)
    dialled = min((d.begin_at or d.end_at or 0.0 for d in view.dials if d.dest_uid == party), default=0.0)
    chan = view.chans.get(party)
    up = chan.up_at if chan is not None and chan.up_at is not None else 0.0
    return dialled, party, up, view.ext(party)


def _without(start: float, end: float, busy: list[tuple[float, float]]) -> float:
    """Seconds of [start, end) outside every interval of `busy`."""
    spans = [(max(start, s), min(end, e), "") for s, e in busy if min(end, e) > max(start, s)]
    return max(0.0, end - start - union_seconds(spans))


def consultations(view: View, patient: set[str]) -> list[dict[str, Any]]:
    """Agents who talked with each other without the patient (an attended transfer's consultation)."""
    talk: dict[tuple[str, str], list[float]] = {}
    bridges = sorted({b for lid in view.linkedids for b in view.tracker.group_bridges.get(lid, ())})
    for bridge in bridges:
        everyone = view.tracker.bridges.get(bridge, [])
        stays = [s for s in everyone if s.uniqueid in view.chans and s.uniqueid not in patient and s.leave is not None]
        with_patient = [(s.enter, s.leave if s.leave is not None else float("inf")) for s in everyone
                        if s.uniqueid in patient]
        for i, one in enumerate(stays):
            for two in stays[i + 1:]:
                ends = sorted((_reached(view, one.uniqueid), _reached(view, two.uniqueid)))  # callee last
                (_, _, up_a, caller), (_, _, up_b, callee) = ends
                start = max(one.enter, two.enter, up_a, up_b)
                end = min(one.leave, two.leave)  # type: ignore[type-var]
                alone = _without(start, end, with_patient)  # a conference with the patient is no consultation
                if caller and callee and caller != callee and alone > 0:
                    talk.setdefault((caller, callee), [start, 0.0])[1] += alone
    return [{"party": "agent", "channel": None, "extension": callee, "with_extension": caller, "dialled_at": None,
             "answered_at": _iso(start), "dial_status": None, "talk_seconds": _tenths(seconds),
             "consultation": True} for (caller, callee), (start, seconds) in sorted(talk.items())]


# ---- the projection -----------------------------------------------------------------------------
def project(tracker: CallTracker, spec: CallSpec) -> Projection:
    view = gather(tracker, spec)
    if spec.auto:
        from telephony.project_auto import project_auto

        return project_auto(view)
    if spec.direction == "outbound" and (spec.action_id or spec.channel_id or spec.dial_string):
        from telephony.project_out import project_click_to_call

        return project_click_to_call(view)
    from telephony.project_group import project_group

    return project_group(view)


def finish(view: View, *, answered_at: float | None, ended_at: float | None, disposition: str | None,
           patient: set[str], cause: tuple[int | None, str | None]) -> dict[str, Any]:
    """The fields every kind of call computes the same way once its disposition is known."""
    spec = view.spec
    forced = ended_at is None and spec.forced_end is not None
    code, text = cause
    if forced:
        assert spec.forced_end is not None
        ended_at, disposition, text = last_known(view), spec.forced_disposition, spec.forced_end[1]
    elif ended_at is not None and any(c.shutdown_at is not None for c in view.chans.values()):
        text = SHUTDOWN_CAUSE  # not the caller or the agent hanging up: Asterisk cut the call
        if disposition != "answered":
            disposition = "failed"
    spans = talk_spans(view, patient, ended_at)
    talk: float | None = None
    if ended_at is not None:
        talk = 0.0
        if spans:
            talk = union_seconds(spans)
        elif disposition == "answered" and answered_at is not None:
            talk = ended_at - answered_at
        if disposition == "answered" and not spans:  # no bridge seen: Asterisk's own count, if any
            talk = max(talk, float(cdr_talk(view, patient) or 0))
    return {"ended_at": ended_at, "disposition": disposition, "hangup_code": code, "hangup_cause": text,
            "talk_seconds": _tenths(talk), "billsec": _seconds(_tenths(talk)), "spans": spans,
            "duration": _seconds(ended_at - spec.created_at) if ended_at is not None else None,
            "patient_id": spec.patient_id if spec.patient_id is not None else _int(view.variables.get("PATIENT_ID"))}


def last_known(view: View) -> float:
    """Where an interrupted call's record stops: the last moment it is known to have been in progress (the
    last event heard from Asterisk before the outage, or a later fact of the call read from CEL), never the
    time clinicall gave up on it: its talk and duration must not grow with the length of the outage."""
    spec = view.spec
    assert spec.forced_end is not None
    if spec.last_seen is None:
        return spec.forced_end[0]
    facts = [spec.last_seen, spec.created_at]
    for chan in view.chans.values():
        facts += [t for t in (chan.seen_at, chan.ringing_at, chan.up_at, chan.hangup_at) if t is not None]
    for dial in view.dials:
        facts += [t for t in (dial.begin_at, dial.ringing_at, dial.end_at) if t is not None]
    for bridge in {b for lid in view.linkedids for b in view.tracker.group_bridges.get(lid, ())}:
        for span in view.tracker.bridges.get(bridge, []):
            facts += [t for t in (span.enter, span.leave) if t is not None]
    return min(spec.forced_end[0], max(facts))


def cdr_talk(view: View, patient: set[str]) -> int | None:
    """BillableSeconds of the Cdr pairing the patient with whoever answered (Asterisk's own clock: right
    even when events arrive without a Timestamp header, replayed at once)."""
    names = {view.chans[u].name for u in patient if u in view.chans}
    outbound = view.tracker.outbound_contexts
    found = [_int(c.get("BillableSeconds")) for c in view.cdrs if c.get("Disposition") == "ANSWERED" and (
        (c.get("DestinationChannel") in names)
        or (c.get("Channel") in names and c.get("DestinationChannel") and c.get("DestinationChannel") not in names)
        or (not names and c.get("DestinationContext") in outbound))]
    values = [v for v in found if v is not None]
    return max(values) if values else None


def state_of(ended_at: float | None, answered_at: float | None, ringing_at: float | None) -> str:
    return "ended" if ended_at is not None else "answered" if answered_at is not None else \
        "ringing" if ringing_at is not None else "dialing"


def ring_seconds(ringing_at: float | None, answered_at: float | None, ended_at: float | None) -> float | None:
    if ringing_at is None:
        return None
    stop = answered_at if answered_at is not None else ended_at
    return _tenths(stop - ringing_at) if stop is not None else None


def cdr_disposition(cdrs: list[dict[str, str]]) -> str | None:
    found = sorted(CDR_DISPOSITION[c["Disposition"]] for c in cdrs if c.get("Disposition") in CDR_DISPOSITION)
    return found[0] if found else None


def dial_disposition(statuses: list[str], default: str, code: int | None = None) -> str:
    """How the dials ended; `code`, the called party's Q.850 cause, makes a NOANSWER to a number or network
    that failed (UNREACHED_CAUSES) `failed`."""
    if statuses and set(statuses) == {"NOANSWER"} and code in UNREACHED_CAUSES:
        return "failed"
    return DIAL_DISPOSITION.get(sorted(statuses)[0], default) if statuses else default


__all__ = ["CAUSE_DISPOSITION", "REASON_CAUSE", "REASON_DISPOSITION", "View", "finish", "gather", "project"]
