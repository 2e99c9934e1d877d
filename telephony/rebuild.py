"""`clinicall calls rebuild [--since DATE]`: the call rows projected again from the journal alone, the
way wazo-call-logd rebuilds its call logs from CEL. Rows keep their ids; a group of events that has
no row yet gets one; a row whose projection is unchanged is not written."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass

from sqlalchemy import or_, select

from clinicall.db import Database
from clinicall.settings import Settings, TelephonySettings
from telephony import journal
from telephony.calllog import CallLog
from telephony.models import Call


@dataclass
class RebuildReport:
    events: int
    calls: int
    changed: int


async def _existing(db: Database, since: dt.datetime | None, linkedids: set[str]) -> list[Call]:
    ids = sorted(linkedids)
    found: dict[int, Call] = {}
    async with db.session() as s:
        query = select(Call) if since is None else select(Call).where(Call.created_at >= since)
        found.update({c.id: c for c in (await s.scalars(query)).all()})
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = (await s.scalars(select(Call).where(or_(Call.linkedid.in_(chunk), Call.channel_id.in_(chunk))))).all()
            found.update({c.id: c for c in rows})
    return sorted(found.values(), key=lambda c: c.id)


async def rebuild(db: Database, settings: TelephonySettings, *, since: dt.datetime | None = None,
                  region: str = "VN") -> RebuildReport:
    """Replays the journal (everything at or after `since`) into a fresh state machine and writes the rows
    that differ. Rows created before `since` are left as they are."""
    entries = await journal.read(db, since=since.timestamp() if since else None)
    calllog = CallLog(db, None, settings, region=region)
    calllog.keep_ended = False
    rows = await _existing(db, since, {e.linkedid for e in entries if e.linkedid})
    for call in rows:
        calllog.register(call)
    touched: set[int] = set()
    for start in range(0, len(entries), 5000):
        touched |= await calllog.project_entries(entries[start:start + 5000])
    in_range = {c.id for c in rows if since is None or c.created_at >= since} | (touched - {c.id for c in rows})
    ordered = sorted(in_range)
    changed = 0
    for start in range(0, len(ordered), 500):
        changed += await calllog._refresh(set(ordered[start:start + 500]), publish=False)
    return RebuildReport(events=len(entries), calls=len(ordered), changed=changed)


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
        report = await rebuild(db, settings.telephony, since=args.since, region=settings.clinic.phone_region)
    finally:
        await db.dispose()
    print(f"{report.events} events replayed, {report.calls} calls projected, {report.changed} rows changed",
          file=sys.stdout)
    return 0
