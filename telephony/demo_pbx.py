"""The demo PBX: an AMI peer on 127.0.0.1 that speaks AMI like the recorded Asterisk 22.10.1.

It is what `make run` talks to when no Asterisk is configured. It greets with
`Asterisk Call Manager/11.0.0`, answers Login (FullyBooted + SuccessfulAuth after it), Ping,
CoreShowChannels, Originate (Async: "successfully queued", then the call's events and an
OriginateResponse with the same ActionID), Hangup, MixMonitor, Logoff, and refuses the rest the way
Asterisk does. Event headers, their order, hex Local channel counters and ChannelId/OtherChannelId
follow the traces in the fixtures (click_to_call_answered_dial, *_busy, *_no_answer, inbound_call).

Demo behaviour of a click-to-call: the agent's phone (`Local/<ext>@agents`) rings briefly and answers,
then the patient leg is dialled (`Local/<number>@patient`):
  - a number ending in 0002 is busy, one ending in 0003 rings and never answers (no answer after
    `no_answer_seconds`), one ending in 0004 is unreachable (CHANUNAVAIL, failed);
  - any other number answers and talks for `talk_seconds`, then the patient hangs up.
An agent extension ending in 9 never picks up (OriginateResponse Failure Reason 3 at the Timeout,
capped at `no_answer_seconds`). Cdr events follow Asterisk's default `unanswered = no`: only legs
that were answered get one.

`inbound(number)` plays an inbound call like `inbound_call`: it runs the FastAGI script `identify`
against the service's FastAGI server (if enabled), sending the agi_* environment the way Asterisk
does (LF only) and answering its commands, then dials the agent (CLINICALL_AGENT_EXT set by the
script, else `default_agent_ext`), who answers after a short ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from telephony.wire import Header, first, parse_actions

log = logging.getLogger(__name__)
GREETING = b"Asterisk Call Manager/11.0.0\r\n"
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "User alerting, no answer",
             20: "Subscriber absent"}


def message(pairs: Iterable[tuple[str, Any]]) -> bytes:
    return ("".join(f"{k}: {'' if v is None else v}\r\n" for k, v in pairs) + "\r\n").encode()


@dataclass
class Chan:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    state: int = 0
    priority: int = 1
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    con_num: str = "<unknown>"
    con_name: str = "<unknown>"
    created: float = field(default_factory=time.time)
    answered: float | None = None
    hungup: bool = False
    variables: dict[str, str] = field(default_factory=dict)

    def block(self, prefix: str = "") -> list[tuple[str, Any]]:
        return [(f"{prefix}Channel", self.name), (f"{prefix}ChannelState", self.state),
                (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
                (f"{prefix}CallerIDNum", self.cid_num), (f"{prefix}CallerIDName", self.cid_name),
                (f"{prefix}ConnectedLineNum", self.con_num), (f"{prefix}ConnectedLineName", self.con_name),
                (f"{prefix}Language", "en"), (f"{prefix}AccountCode", ""), (f"{prefix}Context", self.context),
                (f"{prefix}Exten", self.exten), (f"{prefix}Priority", self.priority),
                (f"{prefix}Uniqueid", self.uniqueid), (f"{prefix}Linkedid", self.linkedid)]


class Session:
    def __init__(self, pbx: DemoPbx, writer: asyncio.StreamWriter) -> None:
        self.pbx = pbx
        self.writer = writer
        self.authenticated = False

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


class DemoPbx:
    def __init__(self, *, username: str = "clinicall", secret: str = "demo", agi_host: str | None = None,
                 agi_port: int | None = None, default_agent_ext: str = "1001", time_scale: float = 1.0,
                 talk_seconds: float = 6.0, ring_seconds: float = 1.5, no_answer_seconds: float = 12.0,
                 playback_contexts: tuple[str, ...] = ("clinicall-reminder",), inbound_scripts: tuple[str, ...] = ("identify",),
                 inbound_keys: str = "0") -> None:
        self.username, self.secret = username, secret
        self.agi_host, self.agi_port = agi_host, agi_port
        self.default_agent_ext = default_agent_ext
        self.time_scale = time_scale
        self.talk_seconds, self.ring_seconds, self.no_answer_seconds = talk_seconds, ring_seconds, no_answer_seconds
        self.playback_contexts = playback_contexts  # automated calls: see telephony.demo_playback
        self.inbound_scripts = inbound_scripts  # FastAGI scripts an inbound call runs, in order
        self.inbound_keys = inbound_keys  # what an inbound caller presses when a script reads a key
        self.played: list[str] = []  # sound files streamed to callers (tests)
        self.dialled: dict[str, int] = {}  # automated calls per dialled number
        self.sessions: list[Session] = []
        self.channels: dict[str, Chan] = {}
        self.hangup_requests: dict[str, asyncio.Event] = {}  # linkedid -> set when a Hangup action targets it
        self.server: asyncio.Server | None = None
        self.port = 0
        self.received: list[list[Header]] = []
        self.on_action: Any = None  # optional callable(action, perf_counter()) for measurements
        self._local_counter = itertools.count()
        self._uid_counter = itertools.count(1)
        self._boot = time.time()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- server -----------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for session in self.sessions:
            session.writer.close()
        self.channels.clear()  # a stopped PBX has no channels (start() again: a restarted Asterisk)
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, writer)
        self.sessions.append(session)
        writer.write(GREETING)
        buffer = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buffer += chunk
                while True:
                    match = re.search(rb"\r?\n\r?\n", buffer)
                    if match is None:
                        break
                    raw, buffer = buffer[:match.end()], buffer[match.end():]
                    arrived = time.perf_counter()
                    for action in parse_actions(raw):
                        self.received.append(action)
                        if self.on_action is not None:
                            self.on_action(action, arrived)
                        if await self._handle(session, action) == "close":
                            return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if session in self.sessions:
                self.sessions.remove(session)
            writer.close()

    def _scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(self._scaled(seconds))

    def broadcast(self, event: str, pairs: Iterable[tuple[str, Any]], privilege: str = "call,all") -> None:
        data = message([("Event", event), ("Privilege", privilege), *pairs])
        for session in self.sessions:
            if session.authenticated:
                session.send(data)

    # ---- actions ----------------------------------------------------------------------------------
    async def _handle(self, session: Session, action: list[Header]) -> str | None:
        name = (first(action, "Action") or "").strip()
        action_id = first(action, "ActionID")
        head = [("ActionID", action_id)] if action_id is not None else []
        if not name:
            session.send(message([("Response", "Error"), *head, ("Message", "Missing action in request")]))
            return None
        lname = name.lower()
        if lname == "login":
            return await self._login(session, action, head)
        if not session.authenticated:
            session.send(message([("Response", "Error"), *head, ("Message", "Permission denied")]))
            return None
        if lname == "ping":
            session.send(message([("Response", "Success"), *head, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")]))
        elif lname == "logoff":
            session.send(message([("Response", "Goodbye"), *head, ("Message", "Thanks for all the fish.")]))
            await session.writer.drain()
            return "close"
        elif lname == "coreshowchannels":
            self._core_show_channels(session, head)
        elif lname == "originate":
            self._originate(session, action, head)
        elif lname == "hangup":
            self._hangup(session, action, head)
        elif lname in ("mixmonitor", "events"):
            session.send(message([("Response", "Success"), *head]))
        else:
            session.send(message([("Response", "Error"), *head, (
                "Message", f"Invalid/unknown command: {name}. Use Action: ListCommands to show available commands.")]))
        return None

    async def _login(self, session: Session, action: list[Header], head: list[tuple[str, Any]]) -> str | None:
        if session.authenticated:
            session.send(message([("Response", "Success"), *head, ("Message", "Already authenticated")]))
            return None
        if first(action, "Username") != self.username or first(action, "Secret") != self.secret:
            await asyncio.sleep(1.0 * min(self.time_scale, 1.0))
            session.send(message([("Response", "Error"), *head, ("Message", "Authentication failed")]))
            await session.writer.drain()
            return "close"
        session.authenticated = True
        uptime = int(time.time() - self._boot)
        session.send(message([("Response", "Success"), *head, ("Message", "Authentication accepted")]))
        session.send(message([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", uptime),
                              ("LastReload", uptime), ("Status", "Fully Booted")]))
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
        session.send(message([("Event", "SuccessfulAuth"), ("Privilege", "security,all"), ("EventTV", now),
                              ("Severity", "Informational"), ("Service", "AMI"), ("EventVersion", 1),
                              ("AccountID", self.username), ("SessionID", f"0x{id(session):x}"),
                              ("LocalAddress", f"IPV4/TCP/127.0.0.1/{self.port}"),
                              ("RemoteAddress", "IPV4/TCP/127.0.0.1/0"), ("UsingPassword", 0), ("SessionTV", now)]))
        return None

    def _core_show_channels(self, session: Session, head: list[tuple[str, Any]]) -> None:
        live = [c for c in self.channels.values() if not c.hungup]
        session.send(message([("Response", "Success"), *head, ("EventList", "start"),
                              ("Message", "Channels will follow")]))
        for chan in live:
            duration = int(time.time() - chan.created)
            session.send(message([("Event", "CoreShowChannel"), *head, *chan.block(), ("Application", ""),
                                  ("ApplicationData", ""), ("Duration", time.strftime("%H:%M:%S", time.gmtime(duration))),
                                  ("BridgeId", "")]))
        session.send(message([("Event", "CoreShowChannelsComplete"), *head, ("EventList", "Complete"),
                              ("ListItems", len(live))]))

    def _hangup(self, session: Session, action: list[Header], head: list[tuple[str, Any]]) -> None:
        target = first(action, "Channel") or ""
        chan = self.channels.get(target) or next(
            (c for c in self.channels.values() if c.name == target), None)
        if chan is None or chan.hungup:
            session.send(message([("Response", "Error"), *head, ("Message", "No such channel")]))
            return
        session.send(message([("Response", "Success"), *head, ("Message", "Channel Hungup")]))
        event = self.hangup_requests.get(chan.linkedid)
        if event is not None:
            event.set()

    def _originate(self, session: Session, action: list[Header], head: list[tuple[str, Any]]) -> None:
        channel = first(action, "Channel")
        if not channel:
            session.send(message([("Response", "Error"), *head, ("Message", "Channel not specified")]))
            return
        if first(action, "Exten") and not (first(action, "Context") and first(action, "Priority")):
            session.send(message([("Response", "Error"), *head,
                                  ("Message", "Originate with 'Exten' requires 'Context' and 'Priority'")]))
            return
        if (first(action, "Async") or "").lower() not in ("true", "yes", "1", "on"):
            session.send(message([("Response", "Error"), *head, ("Message", "Originate failed")]))
            return
        session.send(message([("Response", "Success"), *head, ("Message", "Originate successfully queued")]))
        if (first(action, "Context") or "") in self.playback_contexts:
            from telephony.demo_playback import automated_call

            self._spawn(automated_call(self, action), f"demo-auto-{first(action, 'ActionID')}")
            return
        self._spawn(self._click_to_call(action), f"demo-originate-{first(action, 'ActionID')}")

    # ---- channels -----------------------------------------------------------------------------------
    def _uid(self) -> str:
        return f"{int(self._boot)}.{next(self._uid_counter)}"

    def _local_pair(self, dest: str, context: str, exten: str, linkedid: str | None,
                    uid1: str | None = None, uid2: str | None = None) -> tuple[Chan, Chan]:
        counter = next(self._local_counter)
        base = f"Local/{dest}-{counter:08x}"
        u1 = uid1 or self._uid()
        u2 = uid2 or self._uid()
        link = linkedid or u1
        one = Chan(f"{base};1", u1, link, context, exten, state=0)
        two = Chan(f"{base};2", u2, link, context, exten, state=4)
        self.channels[u1] = one
        self.channels[u2] = two
        self.broadcast("Newchannel", one.block())
        self.broadcast("Newchannel", two.block())
        return one, two

    def _newexten(self, chan: Chan, app: str, data: str) -> None:
        self.broadcast("Newexten", [*chan.block(), ("Extension", chan.exten), ("Application", app),
                                    ("AppData", data)], "dialplan,all")
        chan.priority += 1

    def _varset(self, chan: Chan, name: str, value: str) -> None:
        chan.variables[name] = value
        self.broadcast("VarSet", [*chan.block(), ("Variable", name), ("Value", value)], "dialplan,all")

    def _callerid(self, chan: Chan, num: str, name: str) -> None:
        chan.cid_num, chan.cid_name = num, name
        self.broadcast("NewCallerid", [*chan.block(), ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])

    def _state(self, chan: Chan, state: int) -> None:
        chan.state = state
        if state == 6 and chan.answered is None:
            chan.answered = time.time()
        self.broadcast("Newstate", chan.block())

    def _dial(self, kind: str, caller: Chan | None, dest: Chan, extra: list[tuple[str, Any]]) -> None:
        self.broadcast(kind, [*(caller.block() if caller else []), *dest.block("Dest"), *extra])

    def _hangup_chan(self, chan: Chan, cause: int) -> None:
        if chan.hungup:
            return
        chan.hungup = True
        self.broadcast("Hangup", [*chan.block(), ("Cause", cause), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))])

    def _cdr(self, chan: Chan, source: str, destination: str, dest_context: str, dest_channel: str,
             last_app: str, patient_id: str = "", answered_by: Chan | None = None) -> None:
        """One Cdr per party A; with a party B (Dial) the answer time is when B answered, as in Asterisk."""
        end = time.time()
        answered = answered_by.answered if answered_by is not None else chan.answered
        fmt = "%Y-%m-%d %H:%M:%S"
        self.broadcast("Cdr", [
            ("AccountCode", ""), ("Source", source), ("Destination", destination), ("DestinationContext", dest_context),
            ("CallerID", f'"{chan.cid_name if chan.cid_name != "<unknown>" else ""}" <{source}>'),
            ("Channel", chan.name), ("DestinationChannel", dest_channel), ("LastApplication", last_app),
            ("LastData", ""), ("StartTime", time.strftime(fmt, time.gmtime(chan.created))),
            ("AnswerTime", time.strftime(fmt, time.gmtime(answered)) if answered else ""),
            ("EndTime", time.strftime(fmt, time.gmtime(end))), ("Duration", int(end - chan.created)),
            ("BillableSeconds", int(end - answered) if answered else 0),
            ("Disposition", "ANSWERED" if answered else "NO ANSWER"), ("AMAFlags", "DOCUMENTATION"),
            ("UniqueID", chan.uniqueid), ("UserField", ""), ("PatientID", patient_id)], "cdr,all")

    async def _wait_or_hangup(self, linkedid: str, seconds: float) -> bool:
        """Sleep; True when a Hangup action arrived for this call meanwhile."""
        event = self.hangup_requests[linkedid]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), self._scaled(seconds))
        return event.is_set()

    # ---- click-to-call ------------------------------------------------------------------------------
    async def _click_to_call(self, action: list[Header]) -> None:
        action_id = first(action, "ActionID") or ""
        dial = first(action, "Channel") or ""
        context = first(action, "Context") or "outbound"
        exten = first(action, "Exten") or ""
        caller = re.match(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>', first(action, "CallerID") or "")
        cid_name, cid_num = (caller.group(1), caller.group(2)) if caller else ("", first(action, "CallerID") or "")
        variables = [v.split("=", 1) for v in (val for k, val in action if k.lower() == "variable") if "=" in v]
        timeout = float(first(action, "Timeout") or 30000) / 1000
        orig_head = [("ActionID", action_id)]
        match = re.match(r"^Local/([^@]+)@(.+)$", dial)

        def failure(reason: int) -> None:
            self.broadcast("OriginateResponse", [*orig_head, ("Response", "Failure"), ("Channel", dial),
                                                 ("Context", context), ("Exten", exten), ("Reason", reason),
                                                 ("Uniqueid", "<unknown>"), ("CallerIDNum", cid_num or "<unknown>"),
                                                 ("CallerIDName", cid_name or "<unknown>")])

        if match is None:
            failure(0)  # like PJSIP/... on the recorded Asterisk: no such channel driver here
            return
        agent_ext, agent_ctx = match.group(1), match.group(2)
        one, two = self._local_pair(f"{agent_ext}@{agent_ctx}", agent_ctx, agent_ext, None,
                                    first(action, "ChannelId"), first(action, "OtherChannelId"))
        linkedid = one.linkedid
        self.hangup_requests[linkedid] = asyncio.Event()
        try:
            self._newexten(one, "AppDial2", "(Outgoing Line)")
            for name, value in variables:
                self._varset(one, name, value)
            one.con_num, one.con_name = cid_num, cid_name
            self._callerid(one, cid_num, cid_name)
            for name, value in variables:
                self._varset(two, name, value)
            two.con_num, two.con_name = cid_num, cid_name
            self._callerid(two, cid_num, cid_name)
            self._dial("DialBegin", None, one, [("DialString", f"{agent_ext}@{agent_ctx}")])
            self._newexten(two, "NoOp", f"agent {agent_ext} picks up")
            self._dial("DialState", None, one, [("DialStatus", "RINGING")])
            self._state(one, 5)
            never = agent_ext.endswith("9")
            wait = min(timeout, self.no_answer_seconds) if never else self.ring_seconds
            if await self._wait_or_hangup(linkedid, wait) or never:
                cancelled = self.hangup_requests[linkedid].is_set()
                self._dial("DialEnd", None, one, [("DialStatus", "NOANSWER" if never and not cancelled else "CANCEL")])
                cause = 16 if cancelled else 19
                self._hangup_chan(one, cause)
                self._hangup_chan(two, cause)
                failure(0 if cancelled else 3)
                return
            self._newexten(two, "Answer", "")
            self._state(two, 6)
            self._state(one, 6)
            self._dial("DialEnd", None, one, [("DialStatus", "ANSWER")])
            one.context, one.exten, one.priority = context, exten, 1
            self.broadcast("OriginateResponse", [*orig_head, ("Response", "Success"), ("Channel", one.name),
                                                 ("Context", context), ("Exten", exten), ("Reason", 4),
                                                 ("Uniqueid", one.uniqueid), ("CallerIDNum", cid_num),
                                                 ("CallerIDName", cid_name)])
            patient_var = dict(variables).get("PATIENT_ID", "")
            await self._patient_leg(one, two, exten, patient_var)
        finally:
            self.hangup_requests.pop(linkedid, None)

    async def _patient_leg(self, one: Chan, two: Chan, exten: str, patient_id: str) -> None:
        linkedid = one.linkedid
        self._newexten(one, "NoOp", f"calling patient {exten} PATIENT_ID={patient_id}")
        self._newexten(one, "ExecIf", f"{1 if patient_id else 0}?Set(CDR(PATIENT_ID)={patient_id})")
        self._newexten(one, "Dial", f"Local/{exten}@patient,30")
        p1, p2 = self._local_pair(f"{exten}@patient", "patient", exten, linkedid)
        self._dial("DialBegin", one, p1, [("DialString", f"{exten}@patient")])
        outcome = "busy" if exten.endswith("0002") else "noanswer" if exten.endswith("0003") else (
            "unavailable" if exten.endswith("0004") else "answer")
        if outcome == "unavailable":
            self._dial("DialEnd", one, p1, [("DialStatus", "CHANUNAVAIL")])
            for chan, cause in ((p2, 20), (p1, 20), (one, 20), (two, 16)):
                self._hangup_chan(chan, cause)
            self._cdr(two, one.cid_num, two.exten, "agents", "", "Wait")
            return
        self._dial("DialState", one, p1, [("DialStatus", "RINGING")])
        self._state(p1, 5)
        cancelled = await self._wait_or_hangup(
            linkedid, 1.0 if outcome == "busy" else self.no_answer_seconds if outcome == "noanswer" else 2.0)
        if cancelled or outcome in ("busy", "noanswer"):
            status, cause = ("CANCEL", 16) if cancelled else ("BUSY", 17) if outcome == "busy" else ("NOANSWER", 19)
            if outcome == "busy" and not cancelled:
                self._state(p2, 7)
            self._dial("DialEnd", one, p1, [("DialStatus", status)])
            for chan in (p2, p1):
                self._hangup_chan(chan, 16 if status == "NOANSWER" else cause)
            self.broadcast("HangupRequest", [*one.block(), ("Cause", cause)])
            self._hangup_chan(one, cause)
            self._hangup_chan(two, 16)
            self._cdr(two, one.cid_num, two.exten, "agents", "", "Wait")
            return
        self._state(p2, 6)
        self._state(p1, 6)
        self._dial("DialEnd", one, p1, [("DialStatus", "ANSWER")])
        await self._wait_or_hangup(linkedid, self.talk_seconds)
        for chan in (p2, p1, one, two):
            self._hangup_chan(chan, 16)
        self._cdr(p2, one.cid_num, exten, "patient", "", "Wait")
        self._cdr(two, one.cid_num, two.exten, "agents", "", "Wait")
        self._cdr(one, one.cid_num, exten, "outbound", p1.name, "Dial", patient_id, answered_by=p1)

    # ---- inbound -------------------------------------------------------------------------------------
    async def inbound(self, number: str) -> dict[str, Any]:
        one, two = self._local_pair("s@inbound", "inbound", "s", None)
        self.hangup_requests[one.linkedid] = asyncio.Event()
        self._spawn(self._inbound_call(one, two, number), f"demo-inbound-{one.linkedid}")
        return {"call_uniqueid": two.uniqueid, "linkedid": one.linkedid, "number": number, "channel": two.name}

    async def _inbound_call(self, one: Chan, two: Chan, number: str) -> None:
        linkedid = one.linkedid
        try:
            self._newexten(one, "AppDial2", "(Outgoing Line)")
            num = number or "<unknown>"
            for chan in (one, two):
                self._callerid(chan, num, "<unknown>")
            self._newexten(two, "NoOp", f'inbound call from "" <{number}>')
            for script in self.inbound_scripts:
                agi_request = f"agi://{self.agi_host}:{self.agi_port}/{script}"
                self._newexten(two, "AGI", agi_request)
                status = await self._run_fastagi(two, number, agi_request, script) if self.agi_host and self.agi_port \
                    else "FAILURE"
                self._varset(two, "AGISTATUS", status)
            patient = two.variables.get("PATIENT_ID", "")
            self._newexten(two, "ExecIf", f"{1 if patient else 0}?Set(CDR(PATIENT_ID)={patient})")
            agent_ext = two.variables.get("CLINICALL_AGENT_EXT") or self.default_agent_ext
            self._newexten(two, "Dial", f"Local/{agent_ext}@agents,20")
            a1, a2 = self._local_pair(f"{agent_ext}@agents", "agents", agent_ext, linkedid)
            for chan in (a1, a2):
                self._callerid(chan, two.cid_num, two.cid_name)
            self._dial("DialBegin", two, a1, [("DialString", f"{agent_ext}@agents")])
            self._dial("DialState", two, a1, [("DialStatus", "RINGING")])
            self._state(a1, 5)
            if await self._wait_or_hangup(linkedid, self.ring_seconds * 2):
                self._dial("DialEnd", two, a1, [("DialStatus", "CANCEL")])
                for chan in (a2, a1, two, one):
                    self._hangup_chan(chan, 16)
                return
            self._newexten(a2, "Answer", "")
            self._state(a2, 6)
            self._state(a1, 6)
            self._dial("DialEnd", two, a1, [("DialStatus", "ANSWER")])
            self._state(two, 6)
            self._state(one, 6)
            await self._wait_or_hangup(linkedid, self.talk_seconds)
            for chan in (a2, a1, two, one):
                self._hangup_chan(chan, 16)
            self._cdr(a2, two.cid_num if two.cid_num != "<unknown>" else "", agent_ext, "agents", "", "Hangup")
            self._cdr(two, number, "s", "inbound", a1.name, "Dial", patient, answered_by=a1)
            self._cdr(one, number, "s", "inbound", "", "Wait")
        finally:
            self.hangup_requests.pop(linkedid, None)

    def agi_environment(self, chan: Chan, number: str, request: str, script: str = "identify") -> bytes:
        """The agi_* block exactly as Asterisk 22 sends it (LF only, blank line at the end)."""
        pairs = [("agi_network", "yes"), ("agi_network_script", script), ("agi_request", request),
                 ("agi_channel", chan.name), ("agi_language", "en"), ("agi_type", "Local"),
                 ("agi_uniqueid", chan.uniqueid), ("agi_version", "22.10.1"),
                 ("agi_callerid", number or "unknown"), ("agi_calleridname", "unknown"), ("agi_callingpres", "0"),
                 ("agi_callingani2", "0"), ("agi_callington", "0"), ("agi_callingtns", "0"), ("agi_dnid", "unknown"),
                 ("agi_rdnis", "unknown"), ("agi_context", chan.context), ("agi_extension", chan.exten),
                 ("agi_priority", str(chan.priority - 1)), ("agi_enhanced", "0.0"), ("agi_accountcode", ""),
                 ("agi_threadid", str(id(chan)))]
        return ("".join(f"{k}: {v}\n" for k, v in pairs) + "\n").encode()

    async def _run_fastagi(self, chan: Chan, number: str, request: str, script: str = "identify",
                           keys: str | None = None) -> str:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.agi_host, self.agi_port), 3)
        except (TimeoutError, OSError):
            log.warning("demo PBX: Connecting to '%s:%s' failed: Connection refused", self.agi_host, self.agi_port)
            return "FAILURE"
        try:
            writer.write(self.agi_environment(chan, number, request, script))
            pressed = list(self.inbound_keys if keys is None else keys)
            await writer.drain()
            command_id = itertools.count(1)
            while True:
                # Asterisk waits for a script's next command as long as the call lasts; a loaded machine may
                # take seconds to render the sounds (the demo still gives up on a script that hangs)
                line = await asyncio.wait_for(reader.readline(), 60)
                if not line:
                    break
                command = line.decode("utf-8", "replace").strip()
                if not command:
                    continue
                cid = next(command_id)
                self.broadcast("AGIExecStart", [*chan.block(), ("Command", command), ("CommandId", cid)], "agi,all")
                reply = self._agi_reply(chan, command, number, pressed)
                writer.write(reply.encode() + b"\n")
                await writer.drain()
                self.broadcast("AGIExecEnd", [*chan.block(), ("Command", command), ("CommandId", cid),
                                              ("ResultCode", reply[:3]), ("Result", "Success")], "agi,all")
        except (TimeoutError, OSError, ConnectionError):
            pass
        finally:
            writer.close()
        return "SUCCESS"

    def _agi_reply(self, chan: Chan, command: str, number: str, pressed: list[str] | None = None) -> str:
        """Replies as Asterisk would; the caller presses the keys in `pressed` (first one first) while a
        sound plays or when a digit is awaited."""
        from telephony.demo_playback import key_reply

        keyed = key_reply(self, command, pressed if pressed is not None else [])
        if keyed is not None:
            return keyed
        get = re.match(r"^GET (?:FULL )?VARIABLE\s+(\S+)", command, re.I)
        if get:
            name = get.group(1)
            value = number if name.upper() == "CALLERID(NUM)" else chan.variables.get(name, "")
            return f"200 result=1 ({value})"
        put = re.match(r'^SET VARIABLE\s+(\S+)\s+"?(.*?)"?$', command, re.I)
        if put:
            name, value = put.group(1), put.group(2)
            if name.upper() == "CALLERID(NAME)":
                self._callerid(chan, chan.cid_num, value)
            else:
                self._varset(chan, name, value)
            return "200 result=1"
        if command.upper().startswith(("VERBOSE", "NOOP", "ANSWER")):
            return "200 result=1"
        return "510 Invalid or unknown command"
