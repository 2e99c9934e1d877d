"""Booking -> arrival conversion for the admin console: GET /api/stats/bookings?from=&to=.

A booking is a (patient, booked day) from crm_bridge (a care note's booking date or the patient's
current booking date). It converted when the patient got a queue ticket (check-in) on that local day; `arrived_late`
counts tickets within LATE_DAYS after it. Bookings after today are `pending` and left out of the rate."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from aiohttp import web

from clinicall.auth.access import require
from clinicall.db import Database
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.problem import Problem, check_day
from crm_bridge import service as crm
from queue_display.reception import patient_arrival_days

routes = web.RouteTableDef()
MAX_DAYS = 366
DEFAULT_DAYS = 14
LATE_DAYS = 7


def parse_range(query: Any, today: dt.date) -> tuple[dt.date, dt.date]:
    values: dict[str, dt.date] = {}
    for name, default in (("from", today - dt.timedelta(days=DEFAULT_DAYS - 1)), ("to", today)):
        raw = str(query.get(name, "")).strip()
        try:
            values[name] = dt.date.fromisoformat(raw) if raw else default
        except ValueError:
            raise Problem(400, "Invalid date", f"?{name}= must be a date like 2026-11-22; got {raw[:40]!r}.") from None
        check_day(values[name], name)
    if values["to"] < values["from"]:
        raise Problem(400, "Invalid range", "?from= must be on or before ?to=.")
    if (values["to"] - values["from"]).days >= MAX_DAYS:
        raise Problem(400, "Range too long", f"Ask for at most {MAX_DAYS} days at once.")
    return values["from"], values["to"]


async def booking_stats(db: Database, day_from: dt.date, day_to: dt.date, today: dt.date) -> dict[str, Any]:
    bookings = await crm.bookings_in(db, day_from, day_to)
    arrivals = await patient_arrival_days(db, {p for p, _ in bookings}, day_from, day_to + dt.timedelta(days=LATE_DAYS))
    per_day: dict[dt.date, dict[str, int]] = defaultdict(lambda: {"booked": 0, "arrived": 0, "arrived_late": 0, "pending": 0})
    for patient_id, day in bookings:
        row = per_day[day]
        row["booked"] += 1
        if day > today:
            row["pending"] += 1
            continue
        came = arrivals.get(patient_id, set())
        if day in came:
            row["arrived"] += 1
        elif any(day < d <= day + dt.timedelta(days=LATE_DAYS) for d in came):
            row["arrived_late"] += 1
    days = [day_from + dt.timedelta(days=i) for i in range((day_to - day_from).days + 1)]
    booked = sum(r["booked"] - r["pending"] for r in per_day.values())
    arrived = sum(r["arrived"] for r in per_day.values())
    late = sum(r["arrived_late"] for r in per_day.values())
    return {
        "from": day_from.isoformat(), "to": day_to.isoformat(), "arrivals_known": True,
        "booked": booked, "arrived": arrived, "arrived_late": late,
        "pending": sum(r["pending"] for r in per_day.values()),
        "conversion": round(arrived / booked, 4) if booked else 0.0,
        "conversion_with_late": round((arrived + late) / booked, 4) if booked else 0.0,
        "days": [{"day": d.isoformat(), **(per_day.get(d) or {"booked": 0, "arrived": 0, "arrived_late": 0, "pending": 0})}
                 for d in days],
    }


@routes.get("/api/stats/bookings")
async def stats_bookings(request: web.Request) -> web.Response:
    require(request, "admin", "supervisor")
    today = dt.datetime.now(request.app[SETTINGS_KEY].clinic.zone()).date()
    day_from, day_to = parse_range(request.query, today)
    return web.json_response(await booking_stats(request.app[DB_KEY], day_from, day_to, today))


def setup_stats(app: web.Application) -> None:
    app.router.add_routes(routes)
