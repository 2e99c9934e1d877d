"""The call journal: every call event clinicall receives (AMI events, CEL records read from Asterisk's
database, and clinicall's own decisions) stored once, append-only, before anything is projected.

Each event gets a stable key (sha256 of what identifies it), so the same event twice, an event
replayed after a reconnect, and a CEL record read both over AMI and from Asterisk's database are
stored once. A value longer than MAX_VALUE is stored truncated and the row says so; an event that
cannot be an event (no Event header, too many headers) is stored as `set_aside` and never projected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import sqlite

from clinicall.db import Database
from telephony.models import PAYLOAD_LEN, CallEvent

log = logging.getLogger(__name__)
MAX_VALUE = 512
MAX_HEADERS = 80
MAX_KIND = 40
MAX_LINKEDID = 80
SET_ASIDE = "set_aside"
# Headers that differ between two sightings of one event: never part of its key.
VOLATILE = frozenset({"Privilege", "Duration", "BridgedDuration", "SequenceNumber"})
CORE_SHOW_VOLATILE = VOLATILE | {"ActionID"}
# What identifies a CEL record, the same over AMI (Event: CEL) and read back from Asterisk's database.
CEL_KEY = ("EventName", "UniqueID", "LinkedID", "Application", "Peer")
# One statement for a whole batch, each column one array parameter (no per-row encoding in the driver).
PG_APPEND = text(
    "INSERT INTO call_events (key, source, kind, linkedid, at, received_at, payload, problem) "
    "SELECT r.key, r.source, r.kind, r.linkedid, to_timestamp(r.at), to_timestamp(r.received_at), r.payload, "
    "r.problem FROM unnest(CAST(:key AS varchar[]), CAST(:source AS varchar[]), CAST(:kind AS varchar[]), "
    "CAST(:linkedid AS varchar[]), CAST(:at AS float8[]), CAST(:received_at AS float8[]), "
    "CAST(:payload AS varchar[]), CAST(:problem AS varchar[])) "
    "AS r(key, source, kind, linkedid, at, received_at, payload, problem) "
    "ON CONFLICT (key) DO NOTHING RETURNING key")


# Not call events: no channel, or dialplan bookkeeping. They are not journaled.
NOT_CALL_EVENTS = frozenset({"DeviceStateChange", "PeerStatus", "ContactStatus", "Registry", "RTCPSent",
                             "RTCPReceived", "SuccessfulAuth", "ChallengeSent", "InvalidPassword", "FullyBooted",
                             "Shutdown", "CoreShowChannelsComplete", "NewConnectedLine", "LocalBridge",
                             "AGIExecStart", "AGIExecEnd", "HangupRequest"})
KEPT_VARIABLES = frozenset({"PATIENT_ID", "CLINICALL_CALL_ID", "CLINICALL_AGENT_EXT", "CLINICALL_AGENT_DIAL",
                            "DIALSTATUS", "AGISTATUS", "BLINDTRANSFER", "ATTENDEDTRANSFER", "TRANSFERERNAME"})
KEPT_APPS = frozenset({"Answer", "Dial", "Queue", "AGI", "Transfer", "BlindTransfer", "Hangup", "Busy",
                       "Congestion", "Originate", "Stasis"})


def is_call_event(ev: Any) -> bool:
    """Whether a received message belongs in the journal (malformed ones do: they are set aside there)."""
    if not isinstance(ev, dict):
        return True
    kind = ev.get("Event")
    if kind is None:
        return "Response" not in ev  # an action's reply is not an event
    if kind in NOT_CALL_EVENTS:
        return False
    if kind == "VarSet":
        return ev.get("Variable", "") in KEPT_VARIABLES
    if kind == "SoftHangupRequest":  # only Asterisk shutting down (flag 4) says something about the call
        return ev.get("Cause") == "4"
    if kind == "Newexten":
        return ev.get("Application", "") in KEPT_APPS
    return True


@dataclass
class Entry:
    key: str
    source: str
    kind: str
    linkedid: str | None
    at: float
    received: float
    event: dict[str, str]
    problem: str | None = None
    id: int | None = None  # its row's id, once read back from the journal

    @property
    def projectable(self) -> bool:
        return self.problem is None or not self.problem.startswith(SET_ASIDE)


def cel_time(value: str | None) -> float | None:
    """CEL EventTimestamp / EventTime: `1700000000.123456` or `YYYY-MM-DD HH:MM:SS[.ffffff][+zz:zz]`
    (no zone means UTC: run Asterisk in UTC or read EventTimestamp)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def event_time(ev: dict[str, str], received: float, live: bool = True) -> float:
    """Asterisk's own time of the event (Timestamp with timestampevents=yes; CEL EventTimestamp), else the
    arrival time. A CEL record received live over AMI has only whole seconds (EventTime): its arrival
    time is closer; one read back from the database is placed at its EventTimestamp (or EventTime)."""
    if ev.get("Event") == "CEL":
        at = cel_time(ev.get("EventTimestamp")) or (None if live else cel_time(ev.get("EventTime")))
        if at is not None:
            return at
    stamp = ev.get("Timestamp")
    if stamp and "Event" in ev:
        try:
            return float(stamp)
        except ValueError:
            pass
    return received


def cel_second(ev: dict[str, str], at: float) -> str:
    """The CEL record's time to the second as Asterisk wrote it: the same over AMI (EventTime, in
    Asterisk's zone) and from its database (telephony.cel_source gives the same EventTime)."""
    text = (ev.get("EventTime") or "").strip()
    return text[:19] if "-" in text else str(int(at))


def _digest(parts: Iterable[tuple[str, str]]) -> str:
    text = "\n".join(map("\t".join, parts))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def event_key(ev: dict[str, str], at: float) -> str:
    if ev.get("Event") == "CEL":
        return _digest([("Event", "CEL"), ("at", cel_second(ev, at))] + [(k, ev.get(k, "")) for k in CEL_KEY])
    skip = CORE_SHOW_VOLATILE if ev.get("Event") == "CoreShowChannel" else VOLATILE
    text = "\n".join([f"{k}\t{v}" for k, v in sorted(ev.items()) if k not in skip])
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _clean(ev: Any) -> tuple[dict[str, str], str | None]:
    if isinstance(ev, dict) and ev.get("Event") and len(ev) <= MAX_HEADERS and max(
            map(len, ev.values()), default=0) <= MAX_VALUE and all(map(str.__instancecheck__, ev.values())):
        return ev, None
    if not isinstance(ev, dict):
        return {}, f"{SET_ASIDE}: not a set of headers"
    out: dict[str, str] = {}
    cut: list[str] = []
    for name, value in list(ev.items())[:MAX_HEADERS]:
        text = value if isinstance(value, str) else str(value)
        key = str(name)[:MAX_VALUE]
        if len(text) > MAX_VALUE:
            cut.append(key[:40])
            text = text[:MAX_VALUE]
        out[key] = text
    if len(ev) > MAX_HEADERS:
        return out, f"{SET_ASIDE}: {len(ev)} headers (at most {MAX_HEADERS})"
    if not out.get("Event"):
        return out, f"{SET_ASIDE}: no Event header"
    if cut:
        return out, ("truncated: " + ", ".join(cut))[:200]
    return out, None


def entry(ev: Any, received: float, source: str = "ami") -> Entry:
    """One received event -> its journal entry (the key is computed on the event as received)."""
    cleaned, problem = _clean(ev)
    at = round(event_time(cleaned, received, live=source != "cel"), 6)  # what the database keeps
    received = round(received, 6)
    if problem is not None and problem.startswith(SET_ASIDE):
        key = _digest([("set_aside", repr(sorted(cleaned.items()))), ("received", repr(received))])
    elif cleaned is ev:
        key = event_key(ev, at)
    else:
        key = event_key({str(k): v if isinstance(v, str) else str(v) for k, v in ev.items()}, at)
    kind = cleaned.get("EventName") if cleaned.get("Event") == "CEL" else cleaned.get("Event", "")
    # an Originate's own Dial events have no caller channel: their call is the dialled channel's (DestLinkedid),
    # so that a call followed again from the journal (a restart, a late event) keeps the agent's leg
    linkedid = cleaned.get("Linkedid") or cleaned.get("LinkedID") or cleaned.get("DestLinkedid") or (
        cleaned.get("ActionID") if cleaned.get("Event") == "OriginateResponse" else None)
    return Entry(key=key, source="cel" if cleaned.get("Event") == "CEL" else source, kind=(kind or "?")[:MAX_KIND],
                 linkedid=linkedid[:MAX_LINKEDID] if linkedid else None, at=at, received=received, event=cleaned,
                 problem=problem)


def own_entry(kind: str, at: float, **fields: Any) -> Entry:
    """clinicall's own decision about a call (interrupted, hangup asked, patient linked), journaled too."""
    ev = {"Event": kind, **{k: str(v) for k, v in fields.items() if v is not None}}
    return Entry(key=_digest(sorted(ev.items()) + [("at", repr(at))]), source="clinicall", kind=kind[:MAX_KIND],
                 linkedid=None, at=at, received=at, event=ev)


def _payload(event: dict[str, str]) -> str:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    while len(text) > PAYLOAD_LEN and event:
        longest = max(event, key=lambda k: len(event[k]))
        event = {**event, longest: event[longest][: len(event[longest]) // 2]}
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return text


def _to_dt(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


async def append(db: Database, entries: Sequence[Entry]) -> list[Entry]:
    """Store the entries not stored yet (one transaction); returns the new ones, in order."""
    unique: dict[str, Entry] = {}
    for item in entries:
        unique.setdefault(item.key, item)
    if not unique:
        return []
    new_keys: set[str] = set()
    async with db.engine.begin() as s:
        if db.is_postgres:  # one statement, one round trip for the whole batch
            items = list(unique.values())
            columns = {"key": [e.key for e in items], "source": [e.source for e in items],
                       "kind": [e.kind for e in items], "linkedid": [e.linkedid for e in items],
                       "at": [e.at for e in items], "received_at": [e.received for e in items],
                       "payload": [_payload(e.event) for e in items], "problem": [e.problem for e in items]}
            new_keys.update((await s.scalars(PG_APPEND, columns)).all())
        else:
            rows = [{"key": e.key, "source": e.source, "kind": e.kind, "linkedid": e.linkedid, "at": _to_dt(e.at),
                     "received_at": _to_dt(e.received), "payload": _payload(e.event), "problem": e.problem}
                    for e in unique.values()]
            stmt = sqlite.insert(CallEvent).on_conflict_do_nothing(index_elements=["key"]).returning(CallEvent.key)
            new_keys.update((await s.scalars(stmt, rows)).all())
    for item in unique.values():
        if item.key in new_keys and item.problem:
            log.warning("call event %s (%s): %s", item.kind, item.linkedid, item.problem)
    return [e for e in unique.values() if e.key in new_keys]


COLUMNS = (CallEvent.id, CallEvent.key, CallEvent.source, CallEvent.kind, CallEvent.linkedid, CallEvent.at,
           CallEvent.received_at, CallEvent.payload, CallEvent.problem)


def _from_row(row: Any) -> Entry:
    return Entry(key=row.key, source=row.source, kind=row.kind, linkedid=row.linkedid, at=row.at.timestamp(),
                 received=row.received_at.timestamp(), event=json.loads(row.payload), problem=row.problem, id=row.id)


async def chunks(db: Database, *, since: float | None = None, linkedids: set[str] | None = None,
                 batch: int = 5000) -> AsyncIterator[list[Entry]]:
    """Journal entries in the order they were stored, `batch` at a time (one query each): all, those at
    or after `since`, and/or those of some Linkedids."""
    last = 0
    while True:
        query = select(*COLUMNS).where(CallEvent.id > last).order_by(CallEvent.id).limit(batch)
        if since is not None:
            query = query.where(CallEvent.at >= _to_dt(since))
        if linkedids is not None:
            query = query.where(CallEvent.linkedid.in_(sorted(linkedids)))
        async with db.read_engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        if rows:
            yield [_from_row(r) for r in rows]
        if len(rows) < batch:
            return
        last = rows[-1].id


async def read(db: Database, *, since: float | None = None, linkedids: set[str] | None = None) -> list[Entry]:
    """Every entry `chunks` gives, as one list."""
    return [item async for chunk in chunks(db, since=since, linkedids=linkedids) for item in chunk]


async def linkedids_after(db: Database, after_id: int, linkedids: set[str]) -> set[str]:
    """Which of the Linkedids have entries stored after the entry `after_id`."""
    ordered = sorted(linkedids)
    found: set[str] = set()
    async with db.session() as s:
        for start in range(0, len(ordered), 500):  # by the Linkedid index (an id range would scan the journal)
            rows = (await s.execute(select(CallEvent.linkedid, func.max(CallEvent.id)).where(
                CallEvent.linkedid.in_(ordered[start:start + 500])).group_by(CallEvent.linkedid))).all()
            found.update(linkedid for linkedid, last in rows if last > after_id)
    return found


async def last_event_time(db: Database) -> float | None:
    async with db.session() as s:
        value = await s.scalar(select(CallEvent.at).where(CallEvent.source != "clinicall")
                               .order_by(CallEvent.at.desc()).limit(1))
    return value.timestamp() if value is not None else None
