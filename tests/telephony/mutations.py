"""What the AMI link may do to a recorded session without changing a single row: the bytes split across
TCP reads anywhere (even inside a header), FullyBooted arriving again mid-call (the link reconciles against
CoreShowChannels each time), and the link dropping and coming straight back mid-call (link lost, then a new
connection's CoreShowChannels and reconcile). Used by `test_calllog_rig` on a few traces and by
`scripts/trace_mutations.py` on every recorded one."""

from __future__ import annotations

import random
from typing import Any

from telephony.wire import StreamParser
from tests.telephony.conftest import LogHarness
from tests.telephony.traces import Trace

MUTATIONS = ("split", "booted_again", "reconnect")
SNAPSHOT = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
            "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid")


def messages_of(trace: Trace, base: float, rng: random.Random | None = None) -> list[tuple[dict[str, str], float]]:
    """The session's messages at their recorded times; with `rng`, every recorded read cut into pieces of
    1 to 1,500 bytes (a message then completes in a later piece of the same read)."""
    parser = StreamParser()
    out: list[tuple[dict[str, str], float]] = []
    for step in trace.steps:
        if step.direction != "recv":
            continue
        data, start = step.data, 0
        while start < len(data):
            size = len(data) if rng is None else rng.choice((1, 2, 3, 5, 17, 64, 1500))
            out.extend((m, base + step.t) for m in parser.feed(data[start:start + size]))
            start += size
    return out


def show_channels(messages: list[tuple[dict[str, str], float]], upto: int) -> tuple[set[str], list[dict[str, str]]]:
    """What CoreShowChannels answers at message `upto`: every channel begun and not hung up, as its last
    snapshot (uniqueids and Linkedids, and the CoreShowChannel events)."""
    snapshot: dict[str, dict[str, str]] = {}
    for ev, _ in messages[:upto]:
        uid = ev.get("Uniqueid")
        if not uid or not ev.get("Channel"):
            continue
        if ev.get("Event") == "Hangup":
            snapshot.pop(uid, None)
        elif ev.get("Event") == "Newchannel" or uid in snapshot:
            snapshot[uid] = {k: ev[k] for k in SNAPSHOT if k in ev}
    events = [{"Event": "CoreShowChannel", **fields} for fields in snapshot.values()]
    return {v for ev in events for v in (ev["Uniqueid"], ev.get("Linkedid")) if v}, events


def mid_call(messages: list[tuple[dict[str, str], float]], rng: random.Random) -> int:
    """A message index while some channel is up: between the first Newchannel and the last Hangup."""
    kinds = [ev.get("Event") for ev, _ in messages]
    first = kinds.index("Newchannel") if "Newchannel" in kinds else 0
    last = len(kinds) - 1 - kinds[::-1].index("Hangup") if "Hangup" in kinds else len(kinds)
    return rng.randint(first + 1, max(first + 1, last))


async def replay(h: LogHarness, trace: Trace, base: float, mutation: str | None = None, seed: int = 0) -> None:
    """Feed the session to the call log as the link would, with one mutation (None: as recorded)."""
    rng = random.Random(f"{trace.name}/{mutation}/{seed}")
    messages = messages_of(trace, base, rng if mutation == "split" else None)
    cut = mid_call(messages, rng) if mutation in ("booted_again", "reconnect") else len(messages)
    for ev, at in messages[:cut]:
        await h.log.handle(ev, at)
    if cut < len(messages):
        live, events = show_channels(messages, cut)
        at = messages[cut - 1][1]
        if mutation == "reconnect":
            h.log.link_lost(at)
        since = at if mutation == "reconnect" else messages[0][1]  # the connection's start
        await h.log.reconcile(live, since, events, at)
        for ev, at in messages[cut:]:
            await h.log.handle(ev, at)
    await h.bus.drain()


def summary(call: Any) -> dict[str, Any]:
    return {k: getattr(call, k) for k in ("direction", "origin", "state", "disposition", "number", "patient_id",
                                          "agent_extension", "ringing_at", "answered_at", "ended_at", "talk_seconds",
                                          "ring_seconds", "hangup_code", "hangup_cause", "legs", "linkedid")}
