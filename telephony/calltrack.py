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

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UNKNOWN = {"", "<unknown>", "unknown"}
WITHHELD = {"anonymous", "restricted", "withheld", "private", "unavailable"}
STATE_RINGING = "5"
# SoftHangupRequest `Cause` is the soft-hangup flag, not Q.850: 4 = AST_SOFTHANGUP_SHUTDOWN, which only
# `core stop|restart now` sends (ast_softhangup_all) to every channel it is about to hang up.
SOFTHANGUP_SHUTDOWN = "4"
SHUTDOWN_CAUSE = "Asterisk shut down (core stop/restart now)"
DIALPLAN_ENDS = frozenset({"Hangup", "Busy", "Congestion"})  # applications by which the PBX ends a call
STATE_UP = "6"
PAGE_ACTION_PREFIX = "clinicall-page-"  # the ActionID of audio.paging's Originates

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
# Q.850 causes that say the number or the network failed, not the person: Dial() still ends such a leg NOANSWER
# when the far end hangs up before answering (a carrier's announcement as early media, then cause 1)
UNREACHED_CAUSES = frozenset({1, 2, 3, 22, 27, 28, 34, 38, 41, 42, 47, 88, 127})


@dataclass
class Channel:
    uniqueid: str
    linkedid: str
    name: str = ""
    contexts: set[str] = field(default_factory=set)
    caller_num: str | None = None
    caller_name: str | None = None
    caller_name_at: float = 0.0
    withheld: bool = False  # presentation prohibited or anonymous at any time: no number is kept
    seen_at: float = 0.0
    ringing_at: float | None = None
    up_at: float | None = None
    hangup_at: float | None = None
    cause: int | None = None
    cause_txt: str = ""
    dialstatus: str | None = None  # CEL HANGUP extra (the Dial() this channel ran)
    dial_strings: list[str] = field(default_factory=list)  # CEL APP_START Dial data
    ended_by_dialplan: bool = False  # ran Hangup(), Busy() or Congestion(): the PBX ended it, not the caller
    on_ami: bool = False  # seen in an AMI channel event (not only in CEL records)
    dialled_out: bool = False  # reached by a Dial of an outside number (PJSIP/0901234567@vnpt): a trunk's channel
    shutdown_at: float | None = None  # Asterisk hung it up because it was shutting down (core stop/restart now)
    transferred: str | None = None  # "blind" / "attended": this party transferred the call (the phone's keys, AMI)

    @property
    def base(self) -> str:
        """The Local pair's common name (`Local/1001@agents-0000000a`), or the channel's own name."""
        return self.name[:-2] if self.name[-2:] in (";1", ";2") else self.name


@dataclass
class Dial:
    caller_uid: str | None
    dest_uid: str
    dest_name: str
    begin_at: float | None = None
    ringing_at: float | None = None
    end_at: float | None = None
    status: str | None = None
    dial_string: str = ""


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
    direction: str  # "outbound" | "inbound" | "internal"
    created_at: float
    action_id: str | None = None
    channel_id: str | None = None
    other_channel_id: str | None = None
    linkedid: str | None = None
    dial_string: str | None = None  # the Originate Channel, e.g. Local/1001@agents (links if no ChannelId came back)
    hangup_requested: bool = False
    forced_end: tuple[float, str] | None = None  # (when, why): no real end was recorded
    last_seen: float | None = None  # with forced_end: the last moment Asterisk was heard from before the outage
    forced_disposition: str = "interrupted"  # "failed" when Asterisk refused the Originate itself
    origin: str | None = None  # click_to_call | desk_phone | trunk | internal
    patient_id: int | None = None  # linked by an agent (the card made or picked during or after the call)
    auto: bool = False  # an automated call (reminder): the Originate's channel is the patient's phone


@dataclass
class Span:
    """One stay of a channel in a bridge."""

    uniqueid: str
    enter: float
    leave: float | None = None
    guessed: bool = False  # the exit came first: entered at the answer at the earliest, until its enter is seen


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
    direction: str = "outbound"
    origin: str | None = None
    talk_seconds: float | None = None
    ring_seconds: float | None = None
    legs: str = "[]"  # JSON, see telephony.projection.legs_json
    network_name: str | None = None  # the caller name as the network sent it (untrusted)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _first(current: float | None, at: float) -> float:
    return at if current is None or at < current else current


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except ValueError:
        return None


def _withheld(ev: dict[str, str], prefix: str) -> bool:
    pres = ev.get(prefix + "CID-CallingPres", "")
    num = (ev.get(prefix + "CallerIDNum") or ev.get(prefix + "CallerIDnum") or "").strip().lower()
    return "prohibited" in pres.lower() or "restricted" in pres.lower() or num in WITHHELD


def moved(transferee: str | None) -> bool:
    """An attended transfer moved someone: `core restart now` during the consultation ends it as a "Success"
    with both bridges empty and no transferee (AMI: no TransfereeChannel; CEL: transferee_channel_name N/A)."""
    return bool(transferee) and transferee != "N/A"


def _cel_extra(ev: dict[str, str]) -> dict[str, Any]:
    try:
        extra = json.loads(ev.get("Extra") or "{}")
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


OUTSIDE_NUMBER = re.compile(r"\+?[0-9]{7,}")  # longer than any extension: a phone number


def _outside(dial_string: str, ext: str | None) -> bool:
    """A Dial whose string names a phone number that is not the destination's own extension goes out through a
    trunk (`0901234567@vnpt`, `vnpt/0901234567`); a phone's contact (`1001/sip:1001@10.0.0.5:5060`) does not."""
    target = dial_string.split(";", 1)[0]  # a contact's URI parameters (`;rinstance=4d5c61234567ab`) name no number
    return ext is not None and any(n.lstrip("+") != ext for n in OUTSIDE_NUMBER.findall(target))


def agent_channel_pattern(template: str) -> re.Pattern[str]:
    """`Local/{ext}@agents` or `PJSIP/{ext}` -> a regex that finds `ext` in a real channel name."""
    escaped = re.escape(template).replace(re.escape("{ext}"), r"(?P<ext>[^@/;\-]+)")
    return re.compile(rf"^{escaped}-[0-9a-fA-F]+(;[12])?$")


class CallTracker:
    """Facts from AMI and CEL events, grouped by Linkedid, projected into call rows (telephony.projection)."""

    def __init__(self, *, inbound_contexts: set[str], outbound_contexts: set[str], agent_pattern: re.Pattern[str],
                 max_groups: int = 20000, internal_calls: bool = False, trunk_prefixes: tuple[str, ...] = ()) -> None:
        self.inbound_contexts = inbound_contexts
        self.trunk_prefixes = trunk_prefixes
        self.outbound_contexts = outbound_contexts
        self.agent_pattern = agent_pattern
        self.internal_calls = internal_calls
        self.max_groups = max_groups
        self.channels: dict[str, Channel] = {}
        self.names: dict[str, str] = {}  # channel name -> uniqueid (bridge and transfer events name channels)
        self.groups: OrderedDict[str, set[str]] = OrderedDict()  # linkedid -> uniqueids
        self.dials: dict[tuple[str | None, str], Dial] = {}
        self.group_dials: dict[str, set[tuple[str | None, str]]] = {}
        self.group_vars: dict[str, dict[str, str]] = {}
        self.group_answer_apps: dict[str, float] = {}  # linkedid -> first Answer() in an outbound context
        self.bridges: dict[str, list[Span]] = {}  # bridge id -> stays
        self.group_bridges: dict[str, set[str]] = {}
        self.joined: dict[str, set[str]] = {}  # linkedid -> other linkedids met in a bridge (transfers)
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
            chan = self.channels.pop(uid, None)
            if chan is not None and self.names.get(chan.name) == uid:
                del self.names[chan.name]
            self.cdrs.pop(uid, None)
            self.cdr_at.pop(uid, None)
            self.seen_originate_uids.pop(uid, None)
        for key in self.group_dials.pop(linkedid, set()):
            self.dials.pop(key, None)
        for bridge in self.group_bridges.pop(linkedid, set()):
            if not any(bridge in b for b in self.group_bridges.values()):
                self.bridges.pop(bridge, None)
        self.joined.pop(linkedid, None)
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

    def _caller_facts(self, chan: Channel, ev: dict[str, str], prefix: str, at: float) -> None:
        num = ev.get(prefix + "CallerIDNum") or ev.get(prefix + "CallerIDnum")
        if num and num not in UNKNOWN and chan.caller_num is None and num.lower() not in WITHHELD:
            chan.caller_num = num
        cname = ev.get(prefix + "CallerIDName") or ev.get(prefix + "CallerIDname")
        if cname and cname not in UNKNOWN and (chan.caller_name is None or at < chan.caller_name_at):
            chan.caller_name, chan.caller_name_at = cname, at
        if _withheld(ev, prefix):
            chan.withheld = True

    def _channel_facts(self, ev: dict[str, str], at: float, prefix: str = "", cel: bool = False) -> Channel | None:
        uid = ev.get(prefix + "Uniqueid") or ev.get(prefix + "UniqueID")
        if not uid or uid in UNKNOWN:
            return None
        chan = self._channel(uid, ev.get(prefix + "Linkedid") or ev.get(prefix + "LinkedID"), at)
        chan.on_ami = chan.on_ami or not cel
        name = ev.get(prefix + "Channel")
        if name and not chan.name:
            chan.name = name
            self.names.setdefault(name, uid)
        context = ev.get(prefix + "Context")
        if context:
            chan.contexts.add(context)
        self._caller_facts(chan, ev, prefix, at)
        state = ev.get(prefix + "ChannelState")
        if state == STATE_RINGING:
            chan.ringing_at = _first(chan.ringing_at, at)
        elif state == STATE_UP:
            chan.up_at = _first(chan.up_at, at)
        return chan

    def apply(self, ev: dict[str, str], at: float) -> set[int]:
        """Add the facts of one event; returns the ids of calls whose projection may have changed
        (groups that may have become a new call are found by `call_candidate`)."""
        kind = ev.get("Event")
        if kind is None:
            return set()
        handler = self._handlers().get(kind)
        if handler is not None:
            return handler(ev, at)
        return self._channel_event(kind, ev, at)

    def _handlers(self) -> dict[str, Callable[[dict[str, str], float], set[int]]]:
        return {"OriginateResponse": self._originate_response, "Cdr": self._cdr, "DialBegin": self._dial,
                "DialEnd": self._dial, "DialState": self._dial, "BridgeEnter": self._bridge_event,
                "BridgeLeave": self._bridge_event, "CEL": self._cel, "BlindTransfer": self._transfer,
                "AttendedTransfer": self._transfer}

    def _transfer(self, ev: dict[str, str], at: float) -> set[int]:
        """A transfer that succeeded, by the transferer's keys (blindxfer, atxfer) or by AMI: who transferred."""
        blind = ev["Event"] == "BlindTransfer"
        chan = self._channel_facts(ev, at, "Transferer" if blind else "OrigTransferer")
        if chan is None or ev.get("Result") != "Success" or not (blind or moved(ev.get("TransfereeChannel"))):
            return set()
        chan.transferred = chan.transferred or ("blind" if blind else "attended")
        return self._calls_for({chan.linkedid})

    def _originate_response(self, ev: dict[str, str], at: float) -> set[int]:
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

    def _cdr(self, ev: dict[str, str], at: float) -> set[int]:
        uid = ev.get("UniqueID") or ev.get("Uniqueid")
        if uid and uid not in self.cdrs:
            self.cdrs[uid] = ev
            self.cdr_at[uid] = at
        chan = self.channels.get(uid or "")
        return self._calls_for({chan.linkedid}) if chan else set()

    def _dial(self, ev: dict[str, str], at: float) -> set[int]:
        kind = ev["Event"]
        caller = self._channel_facts(ev, at)
        dest = self._channel_facts(ev, at, "Dest")
        if dest is None:
            return set()
        key = (caller.uniqueid if caller else None, dest.uniqueid)
        dial = self.dials.get(key)
        if dial is None:
            dial = Dial(key[0], dest.uniqueid, ev.get("DestChannel", ""), dial_string=ev.get("DialString", ""))
            self.dials[key] = dial
        touched: set[str] = set()
        for chan in (caller, dest):
            if chan is not None:
                self.group_dials.setdefault(chan.linkedid, set()).add(key)
                touched.add(chan.linkedid)
        if kind == "DialBegin":
            dial.begin_at = _first(dial.begin_at, at)
            dest.dialled_out = dest.dialled_out or _outside(ev.get("DialString", ""), self.agent_ext(dest.name))
        elif kind == "DialState" and ev.get("DialStatus") in ("RINGING", "PROGRESS"):
            dial.ringing_at = _first(dial.ringing_at, at)
        elif kind == "DialEnd" and dial.status is None and ev.get("DialStatus"):
            dial.status = ev["DialStatus"]
            dial.end_at = at
        return self._calls_for(touched)

    def _bridge_event(self, ev: dict[str, str], at: float) -> set[int]:
        chan = self._channel_facts(ev, at)
        bridge = ev.get("BridgeUniqueid")
        if chan is None or not bridge:
            return set()
        self._bridge_fact(chan, bridge, ev["Event"] == "BridgeEnter", at)
        return self._calls_for({chan.linkedid} | self._bridge_groups(bridge))

    def _bridge_fact(self, chan: Channel, bridge: str, enter: bool, at: float) -> None:
        spans = self.bridges.setdefault(bridge, [])
        self.group_bridges.setdefault(chan.linkedid, set()).add(bridge)
        mine = [s for s in spans if s.uniqueid == chan.uniqueid]
        if enter:
            guessed = [s for s in mine if s.guessed and s.leave is not None and at < s.leave]
            if guessed:  # the exit of this stay was seen first (events of different types interleaved)
                guessed[0].enter, guessed[0].guessed = at, False
            elif not any(abs(s.enter - at) < 0.001 or (s.leave is None and s.enter <= at) for s in mine):
                spans.append(Span(chan.uniqueid, at))
        else:  # the same exit seen twice (AMI BridgeLeave, CEL BRIDGE_EXIT) closes one stay once, at the
            # earlier time (an event read late under load arrives after Asterisk's own clock says)
            open_spans = [s for s in mine if s.leave is None and s.enter <= at]
            inside = [s for s in mine if s.leave is not None and s.enter <= at < s.leave]
            if open_spans:
                open_spans[-1].leave = at
            elif inside:
                inside[-1].leave = at
            elif not mine:  # the enter was missed: the stay began at the answer at the earliest
                spans.append(Span(chan.uniqueid, chan.up_at if chan.up_at is not None else chan.seen_at, at, True))
        groups = self._bridge_groups(bridge)
        for linkedid in groups:
            self.joined.setdefault(linkedid, set()).update(groups - {linkedid})

    def _bridge_groups(self, bridge: str) -> set[str]:
        return {self.channels[s.uniqueid].linkedid for s in self.bridges.get(bridge, ()) if s.uniqueid in self.channels}

    def _channel_event(self, kind: str, ev: dict[str, str], at: float) -> set[int]:
        chan = self._channel_facts(ev, at)
        if chan is None:
            return set()
        if kind == "Hangup":
            self._hangup(chan, at, _int(ev.get("Cause")), ev.get("Cause-txt", ""))
        elif kind == "VarSet":
            self._variable(chan, ev.get("Variable", ""), ev.get("Value", ""))
        elif kind == "Newchannel":
            self._link_by_dial_string(chan)
        elif kind == "Newexten" and ev.get("Application") in DIALPLAN_ENDS:
            chan.ended_by_dialplan = True
        elif kind == "SoftHangupRequest" and ev.get("Cause") == SOFTHANGUP_SHUTDOWN:
            chan.shutdown_at = _first(chan.shutdown_at, at)
        elif kind == "Newexten" and ev.get("Application") == "Answer" and ev.get("Context") in self.outbound_contexts:
            self.group_answer_apps[chan.linkedid] = _first(self.group_answer_apps.get(chan.linkedid), at)
        return self._calls_for({chan.linkedid})

    @staticmethod
    def _hangup(chan: Channel, at: float, cause: int | None, cause_txt: str) -> None:
        chan.hangup_at = _first(chan.hangup_at, at)
        if chan.cause is None and cause is not None:
            chan.cause = cause
            chan.cause_txt = cause_txt

    def _variable(self, chan: Channel, variable: str, value: str) -> None:
        if variable in ("PATIENT_ID", "CLINICALL_CALL_ID") and value:
            self.group_vars.setdefault(chan.linkedid, {}).setdefault(variable, value)
            if variable == "CLINICALL_CALL_ID":
                call_id = _int(value)
                if call_id in self.calls:
                    self._link(chan.linkedid, call_id)

    # ---- CEL (over AMI, or read back from Asterisk's database after an outage) -------------------
    def _cel(self, ev: dict[str, str], at: float) -> set[int]:
        chan = self._channel_facts({"Uniqueid": ev.get("UniqueID", ""), "Linkedid": ev.get("LinkedID", ""),
                                    "Channel": ev.get("Channel", ""), "Context": ev.get("Context", ""),
                                    "CallerIDNum": ev.get("CallerIDnum", ""),
                                    "CallerIDName": ev.get("CallerIDname", "")}, at, cel=True)
        if chan is None:
            return set()
        name = ev.get("EventName", "")
        touched = {chan.linkedid}
        if name == "ANSWER":
            chan.up_at = _first(chan.up_at, at)
        elif name == "HANGUP":
            extra = _cel_extra(ev)
            self._hangup(chan, at, _int(str(extra.get("hangupcause", ""))), "")
            chan.dialstatus = chan.dialstatus or (str(extra.get("dialstatus") or "") or None)
        elif name == "CHAN_END":
            self._hangup(chan, at, None, "")
        elif name in ("BRIDGE_ENTER", "BRIDGE_EXIT"):
            bridge = str(_cel_extra(ev).get("bridge_id") or "")
            if bridge:
                self._bridge_fact(chan, bridge, name == "BRIDGE_ENTER", at)
                touched |= self._bridge_groups(bridge)
        elif name == "APP_START":
            self._cel_app(chan, ev, at)
        elif name == "BLINDTRANSFER" or (name == "ATTENDEDTRANSFER"
                                          and moved(str(_cel_extra(ev).get("transferee_channel_name") or ""))):
            chan.transferred = chan.transferred or ("blind" if name == "BLINDTRANSFER" else "attended")
        return self._calls_for(touched)

    def _cel_app(self, chan: Channel, ev: dict[str, str], at: float) -> None:
        app = ev.get("Application", "")
        if app == "Dial" and ev.get("AppData"):
            chan.dial_strings.append(ev["AppData"].split(",")[0])
        elif app == "Answer" and ev.get("Context") in self.outbound_contexts:
            self.group_answer_apps[chan.linkedid] = _first(self.group_answer_apps.get(chan.linkedid), at)
        elif app in DIALPLAN_ENDS:
            chan.ended_by_dialplan = True
        elif app == "Set" and ev.get("AppData", "").startswith(("PATIENT_ID=", "CLINICALL_CALL_ID=")):
            variable, _, value = ev["AppData"].partition("=")
            self._variable(chan, variable, value)

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
            if call_id is None:
                call_id = next((c for other in self.joined.get(linkedid, ())
                                if (c := self._call_of_group(other)) is not None), None)
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

    # ---- new calls (not started by clinicall) ----------------------------------------------------
    def agent_ext(self, name: str) -> str | None:
        if self.trunk_prefixes and name.startswith(self.trunk_prefixes):
            return None  # PJSIP/trunk-0000001 also fits PJSIP/{ext}
        match = self.agent_pattern.match(name)
        return match.group("ext") if match else None

    def chan_ext(self, chan: Channel) -> str | None:
        """The agent's extension of a channel; a channel in an inbound context, or dialled with an outside
        number, is a trunk's, whatever its name (`PJSIP/viettel-0000001a` fits `PJSIP/{ext}` too)."""
        if chan.dialled_out or chan.contexts & self.inbound_contexts:
            return None
        return self.agent_ext(chan.name)

    def _dest_ext(self, dial: Dial) -> str | None:
        chan = self.channels.get(dial.dest_uid)
        return self.chan_ext(chan) if chan is not None else self.agent_ext(dial.dest_name)

    def origin_channel(self, linkedid: str) -> Channel | None:
        """Where the group started: the channel whose Uniqueid is the Linkedid, else the first seen."""
        chans = [self.channels[u] for u in self.groups.get(linkedid, ()) if u in self.channels]
        if not chans:
            return None
        return self.channels.get(linkedid) or min(chans, key=lambda c: (c.seen_at, c.uniqueid))

    def origin_side(self, linkedid: str) -> list[Channel]:
        """The origin channel and its Local twin (the other half of `Local/...;1` / `;2`)."""
        origin = self.origin_channel(linkedid)
        if origin is None:
            return []
        return [c for u in self.groups.get(linkedid, ()) if (c := self.channels.get(u)) is not None
                and (c is origin or (origin.base != origin.name and c.base == origin.base))]

    def classify(self, linkedid: str) -> str | None:
        """inbound / desk_phone / internal for a group that is no call yet, None while it cannot tell
        (or for internal calls when they are not logged)."""
        side = self.origin_side(linkedid)
        if not side:
            return None
        if any(self.chan_ext(c) for c in side):
            return self._agent_started(linkedid, side)
        if any(c.contexts & self.inbound_contexts for c in side):
            return "trunk"
        if self.trunk_prefixes and any(c.name.startswith(self.trunk_prefixes) for c in side):
            return "trunk"
        return "unknown" if self._unplaced_call_over(linkedid) else None

    def _unplaced_call_over(self, linkedid: str) -> bool:
        """A group the settings cannot place is logged as `unknown` once every channel of it has hung up
        (only then is it sure to be no part of another call); clinicall's own overhead pages are no call."""
        chans = [c for u in self.groups.get(linkedid, ()) if (c := self.channels.get(u)) is not None]
        if not chans or any(c.hangup_at is None for c in chans):
            return False
        return not self.seen_originate_uids.get(linkedid, "").startswith(PAGE_ACTION_PREFIX)

    def _agent_started(self, linkedid: str, side: list[Channel]) -> str | None:
        mine = {c.uniqueid for c in side}
        others = [c for u in self.groups.get(linkedid, ()) if (c := self.channels.get(u)) is not None
                  and c.uniqueid not in mine and c.name]
        dialled = [d for k in self.group_dials.get(linkedid, ()) if (d := self.dials.get(k)) and d.caller_uid in mine]
        if any(not self.chan_ext(c) for c in others) or any(not self._dest_ext(d) for d in dialled):
            return "desk_phone"
        if self.internal_calls and (others or dialled):
            return "internal"
        return None

    def call_candidate(self, linkedid: str) -> str | None:
        if linkedid in self.by_linkedid or self._call_of_group(linkedid) is not None or not self.groups.get(linkedid):
            return None
        if any(self._call_of_group(other) is not None for other in self.joined.get(linkedid, ())):
            return None
        return self.classify(linkedid)

    def group_first_seen(self, linkedid: str) -> float:
        return min((self.channels[u].seen_at for u in self.groups.get(linkedid, ()) if u in self.channels),
                   default=0.0)

    # ---- projection -----------------------------------------------------------------------------
    def linkedids_of(self, call_id: int) -> list[str]:
        spec = self.calls[call_id]
        ids = set(self.call_groups.get(call_id, ()))
        if spec.action_id and (orig := self.originates.get(spec.action_id)) and orig.uniqueid:
            chan = self.channels.get(orig.uniqueid)
            ids.add(chan.linkedid if chan else orig.uniqueid)
        for linkedid in list(ids):
            ids |= {j for j in self.joined.get(linkedid, ()) if self._call_of_group(j) in (None, call_id)}
        return sorted(ids)

    def project(self, call_id: int) -> Projection:
        from telephony.projection import project

        return project(self, self.calls[call_id])

    # ---- outages ------------------------------------------------------------------------------
    def open_calls(self) -> list[int]:
        return [cid for cid in self.calls if self.project(cid).state != "ended"]

    def force_end(self, call_id: int, at: float, why: str, last_seen: float | None = None) -> None:
        spec = self.calls.get(call_id)
        if spec is not None and spec.forced_end is None:
            spec.forced_end = (at, why)
            spec.last_seen = last_seen

    def live_in(self, call_id: int, live_ids: set[str]) -> bool:
        spec = self.calls[call_id]
        ids = set(self.linkedids_of(call_id)) | {i for i in (spec.channel_id, spec.other_channel_id) if i}
        return bool(ids & live_ids)

    def reset_channels(self, live_ids: set[str], before: float) -> None:
        """After a reconnect: forget groups seen before `before` that belong to no known call and have no
        live channel (Asterisk may have restarted; their events will never come). The facts of every
        call still followed are kept, finished or not: a finished call is projected from all of them."""
        keep = {lid for cid in self.calls for lid in self.linkedids_of(cid)}
        for linkedid, uids in list(self.groups.items()):
            if linkedid in keep or linkedid in live_ids or uids & live_ids:
                continue
            if self.group_first_seen(linkedid) < before:
                self._drop_group(linkedid)
