"""Call statistics for the admin console: calls per agent and day, dispositions, care-note outcomes and
answer rates, over local days of the clinic's time zone. GET /api/stats/calls?from=YYYY-MM-DD&to=YYYY-MM-DD."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from clinicall.auth.access import require
from clinicall.auth.service import users_by_ids
from clinicall.db import Database
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.problem import Problem, check_day
from crm_bridge.service import notes_for_calls
from telephony.models import Call

routes = web.RouteTableDef()
MAX_DAYS = 366
DEFAULT_DAYS = 14


def date_range(request: web.Request, zone: ZoneInfo) -> tuple[dt.date, dt.date]:
    """The ?from= and ?to= local dates (inclusive); the last two weeks by default."""
    today = dt.datetime.now(zone).date()
    values: dict[str, dt.date] = {}
    for name, default in (("from", today - dt.timedelta(days=DEFAULT_DAYS - 1)), ("to", today)):
        raw = request.query.get(name, "").strip()
        try:
            values[name] = dt.date.fromisoformat(raw) if raw else default
        except ValueError:
            raise Problem(400, "Invalid date", f"?{name}= must be a date like 2026-11-22; got {raw[:40]!r}.") from None
        check_day(values[name], name)
    start, end = values["from"], values["to"]
    if end < start:
        raise Problem(400, "Invalid range", "?from= must be on or before ?to=.")
    if (end - start).days >= MAX_DAYS:
        raise Problem(400, "Range too long", f"Ask for at most {MAX_DAYS} days at once.")
    return start, end


def local_bounds(start: dt.date, end: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    lo = dt.datetime.combine(start, dt.time(), zone).astimezone(dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    return lo, hi


def _rate(answered: int, ended: int) -> float:
    return round(answered / ended, 4) if ended else 0.0


async def call_stats(db: Database, zone: ZoneInfo, start: dt.date, end: dt.date) -> dict[str, Any]:
    lo, hi = local_bounds(start, end, zone)
    async with db.session() as s:
        rows = (await s.execute(select(Call.id, Call.agent_id, Call.created_at, Call.state, Call.disposition,
                                       Call.billsec, Call.direction)
                                .where(Call.created_at >= lo, Call.created_at < hi))).all()
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    per_day: dict[str, Counter[str]] = {d.isoformat(): Counter() for d in days}
    per_agent: dict[int | None, Counter[str]] = defaultdict(Counter)
    per_agent_day: dict[tuple[str, int | None], Counter[str]] = defaultdict(Counter)
    dispositions: Counter[str] = Counter()
    directions: Counter[str] = Counter()
    for row in rows:
        day = row.created_at.astimezone(zone).date().isoformat()
        ended = row.state == "ended"
        answered = row.disposition == "answered"
        for counter in (per_day[day], per_agent[row.agent_id], per_agent_day[(day, row.agent_id)]):
            counter["calls"] += 1
            counter["ended"] += ended
            counter["answered"] += answered
        per_agent[row.agent_id]["talk_seconds"] += row.billsec or 0
        directions[row.direction] += 1
        if row.disposition:
            dispositions[row.disposition] += 1
    outcomes = await _outcomes(db, [row.id for row in rows])
    users = await users_by_ids(db, [a for a in per_agent if a is not None])

    def name(agent_id: int | None) -> str:
        user = users.get(agent_id) if agent_id is not None else None
        return (user.display_name or user.username) if user else ("—" if agent_id is None else f"#{agent_id}")

    total = sum(c["calls"] for c in per_day.values())
    answered = sum(c["answered"] for c in per_day.values())
    ended = sum(c["ended"] for c in per_day.values())
    return {
        "from": start.isoformat(), "to": end.isoformat(), "total": total, "answered": answered,
        "answer_rate": _rate(answered, ended),
        "days": [{"day": d, "calls": c["calls"], "answered": c["answered"], "answer_rate": _rate(c["answered"], c["ended"])}
                 for d, c in per_day.items()],
        "agents": sorted(({"agent_id": a, "agent_name": name(a), "calls": c["calls"], "answered": c["answered"],
                           "answer_rate": _rate(c["answered"], c["ended"]), "talk_seconds": c["talk_seconds"]}
                          for a, c in per_agent.items()), key=lambda x: (-x["calls"], x["agent_name"])),
        "per_agent_day": [{"day": d, "agent_id": a, "calls": c["calls"], "answered": c["answered"]}
                          for (d, a), c in sorted(per_agent_day.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))],
        "dispositions": dict(dispositions), "directions": dict(directions), "outcomes": outcomes,
    }


async def _outcomes(db: Database, call_ids: list[int]) -> list[dict[str, Any]]:
    """Care-note outcomes of these calls (crm_bridge's notes_for_calls), counted by status and detail."""
    notes = await notes_for_calls(db, call_ids)
    counts = Counter((n.get("customer_status"), n.get("detail_status")) for n in notes.values())
    return [{"customer_status": cs, "detail_status": ds, "count": n}
            for (cs, ds), n in sorted(counts.items(), key=lambda kv: -kv[1])]


@routes.get("/api/stats/calls")
async def stats_calls(request: web.Request) -> web.Response:
    require(request, "admin", "supervisor")
    zone = request.app[SETTINGS_KEY].clinic.zone()
    start, end = date_range(request, zone)
    return web.json_response(await call_stats(request.app[DB_KEY], zone, start, end))


def setup_stats(app: web.Application) -> None:
    from clinicall.exports import register_exports
    from telephony.exports import EXPORTS

    app.router.add_routes(routes)
    register_exports(app, EXPORTS)
