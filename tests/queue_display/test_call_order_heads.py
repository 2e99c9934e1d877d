"""call-next reads only the head of a room's line (tickets.HEADS tickets of each group of one head start),
checked against the rule itself over the whole line (ordering.order_for_room, next_for_room): priorities,
emergencies, capped head starts, ties, returning patients held for their own doctor's room (open, closed,
gone, hold over)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from clinicall.db import Database
from clinicall.settings import Settings
from queue_display import tickets
from queue_display.catalog import RoomIn, ServiceIn, create_room, create_service
from queue_display.models import QueueRoom, Ticket
from queue_display.ordering import PRIORITIES, QueueItem, next_for_room, order_for_room, order_from_heads

NOW = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
GONE_ROOM = 9999


async def fill(db: Database, settings: Settings) -> dict[str, int]:
    """Services A, B, C; rooms one (A, B), two (A), closed (A, closed), lab (C); 70 tickets waiting."""
    services = [await create_service(db, ServiceIn(prefix=p, names={"vi": p})) for p in "ABC"]
    a, b, c = (x.id for x in services)
    rooms = {name: (await create_room(db, RoomIn(kind=kind, number=n, service_ids=ids, open=is_open))).id  # type: ignore[arg-type]
             for name, kind, n, ids, is_open in (("one", "consult", 1, [a, b], True), ("two", "consult", 2, [a], True),
                                                 ("closed", "consult", 3, [a], False), ("lab", "lab", 1, [c], True))}
    pick = random.Random(16)
    day = NOW.date()
    rows = []
    for seq in range(1, 71):
        returning = pick.random() < 0.3
        preferred = pick.choice([None, rooms["one"], rooms["two"], rooms["closed"], GONE_ROOM]) if returning else None
        service = pick.choice([a, a, b, c])
        # whole minutes: equal virtual arrivals across classes (elderly at t, normal 20 minutes earlier); some
        # returning patients came back longer ago than the hold
        enqueued = NOW - dt.timedelta(minutes=pick.randrange(0, 120))
        rows.append(Ticket(service_id=service, issued_service_id=service, local_day=day, seq=seq,
                           number=f"X{seq:03d}", token=f"heads-{seq}", priority=pick.choice(PRIORITIES),
                           source="kiosk", status="waiting", is_returning=returning, preferred_room_id=preferred,
                           issued_at=enqueued, enqueued_at=enqueued, updated_at=enqueued))
    async with db.transaction() as s:
        s.add_all(rows)
    return rooms


async def whole_line(db: Database, settings: Settings) -> tuple[dict[int, Any], list[QueueItem]]:
    async with db.session() as s:
        rooms = {r.id: r for r in (await s.scalars(select(QueueRoom))).all()}
        waiting = (await s.scalars(select(Ticket).where(Ticket.status == "waiting"))).all()
    open_rooms = {r.id for r in rooms.values() if r.open}
    return rooms, [tickets.queue_item(t, settings, open_rooms) for t in waiting]


async def head_order(db: Database, settings: Settings, rooms: dict[int, Any], room_id: int,
                     per_group: int) -> tuple[list[QueueItem], bool]:
    def read(conn: Any) -> list[Any]:
        return tickets._candidates(conn, rooms[room_id], rooms, settings, NOW)

    open_rooms = {r.id for r in rooms.values() if r.open}
    heads = [tickets.queue_item(row, settings, open_rooms) for row in await db.run_sync(read)
             if row.status == "waiting"]
    queue = settings.queue
    return order_from_heads(heads, per_group, room_id, rooms[room_id].service_ids, NOW, queue.priority_weights,
                            float(queue.anti_starvation_minutes))


async def test_the_head_of_the_line_orders_and_calls_as_the_whole_line_does(
        db: Database, db_url: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(db_url)
    queue = settings.queue
    weights, starvation = queue.priority_weights, float(queue.anti_starvation_minutes)
    names = await fill(db, settings)
    calling = [names["one"], names["two"], names["lab"]]

    rooms, line = await whole_line(db, settings)
    for per_group in (1, 2, 3, 100):
        monkeypatch.setattr(tickets, "HEADS", per_group)
        for room_id in calling:
            expected = order_for_room(line, room_id, rooms[room_id].service_ids, NOW, weights, starvation)
            ordered, whole = await head_order(db, settings, rooms, room_id, per_group)
            assert ordered and ordered == expected[:len(ordered)]
            assert ordered == expected if whole else len(ordered) >= min(per_group, len(expected))
            assert whole or per_group < 100

    # call-next from the head calls, every time, the ticket the rule picks from the whole line
    monkeypatch.setattr(tickets, "HEADS", 2)
    calls = 0
    while True:
        rooms, line = await whole_line(db, settings)
        room_id = calling[calls % 3]
        if not any(next_for_room(line, r, rooms[r].service_ids, NOW, weights, starvation) for r in calling):
            break
        expected_next = next_for_room(line, room_id, rooms[room_id].service_ids, NOW, weights, starvation)
        outcome = await tickets.call_next(db, settings, room_id, now=NOW)
        called = outcome.ticket_id if outcome is not None and not outcome.detail.get("nobody_waiting") else None
        assert called == (expected_next.ticket_id if expected_next else None)
        calls += 1
    assert calls > 0


async def test_a_head_taken_meanwhile_falls_back_to_the_whole_line(
        db: Database, db_url: str, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(db_url)
    queue = settings.queue
    names = await fill(db, settings)
    monkeypatch.setattr(tickets, "HEADS", 1)
    rooms, line = await whole_line(db, settings)
    room = rooms[names["one"]]
    order = order_for_room(line, room.id, room.service_ids, NOW, queue.priority_weights,
                           float(queue.anti_starvation_minutes))

    def stale_claim(conn: Any) -> Any:
        heads = [row for row in tickets._candidates(conn, room, rooms, settings, NOW) if row.status == "waiting"]
        conn.execute(tickets.statements(conn)["claim"], {"services": room.service_ids, "room": names["two"], "now": NOW,
                                            "pick": order[0].ticket_id})  # another room takes the head first
        return tickets._claim_next(conn, db.is_postgres, settings, room, rooms, heads, NOW)

    claimed = await db.run_sync(stale_claim)
    assert claimed is not None and claimed.id == order[1].ticket_id
