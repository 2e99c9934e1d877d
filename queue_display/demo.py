"""Demo clinic for the waiting room: 3 services, 4 rooms with doctors on duty, and two weeks of
finished tickets so that the wait estimator has this clinic's history to learn from."""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import secrets

from sqlalchemy import func, select

from clinicall.auth.service import list_users
from clinicall.db import Database, utcnow
from clinicall.settings import Settings
from queue_display.catalog import RoomIn, ServiceIn, create_room, create_service
from queue_display.models import QueueCounter, QueueRoom, QueueService, Ticket, Visit

log = logging.getLogger(__name__)
HISTORY_DAYS = 14

SERVICES = (
    # prefix, names, mean minutes of service
    ("A", {"vi": "Khám tổng quát", "en": "General consultation", "zh": "普通门诊"}, 9.0),
    ("B", {"vi": "Xét nghiệm", "en": "Laboratory tests", "zh": "化验"}, 4.0),
    ("C", {"vi": "Siêu âm", "en": "Ultrasound", "zh": "超声检查"}, 12.0),
)
ROOMS = (
    # kind, number, service prefixes, doctor on duty, demo user linked
    ("consult", 1, "A", "BS. Trần Minh", "doctor"),
    ("consult", 2, "A", "BS. Nguyễn Thị Mai", None),
    ("consult", 3, "AC", "BS. Lê Quang Huy", None),
    ("lab", 1, "B", "KTV. Phạm Thu Hà", None),
)
# arrivals per hour (local) for A, B, C: a morning peak, a lunch dip, a smaller afternoon
HOURLY = {7: (6, 3, 1), 8: (12, 6, 3), 9: (10, 5, 3), 10: (8, 4, 2), 11: (5, 2, 1), 13: (5, 3, 1),
          14: (7, 3, 2), 15: (6, 2, 2), 16: (3, 1, 1)}
PRIORITY_MIX = (("normal", 0.72), ("booked", 0.12), ("elderly", 0.1), ("pregnant", 0.03), ("disabled", 0.02),
                ("emergency", 0.01))


async def load(db: Database, settings: Settings) -> None:
    async with db.session() as s:
        if await s.scalar(select(func.count()).select_from(QueueService)):
            return
    services = {}
    for prefix, names, _minutes in SERVICES:
        # open around the clock in the demo, so it can be tried at any hour
        services[prefix] = await create_service(db, ServiceIn(prefix=prefix, names=names))
    users = {u.username: u.id for u in await list_users(db)}
    rooms = []
    for kind, number, prefixes, doctor, username in ROOMS:
        rooms.append(await create_room(db, RoomIn(
            kind=kind, number=number, service_ids=[services[p].id for p in prefixes], doctor_name=doctor,  # type: ignore[arg-type]
            doctor_user_id=users.get(username) if username else None)))
    count = await add_history(db, settings, services, rooms, random.Random(2026))
    print(f"queue: demo services {', '.join(services)}, {len(rooms)} rooms, {count} past tickets", flush=True)


def _priority(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for name, share in PRIORITY_MIX:
        total += share
        if roll < total:
            return name
    return "normal"


async def add_history(db: Database, settings: Settings, services: dict[str, QueueService], rooms: list[QueueRoom],
                      rng: random.Random, days: int = HISTORY_DAYS) -> int:
    """Simulated past days: arrivals by hour, rooms serving the earliest free, lognormal service times,
    some no-shows. Writes tickets, visits and counters as the live queue would have."""
    zone = settings.clinic.zone()
    today = utcnow().astimezone(zone).date()
    mean_minutes = {prefix: minutes for prefix, _n, minutes in SERVICES}
    written = 0
    async with db.transaction() as s:
        for offset in range(days, 0, -1):
            day = today - dt.timedelta(days=offset)
            if day.weekday() == 6:
                continue  # closed on Sundays in the past
            arrivals = []
            for hour, rates in HOURLY.items():
                for prefix, rate in zip("ABC", rates, strict=True):
                    for _ in range(rng.randint(max(0, rate - 2), rate + 2)):
                        local = dt.datetime.combine(day, dt.time(hour, rng.randrange(60), rng.randrange(60)), zone)
                        arrivals.append((local.astimezone(dt.UTC), prefix))
            arrivals.sort()
            free = {room.id: dt.datetime.combine(day, dt.time(7, 30), zone).astimezone(dt.UTC) for room in rooms}
            seq = {prefix: 0 for prefix in services}
            for arrived, prefix in arrivals:
                service = services[prefix]
                room = min((r for r in rooms if service.id in r.service_ids), key=lambda r: free[r.id])
                called = max(arrived, free[room.id])
                noshow = rng.random() < 0.05
                mean = mean_minutes[prefix] * 60
                sigma = 0.45
                seconds = 120.0 if noshow else rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)
                ended = called + dt.timedelta(seconds=seconds)
                free[room.id] = ended + dt.timedelta(seconds=rng.uniform(10, 60))
                seq[prefix] += 1
                priority = _priority(rng)
                ticket = Ticket(service_id=service.id, issued_service_id=service.id, local_day=day, seq=seq[prefix],
                                number=f"{prefix}{seq[prefix]:03d}", token=secrets.token_urlsafe(18),
                                priority=priority, source=rng.choice(("kiosk", "kiosk", "reception", "checkin")),
                                status="noshow" if noshow else "done", room_id=room.id, issued_at=arrived,
                                enqueued_at=arrived, called_at=called, started_at=None if noshow else called,
                                done_at=None if noshow else ended, noshow_at=ended if noshow else None,
                                skipped_at=ended if noshow else None, updated_at=ended)
                s.add(ticket)
                await s.flush()
                visit = Visit(ticket_id=ticket.id, service_id=service.id, room_id=room.id, local_day=day,
                              priority=priority, enqueued_at=arrived, called_at=called,
                              started_at=None if noshow else called, ended_at=ended,
                              outcome="noshow" if noshow else "done")
                s.add(visit)
                await s.flush()
                ticket.visit_id = visit.id
                written += 1
            for prefix, last in seq.items():
                if last:
                    s.add(QueueCounter(service_id=services[prefix].id, local_day=day, last_seq=last))
    return written
