"""The call log: every call event is stored in the journal first (telephony.journal), then fed to the
state machine (calltrack); the `calls` rows and the `call.updated` events follow its projection.
Only a change of a call's projection touches a row, so a finished call changes only when new
events of that same call arrive."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
import unicodedata
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import or_, select, text
from sqlalchemy.dialects import postgresql, sqlite

from clinicall.auth import service as auth_service
from clinicall.db import Database
from clinicall.settings import TelephonySettings
from telephony import journal
from telephony.calltrack import CallSpec, CallTracker, Projection, agent_channel_pattern
from telephony.events import CALL_UPDATED, call_updated
from telephony.journal import Entry
from telephony.models import (
    AUTO_ORIGINS,
    CAUSE_LEN,
    DIRECTION_OF,
    LEGS_LEN,
    NAME_LEN,
    NUMBER_LEN,
    OWN_ORIGINS,
    Call,
    Installation,
)

log = logging.getLogger(__name__)
PERSISTED = ("state", "disposition", "ringing_at", "answered_at", "ended_at", "duration", "billsec",
             "hangup_code", "hangup_cause", "originate_reason", "linkedid", "agent_channel", "talk_seconds",
             "ring_seconds", "legs", "origin")
GROUP_PERSISTED = ("number", "number_raw", "network_name", "agent_extension", "agent_id", "direction")
TIMES = ("ringing_at", "answered_at", "ended_at")
BOUNDS = {"hangup_cause": CAUSE_LEN, "linkedid": 80, "agent_channel": 120, "legs": LEGS_LEN, "number": NUMBER_LEN,
          "number_raw": NUMBER_LEN, "network_name": 80, "agent_extension": 40, "caller_name": NAME_LEN,
          "originate_reason": 8}
PG_TYPES = {"ringing_at": "timestamptz", "answered_at": "timestamptz", "ended_at": "timestamptz",
            "duration": "int", "billsec": "int", "hangup_code": "int", "talk_seconds": "float8",
            "ring_seconds": "float8", "agent_id": "int", "patient_id": "int"}
PG_COLUMNS = tuple((name, PG_TYPES.get(name, "varchar")) for name in PERSISTED + GROUP_PERSISTED
                   + ("caller_name", "patient_id"))


def _pg_update() -> Any:
    """Rows of click-to-call keep their group columns (number, agent...); patient_id only ever gets set."""
    sets = [f"{n} = r.{n}" for n in PERSISTED]
    sets += [f"{n} = CASE WHEN r.grp THEN r.{n} ELSE c.{n} END" for n in GROUP_PERSISTED + ("caller_name",)]
    casts = ", ".join(["CAST(:id AS int[])", "CAST(:grp AS bool[])"]
                      + [f"CAST(:{n} AS {kind}[])" for n, kind in PG_COLUMNS])
    names = ", ".join(["id", "grp"] + [n for n, _ in PG_COLUMNS])
    return text(f"UPDATE calls AS c SET {', '.join(sets)}, patient_id = COALESCE(r.patient_id, c.patient_id), "  # noqa: S608
                f"updated_at = now() FROM unnest({casts}) AS r({names}) WHERE c.id = r.id RETURNING "
                + ", ".join(f"c.{column.name}" for column in Call.__table__.columns)).columns(*Call.__table__.columns)


PG_UPDATE = _pg_update()
CEL_CATCH_UP = 5.0  # seconds a reconcile reads CEL again for calls whose end is not there yet
RECHECK_INTERRUPTED = 86400.0  # interrupted calls younger than this are upgraded by the CEL records found later
INTERRUPTED = "ClinicallInterrupted"
HANGUP_ASKED = "ClinicallHangupRequested"
PATIENT_LINKED = "ClinicallPatientLinked"
REFUSED = "ClinicallOriginateRefused"


class CelSource(Protocol):
    """Asterisk's CEL records from its database (cel_pgsql / cel_sqlite3_custom), shaped like AMI
    `Event: CEL` messages (telephony.cel_source)."""

    async def read(self, *, since: dt.datetime | None, linkedids: set[str]) -> list[dict[str, str]]: ...


def to_dt(epoch: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch is not None else None


def to_epoch(value: dt.datetime) -> float:
    return value.timestamp()


event_time = journal.event_time


def untrusted_text(value: str | None, limit: int) -> str | None:
    """A caller name from the network: control and format characters removed, length bounded."""
    if not value:
        return None
    text = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C").strip()
    return text[:limit] or None


def bounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v[:BOUNDS[k]] if isinstance(v, str) and k in BOUNDS else v for k, v in values.items()}


def make_tracker(settings: TelephonySettings) -> CallTracker:
    return CallTracker(inbound_contexts=set(settings.inbound_contexts),
                       outbound_contexts={settings.outbound_context},
                       agent_pattern=agent_channel_pattern(settings.agent_channel),
                       internal_calls=settings.log_internal_calls,
                       trunk_prefixes=tuple(p for p in settings.trunk_channels if p))


def cel_source_for(settings: TelephonySettings) -> CelSource | None:
    """The reader of Asterisk's CEL database named by telephony.cel_database, if any."""
    target = getattr(settings, "cel_database", "")
    if not target:
        return None
    from telephony.cel_source import CelSource as DatabaseCelSource

    return DatabaseCelSource(target)


def spec_of(call: Call) -> CallSpec:
    own = call.origin in (None, "click_to_call") and call.direction == "outbound" and bool(
        call.action_id or call.channel_id or call.dial_string)
    return CallSpec(call_id=call.id, direction=call.direction, created_at=to_epoch(call.created_at),
                    action_id=call.action_id, channel_id=call.channel_id,
                    other_channel_id=f"{call.channel_id}-2" if call.channel_id else None,
                    linkedid=call.linkedid, dial_string=call.dial_string, hangup_requested=call.hangup_requested,
                    origin="click_to_call" if own else call.origin, auto=call.origin in AUTO_ORIGINS)


class CallLog:
    def __init__(self, db: Database, bus: Any, settings: TelephonySettings, *, region: str = "VN",
                 cel_source: CelSource | None = None) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.region = region
        self.cel_source = cel_source
        self.tracker = make_tracker(settings)
        self._written: dict[int, dict[str, Any]] = {}
        self._extension_users: dict[str, int | None] = {}
        self._patient_names: dict[int, str | None] = {}
        self._numbers: dict[str, str | None] = {}  # raw caller id -> E.164
        self.events_seen = 0
        self.problems = 0  # events stored truncated or set aside
        self.last_event_at: float | None = None
        self.outage_since: float | None = None  # the last event seen before the link went down
        self.heard_until: float | None = None  # the last message of any kind before the link went down
        self.keep_ended = True  # False while rebuilding: nothing is retired
        self._installation: str | None = None
        self._recheck: set[int] = set()  # interrupted calls whose CEL records are read again
        self.cel_catch_up = CEL_CATCH_UP
        self.cel_error: str | None = None  # why the last read of the CEL database failed
        self.cel_owed = False  # a recovery could not read the CEL database: read again until it answers
        self.cel_owed_since: float | None = None  # and from when (the earliest outage not read yet)

    # ---- calls we start ---------------------------------------------------------------------------
    async def installation(self) -> str:
        """This database's tag (telephony_installation), part of every ChannelId/ActionID we send."""
        if self._installation is None:  # drawn once, at the first start on this database
            dialect = postgresql if self.db.is_postgres else sqlite
            async with self.db.transaction() as s:
                await s.execute(dialect.insert(Installation).values(id=1, tag=secrets.token_hex(4))
                                .on_conflict_do_nothing(index_elements=["id"]))
                self._installation = await s.scalar(select(Installation.tag).where(Installation.id == 1))
        assert self._installation is not None
        return self._installation

    def register(self, call: Call) -> None:
        self.tracker.register(spec_of(call))
        self._written[call.id] = self._row_values(call)

    @staticmethod
    def _row_values(call: Call) -> dict[str, Any]:
        names = PERSISTED + (GROUP_PERSISTED + ("patient_id", "caller_name") if call.origin not in OWN_ORIGINS
                             else ())
        return {name: getattr(call, name) for name in names}

    async def load_open_calls(self) -> int:
        """At start-up: calls in progress when the service stopped are followed again, with every fact
        the journal holds about them (so a kill -9 loses nothing that was received)."""
        await self.installation()
        async with self.db.session() as s:
            rows = (await s.scalars(select(Call).where(Call.state != "ended"))).all()
        for call in rows:
            self.register(call)
        keys = {k for call in rows for k in (call.linkedid, call.channel_id, call.action_id, f"call-{call.id}") if k}
        if keys:
            await self._replay(await journal.read(self.db, linkedids=keys))
            await self._refresh({call.id for call in rows})  # journaled but not yet projected at the stop
        self.outage_since = await journal.last_event_time(self.db)
        return len(rows)

    async def take_over(self) -> int:
        """This instance now holds the Asterisk link: follow the open calls afresh from the journal
        (the previous holder followed them; what it missed is read back from CEL after FullyBooted)."""
        self.tracker = make_tracker(self.settings)
        self._written.clear()
        return await self.load_open_calls()

    async def _replay(self, entries: list[Entry]) -> None:
        for item in entries:
            self._apply(item)

    async def hangup_requested(self, call_id: int) -> None:
        async with self.db.transaction() as s:
            call = await s.get(Call, call_id)
            if call is not None:
                call.hangup_requested = True
        await self._own(HANGUP_ASKED, call_id)

    async def link_patient(self, call_id: int, patient_id: int) -> None:
        """An agent made or picked the caller's card: the call is the patient's from now on (journaled)."""
        await self._own(PATIENT_LINKED, call_id, PatientId=patient_id)

    async def _own(self, kind: str, call_id: int, **fields: Any) -> None:
        spec = self.tracker.calls.get(call_id)
        if spec is None:
            await self._follow_again(call_id)
            spec = self.tracker.calls.get(call_id)
        linkedid = (spec.linkedid or spec.channel_id) if spec else None
        item = journal.own_entry(kind, time.time(), CallId=call_id, **fields)
        item.linkedid = linkedid or f"call-{call_id}"
        await self._store_and_project([item])

    async def _follow_again(self, call_id: int) -> None:
        """A call no longer in memory (ended long ago) gets its facts back from the journal."""
        async with self.db.session() as s:
            call = await s.get(Call, call_id)
        if call is None:
            return
        self.register(call)
        keys = {k for k in (call.linkedid, call.channel_id, call.action_id, f"call-{call.id}") if k}
        await self._replay(await journal.read(self.db, linkedids=keys))

    # ---- events -----------------------------------------------------------------------------------
    async def handle(self, ev: dict[str, str], received: float | None = None) -> None:
        await self.handle_batch([(ev, time.time() if received is None else received)])

    async def handle_batch(self, events: Sequence[tuple[dict[str, str], float]], source: str = "ami") -> None:
        """Store the events in the journal (one transaction), then project the ones not seen before."""
        entries = [journal.entry(ev, received, source) for ev, received in events if journal.is_call_event(ev)]
        self.events_seen += len(entries)
        await self._store_and_project(entries)

    async def handle_many(self, events: list[tuple[dict[str, str], float]]) -> None:
        await self.handle_batch(events)

    async def _store_and_project(self, entries: list[Entry]) -> None:
        new = await journal.append(self.db, entries)
        self.problems += sum(1 for e in new if e.problem)
        touched = await self.project_entries(new)
        if touched:
            await self._refresh(touched)

    async def project_entries(self, entries: Sequence[Entry]) -> set[int]:
        """Apply entries in order; groups that became calls get their rows (one query, one insert)."""
        touched: set[int] = set()
        pending: dict[str, str] = {}
        for item in entries:
            if item.source != "clinicall":
                self.last_event_at = max(self.last_event_at or item.at, item.at)
            touched |= self._apply(item)
            self._candidates(item, pending)
        if pending:
            touched |= await self._group_calls(pending)
        return touched

    def _apply(self, item: Entry) -> set[int]:
        if not item.projectable:
            return set()
        if item.source == "clinicall":
            return self._apply_own(item)
        return self.tracker.apply(item.event, item.at)

    def _apply_own(self, item: Entry) -> set[int]:
        call_id = int(item.event.get("CallId", "0") or 0)
        spec = self.tracker.calls.get(call_id)
        if spec is None:
            return set()
        if item.kind == HANGUP_ASKED:
            spec.hangup_requested = True
        elif item.kind == PATIENT_LINKED:
            spec.patient_id = int(item.event["PatientId"])
        elif item.kind in (INTERRUPTED, REFUSED):
            last_seen = journal.cel_time(item.event.get("LastSeen"))
            self.tracker.force_end(call_id, item.at, item.event.get("Reason", "")[:CAUSE_LEN], last_seen)
            spec.forced_disposition = "failed" if item.kind == REFUSED else "interrupted"
        return {call_id}

    def _candidates(self, item: Entry, pending: dict[str, str]) -> None:
        """Groups of channels clinicall did not start that have become a call (inbound, desk phone, internal)."""
        if not item.projectable or item.source == "clinicall":
            return
        for key in ("Linkedid", "LinkedID", "DestLinkedid"):
            linkedid = item.event.get(key)
            if linkedid and linkedid not in pending and (origin := self.tracker.call_candidate(linkedid)):
                pending[linkedid] = origin

    async def _group_calls(self, pending: dict[str, str]) -> set[int]:
        ids = sorted(pending)
        known: dict[str, int] = {}
        async with self.db.read_engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                # action_id (indexed) is the ChannelId of every call clinicall starts
                rows = (await conn.execute(select(Call.id, Call.linkedid, Call.channel_id).where(
                    or_(Call.linkedid.in_(chunk), Call.action_id.in_(chunk))).order_by(Call.id))).all()
                for call_id, linkedid, channel_id in rows:
                    for key in (linkedid, channel_id):
                        if key in pending:
                            known.setdefault(key, call_id)
        for call_id in sorted(set(known.values())):  # calls retired from memory: facts back from the journal
            if call_id not in self.tracker.calls:
                await self._follow_again(call_id)
        new = {lid: origin for lid, origin in pending.items() if lid not in known}
        return set(known.values()) | (await self._create_group_calls(new) if new else set())

    async def _create_group_calls(self, new: dict[str, str]) -> set[int]:
        rows: list[dict[str, Any]] = []
        for linkedid, origin in new.items():
            created = to_dt(self.tracker.group_first_seen(linkedid) or time.time())
            rows.append({"direction": DIRECTION_OF.get(origin, "outbound"),
                         "origin": origin, "state": "ringing", "linkedid": linkedid[:80], "created_at": created,
                         "ringing_at": created if origin in ("trunk", "unknown") else None})
        dialect = postgresql if self.db.is_postgres else sqlite
        async with self.db.engine.begin() as conn:
            # calls.linkedid is unique: an instance overlapping this one on the AMI link (a takeover) may have
            # made the row since this one looked; then that row is the call's
            made = dict((await conn.execute(dialect.insert(Call).values(rows).on_conflict_do_nothing(
                index_elements=["linkedid"]).returning(Call.linkedid, Call.id))).all())
            taken = [row["linkedid"] for row in rows if row["linkedid"] not in made]
            others = dict((await conn.execute(select(Call.linkedid, Call.id).where(Call.linkedid.in_(taken)))).all()) if taken else {}
        for (linkedid, origin), row in zip(new.items(), rows, strict=True):
            if row["linkedid"] in made:
                call_id = made[row["linkedid"]]
                self.tracker.register(CallSpec(call_id=call_id, direction=row["direction"], linkedid=linkedid,
                                               created_at=to_epoch(row["created_at"]), origin=origin))
                self._written[call_id] = {}
                log.info("%s call %s (Linkedid %s)", origin, call_id, linkedid)
            elif row["linkedid"] in others:
                await self._follow_again(others[row["linkedid"]])
        return set(made.values()) | set(others.values())

    # ---- rows ---------------------------------------------------------------------------------------
    async def _agent_id(self, extension: str | None) -> int | None:
        if not extension:
            return None
        if extension not in self._extension_users:
            user = await auth_service.user_by_extension(self.db, extension)
            self._extension_users[extension] = user.id if user else None
        return self._extension_users[extension]

    async def _patient_name(self, patient_id: int | None) -> str | None:
        if patient_id is None:
            return None
        if patient_id not in self._patient_names:
            from crm_bridge.service import patient_brief

            brief = await patient_brief(self.db, patient_id)
            self._patient_names[patient_id] = brief.full_name if brief else None
        return self._patient_names[patient_id]

    async def values_of(self, call_id: int) -> dict[str, Any]:
        """The row's projected columns (bounded to their columns)."""
        spec = self.tracker.calls[call_id]
        projection = self.tracker.project(call_id)
        values = {name: getattr(projection, name) for name in PERSISTED}
        for name in TIMES:
            values[name] = to_dt(values[name])
        if spec.origin not in OWN_ORIGINS:  # a call we started: its patient is the one we called
            values.update(await self._group_values(projection))
            if projection.patient_id is not None:
                values["patient_id"] = projection.patient_id
        return bounded(values)

    async def _group_values(self, projection: Projection) -> dict[str, Any]:
        from crm_bridge.service import normalise_phone

        raw = projection.number
        if raw and raw not in self._numbers:
            if len(self._numbers) > 10000:
                self._numbers.clear()
            self._numbers[raw] = normalise_phone(raw, self.region)
        return {"number": self._numbers[raw] if raw else None, "number_raw": untrusted_text(raw, NUMBER_LEN),
                "network_name": untrusted_text(projection.network_name, 80),
                "caller_name": await self._patient_name(projection.patient_id),
                "agent_extension": projection.agent_extension,
                "agent_id": await self._agent_id(projection.agent_extension),
                "direction": projection.direction}

    async def _refresh(self, call_ids: set[int], publish: bool = True) -> int:
        return await self.write_values({call_id: await self.values_of(call_id) for call_id in sorted(call_ids)
                                        if call_id in self.tracker.calls}, publish)

    async def write_values(self, projected: dict[int, dict[str, Any]], publish: bool = True) -> int:
        """Write the rows whose projected values differ from what was written; returns how many."""
        changes: dict[int, dict[str, Any]] = {}
        for call_id, values in projected.items():
            written = self._written.get(call_id, {})
            if any(name not in written or written[name] != value for name, value in values.items()):
                changes[call_id] = values
        if not changes:
            return 0
        publish = publish and self.bus is not None
        await self._keep_linkedids_unique(changes)
        payloads = await self._write(changes, publish)
        for call_id, values in changes.items():
            self._written[call_id] = {**self._written.get(call_id, {}), **values}
            if values["state"] == "ended" and self.keep_ended:
                self._retire(call_id)
        for payload in payloads:
            await self.bus.publish(CALL_UPDATED, payload)
        return len(changes)

    async def _keep_linkedids_unique(self, changes: dict[int, dict[str, Any]]) -> None:
        """A row never takes a Linkedid another row holds (calls.linkedid is unique): one made for the group
        before this call claimed it (a recovery reading CEL rows of a call clinicall had not linked yet) keeps
        it, and this row keeps its own; nothing else of either row changes."""
        wanted = {values["linkedid"]: call_id for call_id, values in changes.items() if values.get("linkedid")
                  and self._written.get(call_id, {}).get("linkedid") != values["linkedid"]}
        if not wanted:
            return
        async with self.db.read_engine.connect() as conn:
            held = (await conn.execute(select(Call.id, Call.linkedid).where(Call.linkedid.in_(sorted(wanted))))).all()
        for other, linkedid in held:
            call_id = wanted[linkedid]
            if other != call_id:
                log.warning("call %s keeps its Linkedid: %s is call %s's", call_id, linkedid, other)
                changes[call_id] = {**changes[call_id], "linkedid": self._written.get(call_id, {}).get("linkedid")}

    async def _write(self, changes: dict[int, dict[str, Any]], payloads: bool) -> list[dict[str, Any]]:
        """The changed rows written in one transaction; their `call.updated` payloads when asked."""
        if self.db.is_postgres:
            return await self._write_postgres(changes, payloads)
        async with self.db.transaction() as s:
            rows = {c.id: c for c in (await s.scalars(select(Call).where(Call.id.in_(sorted(changes))))).all()}
            for call_id, values in changes.items():
                call = rows.get(call_id)
                if call is None:
                    self.tracker.forget(call_id)
                    continue
                for name, value in values.items():
                    setattr(call, name, value)
            await s.flush()
            return [call_updated(rows[c]) for c in changes if c in rows] if payloads else []

    async def _write_postgres(self, changes: dict[int, dict[str, Any]], payloads: bool) -> list[dict[str, Any]]:
        """One UPDATE for every changed row (each column one array), the rows back for the bus."""
        ids = sorted(changes)
        params: dict[str, list[Any]] = {"id": ids, "grp": [GROUP_PERSISTED[0] in changes[i] for i in ids]}
        for name, _ in PG_COLUMNS:
            params[name] = [changes[i].get(name) for i in ids]
        async with self.db.engine.begin() as conn:
            rows = {r.id: r for r in (await conn.execute(PG_UPDATE, params)).all()}
        for call_id in ids:
            if call_id not in rows:
                self.tracker.forget(call_id)
        return [call_updated(Call(**rows[c]._mapping)) for c in ids if c in rows] if payloads else []

    def _retire(self, call_id: int) -> None:
        """Ended calls stay in memory a while for late events; the oldest are forgotten (the journal
        gives their facts back if a late event of theirs arrives)."""
        ended = [cid for cid, v in self._written.items() if v.get("state") == "ended"]
        for old in ended[:-self.settings.ended_calls_kept]:
            self._written.pop(old, None)
            self.tracker.forget(old)

    # ---- outages ----------------------------------------------------------------------------------
    def link_lost(self, heard: float | None = None) -> None:
        """The link dropped; `heard`: when Asterisk last sent anything (a Ping's answer, an event that is no
        call event): the calls still open were in progress at least until then."""
        if self.outage_since is None or (self.last_event_at or 0) > self.outage_since:
            self.outage_since = self.last_event_at
        if heard is not None:
            self.heard_until = max(self.heard_until or heard, heard)

    async def reconcile(self, live_ids: set[str], since: float, channel_events: list[dict[str, str]],
                        asked: float | None = None) -> list[int]:
        """After every (re)connect, once FullyBooted: the live channels (CoreShowChannels), then Asterisk's
        CEL records for the open calls, the calls settled as interrupted lately, and everything since the
        last event seen, all through the journal. Calls open before this connection with no live channel
        and no end in CEL yet are read again for a few seconds (Asterisk may not have written their last
        rows yet) and then settled as `interrupted`; a later read that finds their end upgrades them."""
        now = time.time()
        await self.handle_batch([(ev, now) for ev in channel_events])
        await self._recover_from_cel(live_ids, since)
        interrupted: list[int] = []
        reason = ("its end is in neither AMI nor Asterisk's CEL records" if self.cel_source is not None
                  else "its end was not seen (clinicall was not connected to Asterisk; no CEL database configured)")
        if self.cel_owed:
            reason = "its end is unknown until Asterisk's CEL database, unreachable now, answers again"
        seen = max((t for t in (self.outage_since, self.heard_until) if t is not None), default=None)
        last_seen = f"{seen:.6f}" if seen is not None else None
        for call_id in self._unsettled(live_ids, since):
            await self._own(INTERRUPTED, call_id, Reason=f"Interrupted: {reason}", LastSeen=last_seen)
            interrupted.append(call_id)
        self.tracker.reset_channels(live_ids, before=min(since, asked if asked is not None else now))
        self.outage_since = self.heard_until = None
        return interrupted

    def _unsettled(self, live_ids: set[str], since: float) -> list[int]:
        """Calls open before this connection with no live channel and no recorded end."""
        return [call_id for call_id in self.tracker.open_calls()
                if self.tracker.calls[call_id].created_at < since and not self.tracker.live_in(call_id, live_ids)]

    async def _recover_from_cel(self, live_ids: set[str], since: float) -> None:
        """Read CEL until every call open before `since` has its end, or a record written after `since`
        shows that Asterisk's CEL writer has caught up, or CEL_CATCH_UP seconds have gone by."""
        if self.cel_source is None:
            return
        outage = self._cel_window(self.outage_since)
        await self._reload_interrupted()
        newest = await self._read_cel(outage)
        waited, pause = 0.0, 0.25
        while (waited < self.cel_catch_up and (newest is None or newest < since)
               and self._unsettled(live_ids, since)):  # an unreachable database is read again later (retry_cel)
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 1.0)
            newest = max(newest or 0.0, await self._read_cel(outage) or 0.0) or None
        self._owe_cel(outage)

    def _cel_window(self, outage: float | None) -> float | None:
        """From when CEL is read: the last outage, or an earlier one whose records could not be read."""
        if not self.cel_owed:
            return outage
        return min((t for t in (outage, self.cel_owed_since) if t is not None), default=None)

    def _owe_cel(self, window: float | None) -> None:
        """After a read: while the CEL database does not answer, what it holds stays owed (never guessed)."""
        self.cel_owed = self.cel_error is not None
        self.cel_owed_since = window if self.cel_owed else None

    async def retry_cel(self) -> bool:
        """The CEL database did not answer at the last recovery: read it again (the link asks every
        `telephony.cel_retry_seconds`). The calls settled as interrupted meanwhile take their true end, the
        calls that began and ended during the outage get their rows. Returns True once it answered."""
        if self.cel_source is None or not self.cel_owed:
            return False
        window = self._cel_window(None)
        await self._reload_interrupted()
        await self._read_cel(window)
        self._owe_cel(window)
        if not self.cel_owed:
            log.info("Asterisk's CEL database answers again: the calls of the outage are recovered")
        return not self.cel_owed

    async def _reload_interrupted(self) -> None:
        """Calls settled as interrupted lately come back into memory, so that CEL records showing how they
        really went (written late, or in a database that was unreachable) upgrade them."""
        recent = to_dt(time.time() - RECHECK_INTERRUPTED)
        async with self.db.session() as s:
            ids = (await s.scalars(select(Call.id).where(Call.disposition == "interrupted",
                                                         Call.created_at >= recent).limit(1000))).all()
        for call_id in ids:
            if call_id not in self.tracker.calls:
                await self._follow_again(call_id)
        self._recheck = set(ids)

    async def _read_cel(self, outage: float | None) -> float | None:
        """One read: the records of the open and lately interrupted calls, and every record since the last
        event seen before the outage (calls that began and ended while away). Returns the newest record's
        time."""
        assert self.cel_source is not None
        calls = set(self.tracker.open_calls()) | {c for c in self._recheck if c in self.tracker.calls}
        linkedids = {lid for cid in calls for lid in self.tracker.linkedids_of(cid)}
        since = to_dt(outage - 1.0) if outage is not None else None
        self.cel_error = None
        try:
            rows: list[dict[str, str]] = []
            if linkedids:
                rows = await self.cel_source.read(since=None, linkedids=linkedids)
                self.cel_error = getattr(self.cel_source, "last_error", None)
            if since is not None and self.cel_error is None:
                rows += await self.cel_source.read(since=since, linkedids=None)
                self.cel_error = getattr(self.cel_source, "last_error", None)
        except Exception as exc:  # the calls stay open and are settled as interrupted, with the reason
            log.exception("reading Asterisk's CEL records failed")
            self.cel_error = f"{type(exc).__name__}: {exc}"
        if self.cel_error is not None:
            return None
        now = time.time()
        for start in range(0, len(rows), 1000):
            await self.handle_batch([(row, now) for row in rows[start:start + 1000]], source="cel")
        log.info("recovery: %d CEL record(s) read from Asterisk's database", len(rows))
        times = [t for t in (journal.cel_time(row.get("EventTimestamp")) for row in rows) if t is not None]
        return max(times, default=None)

    async def asterisk_shutdown(self) -> list[int]:
        """Asterisk says it is stopping: nothing is guessed. Its channels' Hangups came before this event;
        what is still open is settled at the next FullyBooted (live channels, CEL, else interrupted)."""
        self.link_lost()
        return []

    async def originate_not_confirmed(self, call_id: int) -> None:
        """An Originate that Asterisk never answered before the link dropped: we never send it again."""
        await self._own(INTERRUPTED, call_id, Reason="Asterisk did not confirm the call before the link dropped")

    async def originate_rejected(self, call_id: int, message: str) -> None:
        """`Response: Error` to the Originate itself (no OriginateResponse will follow)."""
        await self._own(REFUSED, call_id, Reason=f"Asterisk refused the call: {message}"[:CAUSE_LEN])
