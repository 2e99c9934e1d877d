"""Queue statistics per service, room and local day: waits (issue or re-entry to call), service times
(start to end) and the no-show rate (no-show visits / called visits)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import select

from clinicall.db import Database
from clinicall.problem import Problem, check_day
from clinicall.settings import Settings
from queue_display.events import local_name
from queue_display.models import QueueRoom, QueueService, Visit

MAX_DAYS = 366


class _Acc:
    def __init__(self) -> None:
        self.visits = 0
        self.called = 0
        self.noshows = 0
        self.waits: list[float] = []
        self.services: list[float] = []

    def add(self, visit: Visit) -> None:
        self.visits += 1
        if visit.called_at is not None:
            self.called += 1
            self.waits.append(max(0.0, (visit.called_at - visit.enqueued_at).total_seconds()))
        if visit.outcome == "noshow":
            self.noshows += 1
        if visit.outcome in ("done", "transferred") and visit.started_at and visit.ended_at:
            self.services.append(max(0.0, (visit.ended_at - visit.started_at).total_seconds()))

    def as_json(self) -> dict[str, Any]:
        waits, services = sorted(self.waits), self.services
        return {
            "visits": self.visits,
            "called": self.called,
            "served": len(services),
            "noshows": self.noshows,
            "noshow_rate": round(self.noshows / self.called, 4) if self.called else None,
            "mean_wait_seconds": round(statistics.fmean(waits), 1) if waits else None,
            "median_wait_seconds": round(statistics.median(waits), 1) if waits else None,
            "p90_wait_seconds": round(waits[min(len(waits) - 1, int(0.9 * len(waits)))], 1) if waits else None,
            "max_wait_seconds": round(waits[-1], 1) if waits else None,
            "mean_service_seconds": round(statistics.fmean(services), 1) if services else None,
            "median_service_seconds": round(statistics.median(services), 1) if services else None,
        }


def parse_range(raw_from: str | None, raw_to: str | None, today: dt.date) -> tuple[dt.date, dt.date]:
    try:
        day_to = dt.date.fromisoformat(raw_to) if raw_to else today
        check_day(day_to, "to")
        day_from = dt.date.fromisoformat(raw_from) if raw_from else day_to - dt.timedelta(days=6)
        check_day(day_from, "from")
    except ValueError:
        raise Problem(422, "Invalid date", "Give from and to as dates YYYY-MM-DD, e.g. from=2026-11-01&to=2026-11-22.") from None
    if day_from > day_to:
        raise Problem(422, "Invalid range", "from must be on or before to.")
    if (day_to - day_from).days >= MAX_DAYS:
        raise Problem(422, "Range too long", f"Ask for at most {MAX_DAYS} days at a time.")
    return day_from, day_to


async def queue_stats(db: Database, settings: Settings, day_from: dt.date, day_to: dt.date) -> dict[str, Any]:
    language = settings.clinic.language
    async with db.session() as s:
        services = {x.id: x for x in (await s.scalars(select(QueueService))).all()}
        rooms = {x.id: x for x in (await s.scalars(select(QueueRoom))).all()}
        visits = (await s.scalars(select(Visit).where(Visit.local_day >= day_from, Visit.local_day <= day_to))).all()
    by_service_day: dict[tuple[dt.date, int], _Acc] = defaultdict(_Acc)
    by_room_day: dict[tuple[dt.date, int], _Acc] = defaultdict(_Acc)
    by_service: dict[int, _Acc] = defaultdict(_Acc)
    by_room: dict[int, _Acc] = defaultdict(_Acc)
    by_day: dict[dt.date, _Acc] = defaultdict(_Acc)
    total = _Acc()
    for visit in visits:
        for acc in (by_service_day[(visit.local_day, visit.service_id)], by_service[visit.service_id],
                    by_day[visit.local_day], total):
            acc.add(visit)
        if visit.room_id is not None:
            by_room_day[(visit.local_day, visit.room_id)].add(visit)
            by_room[visit.room_id].add(visit)

    def service_label(service_id: int) -> dict[str, Any]:
        service = services.get(service_id)
        return {"service_id": service_id, "service_name": local_name(service.names, language) if service else "",
                "service_prefix": service.prefix if service else ""}

    def room_label(room_id: int) -> dict[str, Any]:
        room = rooms.get(room_id)
        return {"room_id": room_id, "room_name": local_name(room.names, language) if room else ""}

    return {
        "from": day_from.isoformat(),
        "to": day_to.isoformat(),
        "totals": total.as_json(),
        "by_day": [{"day": d.isoformat(), **acc.as_json()} for d, acc in sorted(by_day.items())],
        "by_service": [{**service_label(i), **acc.as_json()} for i, acc in sorted(by_service.items())],
        "by_room": [{**room_label(i), **acc.as_json()} for i, acc in sorted(by_room.items())],
        "by_service_day": [{"day": d.isoformat(), **service_label(i), **acc.as_json()}
                           for (d, i), acc in sorted(by_service_day.items())],
        "by_room_day": [{"day": d.isoformat(), **room_label(i), **acc.as_json()}
                        for (d, i), acc in sorted(by_room_day.items())],
    }
