"""Priorities that hold in a long, over-full morning (the real operations with a simulated clock,
bench/queue_priorities.py): every class waits less than walk-ins on average, emergencies least,
nobody is passed over by a ticket that entered the line more than the limit after them, nobody is
left unserved."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.queue_priorities import overfull_morning, report
from clinicall.db import Database
from clinicall.settings import Settings


async def test_an_over_full_morning_keeps_every_class_ahead_of_walk_ins(
        sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sqlite_url)
    db = Database(sqlite_url)
    try:
        morning = await overfull_morning(db, settings, seed=7, hours=4.0, load=1.35)
    finally:
        await db.dispose()
    print(report(morning))
    waits = morning.waits()
    limit = settings.queue.anti_starvation_minutes
    assert max(waits["normal"]) > 2 * limit  # over-full: waits far beyond the limit
    walk_in = statistics.mean(waits["normal"])
    for name in ("booked", "elderly", "pregnant", "disabled", "emergency"):
        assert len(waits[name]) >= 3, name
        assert statistics.mean(waits[name]) < walk_in, (name, report(morning))
    assert statistics.mean(waits["emergency"]) < min(statistics.mean(v) for k, v in waits.items() if k != "emergency")
    assert morning.passed_over() == []
    assert morning.unserved() == 0


def test_the_passed_over_check_sees_a_late_ticket_called_first() -> None:
    from bench.queue_priorities import Morning, Stay

    morning = Morning(limit_minutes=30.0)
    morning.stays = {1: Stay(1, "normal", 0.0, 3000.0), 2: Stay(2, "elderly", 1900.0, 2000.0),
                     3: Stay(3, "emergency", 2500.0, 2600.0), 4: Stay(4, "booked", 1000.0, 1100.0)}
    assert morning.passed_over() == [(1, 2)]  # 2 entered 31:40 after 1; the emergency may pass anyone
