"""The call-log state machine, pure (no I/O): AMI events in, call projections out.

Every event only adds *facts* (first time a channel was seen, rang, went up, hung up; a dial and
its status; an OriginateResponse; a Cdr; a channel variable). Facts are keyed by what identifies
them (uniqueid, ActionID, dial pair), keep the first value they saw, and a call's row is computed
from the facts alone. That makes the result independent of the order of events of different
types (OriginateResponse, Cdr and Hangup arrive in varying order) and idempotent (the same event
twice adds nothing).

Calls are grouped by Linkedid. An outbound call is linked to its group by the ChannelId we sent
(Linkedid == ChannelId), by the Uniqueid in a successful OriginateResponse, or by the channel
variable CLINICALL_CALL_ID; a failed OriginateResponse only carries the ActionID, which links it.
A group with a channel in one of the inbound contexts and no outbound call becomes an inbound call.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

UNKNOWN = {"", "<unknown>", "unknown"}
STATE_RINGING = "5"
STATE_UP = "6"

# OriginateResponse Reason (ast_control codes): 4 answered, 5 busy, 3 no answer, 8 congestion, 1 hangup, 0 other.
REASON_DISPOSITION = {"5": "busy", "3": "no_answer", "8": "failed", "1": "no_answer"}
REASON_CAUSE = {"5": (17, "User busy"), "3": (19, "User alerting, no answer"), "8": (34, "Circuit/channel congestion"),
                "1": (16, "Normal Clearing"), "0": (0, "Originate failed")}
# Dial() DIALSTATUS of the patient leg / of the agent's phone on inbound calls.
DIAL_DISPOSITION = {"BUSY": "busy", "NOANSWER": "no_answer", "CANCEL": "cancelled", "CONGESTION": "failed",
                    "CHANUNAVAIL": "failed", "DONTCALL": "failed", "TORTURE": "failed", "INVALIDARGS": "failed"}
# Q.850 hangup causes, grouped the way VoIPGRID's cacofonisk reports them
# (completed / no-answer / busy / rejected / failed); rejected is reported as busy here.
CAUSE_DISPOSITION = {17: "busy", 21: "busy", 18: "no_answer", 19: "no_answer", 16: "cancelled"}
CDR_DISPOSITION = {"BUSY": "busy", "NO ANSWER": "no_answer", "FAILED": "failed", "CONGESTION": "failed"}


@dataclass
class Channel:
    uniqueid: str
    linkedid: str
    name: str = ""
    contexts: set[str] = field(default_factory=set)
    caller_num: str | None = None
    caller_name: str | None = None
    seen_at: float = 0.0
    ringing_at: float | None = None
    up_at: float | None = None
    hangup_at: float | None = None
    cause: int | None = None
    cause_txt: str = ""


@dataclass
class Dial:
    caller_uid: str | None
    dest_uid: str
    dest_name: str
    begin_at: float | None = None
    ringing_at: float | None = None
    end_at: float | None = None
    status: str | None = None


@dataclass
class Originate:
    response: str
    reason: str
    uniqueid: str | None
    channel: str
    at: float


@dataclass
class CallSpec:
    """What we know about a call before Asterisk says anything."""

    call_id: int
    direction: str  # "outbound" | "inbound"
    created_at: float
    action_id: str | None = None
    channel_id: str | None = None
    other_channel_id: str | None = None
    linkedid: str | None = None
    dial_string: str | None = None  # the Originate Channel, e.g. Local/1001@agents (links if no ChannelId came back)
    hangup_requested: bool = False
    forced_end: tuple[float, str] | None = None  # (when, why) after an outage or a shutdown


@dataclass(frozen=True)
class Projection:
    state: str
    disposition: str | None
    ringing_at: float | None
    answered_at: float | None
    ended_at: float | None
    duration: int | None
    billsec: int | None
    hangup_code: int | None
    hangup_cause: str | None
    originate_reason: str | None
    patient_id: int | None
    agent_extension: str | None
    number: str | None
    caller_name: str | None
    linkedid: str | None
    agent_channel: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _first(current: float | None, at: float) -> float:
    return at if current is None or at < current else current


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except ValueError:
        return None


def agent_channel_pattern(template: str) -> re.Pattern[str]:
    """`Local/{ext}@agents` or `PJSIP/{ext}` -> a regex that finds `ext` in a real channel name."""
    escaped = re.escape(template).replace(re.escape("{ext}"), r"(?P<ext>[^@/;\-]+)")
    return re.compile(rf"^{escaped}-[0-9a-fA-F]+(;[12])?$")


class CallTracker:
    """Facts from AMI events, grouped by Linkedid, projected into call rows."""

    def __init__(self, *, inbound_contexts: set[str], outbound_contexts: set[str], agent_pattern: re.Pattern[str],
                 max_groups: int = 20000) -> None:
        self.inbound_contexts = inbound_contexts
        self.outbound_contexts = outbound_contexts
        self.agent_pattern = agent_pattern
        self.max_groups = max_groups
        self.channels: dict[str, Channel] = {}
        self.groups: OrderedDict[str, set[str]] = OrderedDict()  # linkedid -> uniqueids
        self.dials: dict[tuple[str | None, str], Dial] = {}
        self.group_dials: dict[str, set[tuple[str | None, str]]] = {}
        self.group_vars: dict[str, dict[str, str]] = {}
        self.group_answer_apps: dict[str, float] = {}  # linkedid -> first Answer() in an outbound context
        self.cdrs: dict[str, dict[str, str]] = {}  # uniqueid -> Cdr headers (first one wins)
        self.cdr_at: dict[str, float] = {}
        self.originates: dict[str, Originate] = {}  # ActionID -> OriginateResponse
        self.calls: dict[int, CallSpec] = {}
        self.by_action: dict[str, int] = {}
        self.by_linkedid: dict[str, int] = {}
        self.call_groups: dict[int, set[str]] = {}  # the reverse of by_linkedid
        self.by_dial_string: dict[str, set[int]] = {}  # calls sent without ChannelId, by Originate Channel
        self.seen_originate_uids: dict[str, str] = {}  # uniqueid from a successful OriginateResponse -> ActionID

    # ---- registration -------------------------------------------------------------------------
    def register(self, spec: CallSpec) -> None:
        self.calls[spec.call_id] = spec
        if spec.dial_string and not spec.channel_id:
            self.by_dial_string.setdefault(spec.dial_string, set()).add(spec.call_id)
        if spec.action_id:
            self.by_action[spec.action_id] = spec.call_id
        for linkedid in (spec.channel_id, spec.linkedid):
            if linkedid:
                self._link(linkedid, spec.call_id)

    def _link(self, linkedid: str, call_id: int) -> None:
        if linkedid not in self.by_linkedid:
            self.by_linkedid[linkedid] = call_id
            self.call_groups.setdefault(call_id, set()).add(linkedid)

    def forget(self, call_id: int) -> None:
        spec = self.calls.pop(call_id, None)
        if spec is None:
            return
        self.by_dial_string.get(spec.dial_string or "", set()).discard(call_id)
        if spec.action_id:
            self.by_action.pop(spec.action_id, None)
            self.originates.pop(spec.action_id, None)
        for linkedid in self.call_groups.pop(call_id, set()):
            self.by_linkedid.pop(linkedid, None)
            self._drop_group(linkedid)

    def _drop_group(self, linkedid: str) -> None:
        for uid in self.groups.pop(linkedid, set()):
            self.channels.pop(uid, None)
            self.cdrs.pop(uid, None)
            self.cdr_at.pop(uid, None)
            self.seen_originate_uids.pop(uid, None)
        for key in self.group_dials.pop(linkedid, set()):
            self.dials.pop(key, None)
        self.group_vars.pop(linkedid, None)
        self.group_answer_apps.pop(linkedid, None)

    def _evict(self) -> None:
        while len(self.groups) > self.max_groups:
            for linkedid in self.groups:
                if linkedid not in self.by_linkedid:
                    self._drop_group(linkedid)
                    break
            else:
                return

    # ---- facts --------------------------------------------------------------------------------
    def _channel(self, uid: str, linkedid: str | None, at: float) -> Channel:
        chan = self.channels.get(uid)
        if chan is None:
            chan = Channel(uniqueid=uid, linkedid=linkedid or uid, seen_at=at)
            self.channels[uid] = chan
            self.groups.setdefault(chan.linkedid, set()).add(uid)
            self._evict()
        else:
            chan.seen_at = min(chan.seen_at, at)
        return chan

    def _channel_facts(self, ev: dict[str, str], at: float, prefix: str = "") -> Channel | None:
        uid = ev.get(prefix + "Uniqueid")
        if not uid or uid in UNKNOWN:
            return None
        chan = self._channel(uid, ev.get(prefix + "Linkedid"), at)
        name = ev.get(prefix + "Channel")
        if name and not chan.name:
            chan.name = name
        context = ev.get(prefix + "Context")
        if context:
            chan.contexts.add(context)
        num = ev.get(prefix + "CallerIDNum")
        if num and num not in UNKNOWN and chan.caller_num is None:
            chan.caller_num = num
        cname = ev.get(prefix + "CallerIDName")
        if cname and cname not in UNKNOWN and chan.caller_name is None:
            chan.caller_name = cname
        state = ev.get(prefix + "ChannelState")
        if state == STATE_RINGING:
            chan.ringing_at = _first(chan.ringing_at, at)
        elif state == STATE_UP:
            chan.up_at = _first(chan.up_at, at)
        return chan

    def apply(self, ev: dict[str, str], at: float) -> set[int]:
        """Add the facts of one event; returns the ids of calls whose projection may have changed,
        and -1 for groups that may have become a new inbound call (see `new_inbound_groups`)."""
        kind = ev.get("Event")
        if kind is None:
            return set()
        touched: set[str] = set()
        if kind == "OriginateResponse":
            action_id = ev.get("ActionID", "")
            if action_id and action_id not in self.originates:
                uid = ev.get("Uniqueid")
                uid = None if not uid or uid in UNKNOWN else uid
                self.originates[action_id] = Originate(ev.get("Response", ""), ev.get("Reason", ""), uid,
                                                       ev.get("Channel", ""), at)
                if uid:
                    self.seen_originate_uids[uid] = action_id
            call_id = self.by_action.get(action_id)
            return {call_id} if call_id is not None else set()
        if kind == "Cdr":
            uid = ev.get("UniqueID") or ev.get("Uniqueid")
            if uid and uid not in self.cdrs:
                self.cdrs[uid] = ev
                self.cdr_at[uid] = at
            chan = self.channels.get(uid or "")
            return self._calls_for({chan.linkedid}) if chan else set()
        if kind in ("DialBegin", "DialEnd", "DialState"):
            caller = self._channel_facts(ev, at)
            dest = self._channel_facts(ev, at, "Dest")
            if dest is None:
                return set()
            key = (caller.uniqueid if caller else None, dest.uniqueid)
            dial = self.dials.get(key)
            if dial is None:
                dial = Dial(key[0], dest.uniqueid, ev.get("DestChannel", ""))
                self.dials[key] = dial
            for chan in (caller, dest):
                if chan is not None:
                    self.group_dials.setdefault(chan.linkedid, set()).add(key)
                    touched.add(chan.linkedid)
            if kind == "DialBegin":
                dial.begin_at = _first(dial.begin_at, at)
            elif kind == "DialState" and ev.get("DialStatus") in ("RINGING", "PROGRESS"):
                dial.ringing_at = _first(dial.ringing_at, at)
            elif kind == "DialEnd" and dial.status is None and ev.get("DialStatus"):
                dial.status = ev["DialStatus"]
                dial.end_at = at
            return self._calls_for(touched)
        chan = self._channel_facts(ev, at)
        if chan is None:
            return set()
        touched.add(chan.linkedid)
        if kind == "Hangup" and chan.hangup_at is None:
            chan.hangup_at = at
            chan.cause = _int(ev.get("Cause"))
            chan.cause_txt = ev.get("Cause-txt", "")
        elif kind == "VarSet":
            variable = ev.get("Variable", "")
            if variable in ("PATIENT_ID", "CLINICALL_CALL_ID") and ev.get("Value"):
                self.group_vars.setdefault(chan.linkedid, {}).setdefault(variable, ev["Value"])
                if variable == "CLINICALL_CALL_ID":
                    call_id = _int(ev["Value"])
                    if call_id in self.calls:
                        self._link(chan.linkedid, call_id)
        elif kind == "Newchannel":
            self._link_by_dial_string(chan)
        elif kind == "Newexten" and ev.get("Application") == "Answer" and ev.get("Context") in self.outbound_contexts:
            self.group_answer_apps[chan.linkedid] = _first(self.group_answer_apps.get(chan.linkedid), at)
        return self._calls_for(touched)

    def _link_by_dial_string(self, chan: Channel) -> None:
        """Asterisk without ChannelId support: the only unlinked open call whose dial string made this channel."""
        if chan.linkedid != chan.uniqueid or self._call_of_group(chan.linkedid) is not None:
            return
        base = chan.name.rsplit("-", 1)[0]
        waiting = self.by_dial_string.get(base)
        if not waiting:
            return
        for call_id in [c for c in waiting if self.call_groups.get(c) or c not in self.calls]:
            waiting.discard(call_id)
        candidates = [self.calls[c] for c in waiting if self.calls[c].created_at <= chan.seen_at + 1.0
                      and not (self.calls[c].action_id and self.calls[c].action_id in self.originates)]
        if len(candidates) == 1:
            self._link(chan.linkedid, candidates[0].call_id)
            waiting.discard(candidates[0].call_id)

    def _calls_for(self, linkedids: set[str]) -> set[int]:
        out: set[int] = set()
        for linkedid in linkedids:
            call_id = self._call_of_group(linkedid)
            if call_id is not None:
                out.add(call_id)
        return out

    def _call_of_group(self, linkedid: str) -> int | None:
        call_id = self.by_linkedid.get(linkedid)
        if call_id is not None:
            return call_id
        action_id = self.seen_originate_uids.get(linkedid)
        if action_id is not None and action_id in self.by_action:
            call_id = self.by_action[action_id]
            self._link(linkedid, call_id)
            return call_id
        return None

    def new_inbound_groups(self) -> list[str]:
        """Groups that look like an inbound call and are not yet a call."""
        found = []
        for linkedid, uids in self.groups.items():
            if linkedid in self.by_linkedid or self._call_of_group(linkedid) is not None:
                continue
            if any(self.channels[u].contexts & self.inbound_contexts for u in uids if u in self.channels):
                found.append(linkedid)
        return found

    def inbound_candidate(self, linkedid: str) -> bool:
        if linkedid in self.by_linkedid or self._call_of_group(linkedid) is not None:
            return False
        return any(self.channels[u].contexts & self.inbound_contexts for u in self.groups.get(linkedid, ()))

    def group_first_seen(self, linkedid: str) -> float:
        return min((self.channels[u].seen_at for u in self.groups.get(linkedid, ())), default=0.0)

    # ---- projection -----------------------------------------------------------------------------
    def linkedids_of(self, call_id: int) -> list[str]:
        spec = self.calls[call_id]
        ids = set(self.call_groups.get(call_id, ()))
        if spec.action_id and (orig := self.originates.get(spec.action_id)) and orig.uniqueid:
            chan = self.channels.get(orig.uniqueid)
            ids.add(chan.linkedid if chan else orig.uniqueid)
        return sorted(ids)

    def project(self, call_id: int) -> Projection:
        spec = self.calls[call_id]
        linkedids = self.linkedids_of(call_id)
        uids = sorted({u for lid in linkedids for u in self.groups.get(lid, ())})
        chans = [self.channels[u] for u in uids if u in self.channels]
        dials = [self.dials[k] for lid in linkedids for k in sorted(self.group_dials.get(lid, ()), key=str)
                 if k in self.dials]
        variables: dict[str, str] = {}
        for lid in linkedids:
            for key, value in self.group_vars.get(lid, {}).items():
                variables.setdefault(key, value)
        cdrs = [self.cdrs[u] for u in uids if u in self.cdrs]
        cdr_times = [self.cdr_at[u] for u in uids if u in self.cdr_at]
        if spec.direction == "inbound":
            return self._project_inbound(spec, linkedids, chans, dials, variables, cdrs, cdr_times)
        return self._project_outbound(spec, linkedids, chans, dials, variables, cdrs, cdr_times)

    def _agent_ext(self, name: str) -> str | None:
        match = self.agent_pattern.match(name)
        return match.group("ext") if match else None

    @staticmethod
    def _cause(chans: list[Channel]) -> tuple[int | None, str | None]:
        hung = [c for c in chans if c.hangup_at is not None and c.cause is not None]
        specific = [c for c in hung if c.cause not in (0, 16)]
        for group in (specific, [c for c in hung if c.cause == 16], hung):
            if group:
                chosen = sorted(group, key=lambda c: c.uniqueid)[0]
                return chosen.cause, chosen.cause_txt or None
        return None, None

    @staticmethod
    def _ended(spec: CallSpec, chans: list[Channel], extra_end: float | None) -> float | None:
        times: list[float] = []
        if chans and all(c.hangup_at is not None for c in chans):
            times = [c.hangup_at for c in chans if c.hangup_at is not None]
        if extra_end is not None:
            times.append(extra_end)
        if not times:
            if spec.forced_end is not None:
                return spec.forced_end[0]
            return None
        return max(times)

    @staticmethod
    def _billsec_from_cdrs(cdrs: list[dict[str, str]]) -> int | None:
        values = [_int(c.get("BillableSeconds")) for c in cdrs if c.get("Disposition") == "ANSWERED"]
        values = [v for v in values if v is not None]
        return max(values) if values else None

    def _project_outbound(self, spec: CallSpec, linkedids: list[str], chans: list[Channel], dials: list[Dial],
                          variables: dict[str, str], cdrs: list[dict[str, str]], cdr_times: list[float]) -> Projection:
        orig = self.originates.get(spec.action_id or "")
        agent_uids = {u for u in (spec.channel_id, spec.other_channel_id, orig.uniqueid if orig else None) if u}
        own = {c.uniqueid for c in chans}
        patient_dials = [d for d in dials if d.caller_uid is not None and d.caller_uid in own
                         and d.dest_uid not in agent_uids]
        agent_dials = [d for d in dials if d.caller_uid is None or d.dest_uid in agent_uids]
        failed = orig is not None and orig.response != "Success"
        ringing = [c.ringing_at for c in chans if c.ringing_at is not None]
        ringing += [d.ringing_at or d.begin_at for d in patient_dials if (d.ringing_at or d.begin_at) is not None]
        ringing += [d.ringing_at for d in agent_dials if d.ringing_at is not None]
        ringing_at = min(ringing) if ringing else None
        answered_times = [d.end_at for d in patient_dials if d.status == "ANSWER" and d.end_at is not None]
        answered_times += [self.group_answer_apps[lid] for lid in linkedids if lid in self.group_answer_apps]
        answered_cdr = any(c.get("Disposition") == "ANSWERED" and c.get("DestinationContext") in self.outbound_contexts
                           for c in cdrs)
        ended_at = self._ended(spec, chans, orig.at if failed else None)
        answered_at = min(answered_times) if answered_times else None
        patient_cdrs = [c for c in cdrs if c.get("DestinationChannel") in {d.dest_name for d in patient_dials}]
        billsec_cdr = self._billsec_from_cdrs(patient_cdrs) if patient_cdrs else self._billsec_from_cdrs(cdrs)
        if answered_at is None and answered_cdr and ended_at is not None:
            answered_at = ended_at - (billsec_cdr or 0)
        answered = answered_at is not None and not failed
        code, cause = self._cause(chans)
        disposition: str | None = None
        if ended_at is not None:
            if answered:
                disposition = "answered"
            elif failed and orig is not None:
                if orig.reason in ("0", "1", "") and spec.hangup_requested:
                    disposition = "cancelled"
                else:
                    disposition = REASON_DISPOSITION.get(orig.reason, "failed")
                if code is None or code == 0:
                    code, cause = REASON_CAUSE.get(orig.reason, (0, "Originate failed"))
            elif ended_dials := [d for d in patient_dials if d.status]:
                disposition = DIAL_DISPOSITION.get(sorted(d.status or "" for d in ended_dials)[0], "failed")
            elif spec.hangup_requested:
                disposition = "cancelled"
            elif code is not None and code in CAUSE_DISPOSITION:
                disposition = CAUSE_DISPOSITION[code]
            elif cdr_disp := sorted(CDR_DISPOSITION[c["Disposition"]] for c in cdrs
                                    if c.get("Disposition") in CDR_DISPOSITION):
                disposition = cdr_disp[0]
            else:
                disposition = "failed"
            if cause is None and spec.forced_end is not None:
                cause = spec.forced_end[1]
        billsec: int | None = None
        duration: int | None = None
        if ended_at is not None:
            duration = max(0, int(ended_at - spec.created_at))
            if disposition == "answered":
                billsec = billsec_cdr if billsec_cdr is not None else (
                    max(0, int(ended_at - answered_at)) if answered_at is not None else 0)
            else:
                billsec = 0
        state = "ended" if ended_at is not None else "answered" if answered else "ringing" if ringing_at else "dialing"
        agent_channel = None
        for c in chans:
            if c.uniqueid in agent_uids and c.name and c.hangup_at is None:
                agent_channel = c.name
                break
        if agent_channel is None and orig is not None and orig.response == "Success" and orig.channel:
            agent_channel = orig.channel
        return Projection(state=state, disposition=disposition, ringing_at=ringing_at,
                          answered_at=answered_at if answered else None, ended_at=ended_at, duration=duration,
                          billsec=billsec, hangup_code=code, hangup_cause=cause,
                          originate_reason=orig.reason if orig else None,
                          patient_id=_int(variables.get("PATIENT_ID")), agent_extension=None, number=None,
                          caller_name=None, linkedid=linkedids[0] if linkedids else None, agent_channel=agent_channel)

    def _project_inbound(self, spec: CallSpec, linkedids: list[str], chans: list[Channel], dials: list[Dial],
                         variables: dict[str, str], cdrs: list[dict[str, str]], cdr_times: list[float]) -> Projection:
        inbound = [c for c in chans if c.contexts & self.inbound_contexts]
        number = next((c.caller_num for c in sorted(inbound, key=lambda c: (c.seen_at, c.uniqueid)) if c.caller_num),
                      None)
        agent_dials = [d for d in dials if d.caller_uid is not None and self._agent_ext(d.dest_name)]
        answered_dials = sorted((d for d in agent_dials if d.status == "ANSWER" and d.end_at is not None),
                                key=lambda d: (d.end_at or 0.0, d.dest_uid))
        ringing_dials = sorted(agent_dials, key=lambda d: (d.begin_at or d.end_at or 0.0, d.dest_uid))
        chosen = answered_dials[0] if answered_dials else (ringing_dials[0] if ringing_dials else None)
        agent_ext = self._agent_ext(chosen.dest_name) if chosen else None
        ended_at = self._ended(spec, chans, None)
        answered_at = answered_dials[0].end_at if answered_dials else None
        agent_cdrs = [c for c in cdrs if any(c.get("DestinationChannel") == d.dest_name for d in answered_dials)]
        billsec_cdr = self._billsec_from_cdrs(agent_cdrs) if agent_cdrs else self._billsec_from_cdrs(cdrs)
        patient = _int(variables.get("PATIENT_ID"))
        if patient is None:
            patient = next((_int(c.get("PatientID")) for c in cdrs if _int(c.get("PatientID")) is not None), None)
        code, cause = self._cause(chans)
        disposition: str | None = None
        billsec: int | None = None
        duration: int | None = None
        if ended_at is not None:
            if answered_at is not None:
                disposition = "answered"
            elif statuses := sorted(d.status for d in agent_dials if d.status):
                disposition = DIAL_DISPOSITION.get(statuses[0], "no_answer")
            else:
                disposition = "no_answer"
            duration = max(0, int(ended_at - spec.created_at))
            if disposition == "answered":
                billsec = billsec_cdr if billsec_cdr is not None else max(0, int(ended_at - (answered_at or ended_at)))
            else:
                billsec = 0
            if cause is None and spec.forced_end is not None:
                cause = spec.forced_end[1]
        state = "ended" if ended_at is not None else "answered" if answered_at is not None else "ringing"
        caller_name = next((c.caller_name for c in sorted(inbound, key=lambda c: c.uniqueid) if c.caller_name), None)
        agent_channel = chosen.dest_name if chosen and answered_dials else None
        return Projection(state=state, disposition=disposition, ringing_at=spec.created_at, answered_at=answered_at,
                          ended_at=ended_at, duration=duration, billsec=billsec, hangup_code=code, hangup_cause=cause,
                          originate_reason=None, patient_id=patient, agent_extension=agent_ext, number=number,
                          caller_name=caller_name, linkedid=linkedids[0] if linkedids else None,
                          agent_channel=agent_channel)

    # ---- outages ------------------------------------------------------------------------------
    def open_calls(self) -> list[int]:
        return [cid for cid in self.calls if self.project(cid).state != "ended"]

    def force_end(self, call_id: int, at: float, why: str) -> None:
        spec = self.calls.get(call_id)
        if spec is not None and spec.forced_end is None:
            spec.forced_end = (at, why)

    def live_in(self, call_id: int, live_ids: set[str]) -> bool:
        spec = self.calls[call_id]
        ids = set(self.linkedids_of(call_id)) | {i for i in (spec.channel_id, spec.other_channel_id) if i}
        return bool(ids & live_ids)

    def reset_channels(self, live_ids: set[str], before: float) -> None:
        """After a reconnect: forget groups seen before `before` that belong to no open call and have no
        live channel (Asterisk may have restarted; their events will never come)."""
        keep = {lid for cid in self.open_calls() for lid in self.linkedids_of(cid)}
        for linkedid, uids in list(self.groups.items()):
            if linkedid in keep or linkedid in live_ids or uids & live_ids:
                continue
            if self.group_first_seen(linkedid) < before:
                self._drop_group(linkedid)
