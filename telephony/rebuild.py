"""`clinicall calls rebuild [--since DATE]`: the call rows projected again from the journal alone, the
way wazo-call-logd rebuilds its call logs from CEL. Rows keep their ids; a group of events that has
no row yet gets one; a row whose projection is unchanged is not written."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from clinicall.db import Database
from clinicall.settings import Settings, TelephonySettings
from telephony import journal
from telephony.calllog import CallLog
from telephony.journal import Entry
from telephony.models import Call

CHUNK = 5000  # journal entries read and projected at a time


@dataclass
class RebuildReport:
    events: int = 0
    calls: int = 0  # rows compared with their projection (or created)
    changed: int = 0  # rows written


Progress = Callable[[RebuildReport], None]


async def _rows_for(db: Database, keys: set[str]) -> list[Call]:
    """The rows a set of journal Linkedids belongs to (Linkedid, ActionID = ChannelId, clinicall's `call-<id>`),
    each condition by an index."""
    ordered = sorted(keys)
    found: dict[int, Call] = {}
    async with db.session() as s:
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            own = [int(k[5:]) for k in chunk if k.startswith("call-") and k[5:].isdigit()]
            rows = (await s.scalars(select(Call).where(or_(Call.linkedid.in_(chunk), Call.action_id.in_(chunk),
                                                           Call.id.in_(own))))).all()
            found.update({c.id: c for c in rows})
    return sorted(found.values(), key=lambda c: c.id)


class Rebuild:
    """The journal streamed in chunks through a fresh state machine. A call is written once it has ended
    and a whole chunk went by without an event of it, then forgotten (a later event of it brings its facts
    back from the journal); what is still open at the end is written last. Memory holds one chunk, the
    calls in progress and the ids of the calls done."""

    def __init__(self, db: Database, settings: TelephonySettings, since: dt.datetime | None, region: str) -> None:
        self.db = db
        self.since = since
        self.log = CallLog(db, None, settings, region=region)
        self.log.keep_ended = False
        self.report = RebuildReport()
        self.done: set[int] = set()  # written and forgotten
        self.protected: set[int] = set()  # created before `since`: never written
        self.dirty: set[int] = set()
        self.last_touched: set[int] = set()

    async def chunk(self, entries: list[Entry]) -> None:
        tracker = self.log.tracker
        keys = {e.linkedid for e in entries if e.linkedid}
        unknown = {k for k in keys if k not in tracker.by_linkedid and k not in tracker.by_action}
        for call in await _rows_for(self.db, unknown) if unknown else []:
            if call.id in tracker.calls:
                continue
            if self.since is not None and call.created_at < self.since:
                self.protected.add(call.id)
            if call.id in self.done:
                self.done.discard(call.id)
                await self.log._follow_again(call.id)
            else:
                self.log.register(call)
        touched = await self.log.project_entries(entries)
        self.report.events += len(entries)
        self.dirty |= touched
        idle = self.last_touched - touched
        self.last_touched = touched
        values = {cid: await self.log.values_of(cid) for cid in sorted(idle) if cid in tracker.calls}
        ended = {cid for cid, v in values.items() if v["state"] == "ended"}
        ended -= await self._with_later_entries(ended, entries[-1].id or 0)
        await self._write({cid: values[cid] for cid in ended})
        for call_id in ended:
            self.log._written.pop(call_id, None)
            tracker.forget(call_id)
            self.done.add(call_id)

    async def _with_later_entries(self, call_ids: set[int], after_id: int) -> set[int]:
        """Calls the journal still has entries of further on (a late CEL record, a patient linked later):
        they stay in memory until then, so that each row is written once, final."""
        keys = {call_id: self._keys(call_id) for call_id in call_ids}
        later = await journal.linkedids_after(self.db, after_id, set().union(*keys.values())) if keys else set()
        return {call_id for call_id, own in keys.items() if own & later}

    def _keys(self, call_id: int) -> set[str]:
        spec = self.log.tracker.calls[call_id]
        own = {spec.channel_id, spec.action_id, spec.linkedid, f"call-{call_id}"}
        return {k for k in own if k} | set(self.log.tracker.linkedids_of(call_id))

    async def _write(self, values: dict[int, dict[str, Any]]) -> None:
        wanted = sorted((values.keys() & self.dirty) - self.protected)
        self.dirty -= values.keys()
        for start in range(0, len(wanted), 500):
            self.report.changed += await self.log.write_values({c: values[c] for c in wanted[start:start + 500]},
                                                               publish=False)
        self.report.calls += len(wanted)

    async def finish(self) -> RebuildReport:
        tracker = self.log.tracker
        await self._write({cid: await self.log.values_of(cid) for cid in sorted(self.dirty) if cid in tracker.calls})
        return self.report


async def rebuild(db: Database, settings: TelephonySettings, *, since: dt.datetime | None = None,
                  region: str = "VN", progress: Progress | None = None, chunk: int = CHUNK) -> RebuildReport:
    """Replays the journal (everything at or after `since`) into a fresh state machine, `chunk` entries at a
    time, and writes the rows that differ; `progress` is called after each chunk. Rows created before
    `since` are left as they are."""
    job = Rebuild(db, settings, since, region)
    async for entries in journal.chunks(db, since=since.timestamp() if since else None, batch=chunk):
        await job.chunk(entries)
        if progress is not None:
            progress(job.report)
    return await job.finish()


def _progress(started: float) -> Progress:
    def show(report: RebuildReport) -> None:
        took = max(time.monotonic() - started, 1e-6)
        print(f"... {report.events} events, {report.calls} calls done, {report.changed} changed "
              f"({report.events / took:,.0f} events/s)", file=sys.stderr, flush=True)
    return show


def parse_since(value: str) -> dt.datetime:
    """YYYY-MM-DD (midnight UTC) or an ISO date-time (UTC unless it names its zone)."""
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    calls = subparsers.add_parser("calls", help="the call log")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True)
    again = calls_sub.add_parser("rebuild", help="project the call rows again from the journal of call events")
    again.add_argument("--since", type=parse_since, help="only calls from this date (YYYY-MM-DD or ISO date-time)")
    again.set_defaults(func=cmd_rebuild)


async def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.migrate import migrate

    db = Database(settings.database.url)
    try:
        await migrate(db)
        report = await rebuild(db, settings.telephony, since=args.since, region=settings.clinic.phone_region,
                               progress=_progress(time.monotonic()))
    finally:
        await db.dispose()
    print(f"{report.events} events replayed, {report.calls} calls projected, {report.changed} rows changed",
          file=sys.stdout)
    return 0
