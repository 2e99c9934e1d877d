"""Mean wait per priority class in an over-full clinic morning, through the real queue operations.

Three consult rooms, about 10 minutes a patient, and more arrivals than they can serve (--load 1.35
means 35 % more than capacity) from 07:00 for --hours hours; the classes (CLASS_MIX) arrive spread
over the whole morning. Every
ticket is issued and called by queue_display.tickets (issue, call_next) on a real database with a
simulated clock, so the figures are the clinic's own ordering policy, not a model of it. Prints,
per class, the tickets, mean and longest wait, and counts every time a ticket was passed over by a
non-emergency ticket that entered the line more than queue.anti_starvation_minutes after it.

    .venv/bin/python bench/queue_priorities.py --seed 1 --hours 4 --load 1.35
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import heapq
import math
import random
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinicall.db import Database  # noqa: E402
from clinicall.migrate import migrate  # noqa: E402
from clinicall.settings import Settings  # noqa: E402
from queue_display import tickets  # noqa: E402
from queue_display.catalog import RoomIn, ServiceIn, create_room, create_service  # noqa: E402

# one block of 25 arrivals; each block is shuffled, so every class arrives spread over the whole morning
CLASS_MIX = (("normal", 12), ("booked", 5), ("elderly", 3), ("pregnant", 2), ("disabled", 2), ("emergency", 1))
ROOMS = 3
SERVICE_MINUTES = 10.0


@dataclass
class Stay:
    ticket_id: int
    priority: str
    enqueued: float
    called: float | None = None


@dataclass
class Morning:
    stays: dict[int, Stay] = field(default_factory=dict)
    limit_minutes: float = 30.0

    def waits(self) -> dict[str, list[float]]:
        by_class: dict[str, list[float]] = {}
        for stay in self.stays.values():
            if stay.called is not None:
                by_class.setdefault(stay.priority, []).append((stay.called - stay.enqueued) / 60.0)
        return by_class

    def passed_over(self) -> list[tuple[int, int]]:
        """(a, b): b was called while a waited, b is no emergency and entered more than the limit after a."""
        late: list[tuple[int, int]] = []
        called = sorted((s for s in self.stays.values() if s.called is not None), key=lambda s: s.called or 0.0)
        for b in called:
            if b.priority == "emergency":
                continue
            for a in self.stays.values():
                waiting = a.enqueued <= (b.called or 0.0) and (a.called is None or a.called > (b.called or 0.0))
                if waiting and b.enqueued - a.enqueued > self.limit_minutes * 60.0:
                    late.append((a.ticket_id, b.ticket_id))
        return late

    def unserved(self) -> int:
        return sum(1 for stay in self.stays.values() if stay.called is None)


def _classes(rng: random.Random) -> Iterator[str]:
    while True:
        block = [name for name, count in CLASS_MIX for _ in range(count)]
        rng.shuffle(block)
        yield from block


async def overfull_morning(db: Database, settings: Settings, *, seed: int = 1, hours: float = 4.0,
                           load: float = 1.35, day: dt.date = dt.date(2026, 3, 2)) -> Morning:
    """Runs the morning on a migrated, empty database; every arrival is served before it returns."""
    rng = random.Random(seed)
    service = await create_service(db, ServiceIn(prefix="A", names={"vi": "Khám tổng quát"}))
    rooms = [await create_room(db, RoomIn(kind="consult", number=n + 1, service_ids=[service.id]))
             for n in range(ROOMS)]
    start = dt.datetime.combine(day, dt.time(7, 0), settings.clinic.zone()).timestamp()
    per_minute = load * ROOMS / SERVICE_MINUTES
    events: list[tuple[float, int, str, int]] = []  # (at, order, "arrive" | "free", room index)
    at, order = start, 0
    while True:
        at += rng.expovariate(per_minute) * 60.0
        if at > start + hours * 3600.0:
            break
        order += 1
        heapq.heappush(events, (at, order, "arrive", -1))
    for index in range(ROOMS):
        order += 1
        heapq.heappush(events, (start + 60.0 * index, order, "free", index))
    morning = Morning(limit_minutes=float(settings.queue.anti_starvation_minutes))
    classes = _classes(rng)
    sigma = 0.45
    while events:
        at, _order, kind, index = heapq.heappop(events)
        now = dt.datetime.fromtimestamp(at, dt.UTC)
        if kind == "arrive":
            priority = next(classes)
            outcome = await tickets.issue(db, settings, service_id=service.id, source="reception", priority=priority,
                                          now=now)
            morning.stays[outcome.ticket_id] = Stay(outcome.ticket_id, priority, at)
            continue
        outcome = await tickets.call_next(db, settings, rooms[index].id, now=now)
        if outcome is None or outcome.detail.get("nobody_waiting"):
            if any(kind == "arrive" for _at, _o, kind, _i in events):
                order += 1
                heapq.heappush(events, (at + 60.0, order, "free", index))  # idle: look again in a minute
            continue
        morning.stays[outcome.ticket_id].called = at
        minutes = rng.lognormvariate(math.log(SERVICE_MINUTES) - sigma**2 / 2, sigma)
        order += 1
        heapq.heappush(events, (at + minutes * 60.0, order, "free", index))
    return morning


def report(morning: Morning) -> str:
    waits = morning.waits()
    lines = [f"{'class':10s} {'tickets':>7s} {'mean wait':>10s} {'longest':>8s}"]
    for name, _share in CLASS_MIX:
        values = waits.get(name, [])
        if values:
            lines.append(f"{name:10s} {len(values):7d} {statistics.mean(values):8.1f} m {max(values):6.1f} m")
    lines.append(f"passed over by a ticket more than {morning.limit_minutes:.0f} min younger: "
                 f"{len(morning.passed_over())}; never called: {morning.unserved()}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--load", type=float, default=1.35, help="arrivals / capacity")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/morning.db"
        settings = Settings(database={"url": url})  # type: ignore[arg-type]
        db = Database(url)
        await migrate(db)
        morning = await overfull_morning(db, settings, seed=args.seed, hours=args.hours, load=args.load)
        await db.dispose()
    print(f"over-full morning: {ROOMS} rooms, {args.hours:g} h, load {args.load:g}, seed {args.seed}")
    print(report(morning))


if __name__ == "__main__":
    asyncio.run(main())
