"""Who is called next: the queue's ordering policy, pure (no database, no clock of its own).

Policy, in order:
0. Emergencies go first, oldest first: nothing, not even a long wait, is put before them.
1. Anti-starvation: a ticket that has waited longer than `starvation_minutes` since it
   (re)entered the line goes before every other ticket but emergencies, whatever its priority;
   starved tickets among themselves go oldest first.
2. Otherwise each ticket gets a head start of `weights[priority]` minutes (a priority ticket
   is ordered as if it had arrived that many minutes earlier). A returning patient (back from
   the lab to the same doctor) gets the larger of its class's head start and
   `weights["returning"]` minutes (default RETURNING_WEIGHT).
3. Ties by enqueued_at, then by ticket id.

A ticket with a preferred room (a returning patient goes back to the doctor who sent it) is
called only by that room, unless it has starved; then any room serving its service may take it,
so a closed or busy preferred room never strands a patient.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

PRIORITIES = ("emergency", "elderly", "pregnant", "disabled", "booked", "normal")
URGENT = "emergency"
RETURNING_KEY = "returning"
RETURNING_WEIGHT = 50.0


@dataclass(frozen=True)
class QueueItem:
    ticket_id: int
    service_id: int
    priority: str
    enqueued_at: dt.datetime  # when it (re)entered the waiting line (aware UTC)
    returning: bool = False  # back from lab/transfer to the same doctor
    preferred_room_id: int | None = None


def head_start_minutes(item: QueueItem, weights: Mapping[str, float]) -> float:
    minutes = float(weights.get(item.priority, 0.0))
    if item.returning:
        minutes = max(minutes, float(weights.get(RETURNING_KEY, RETURNING_WEIGHT)))
    return minutes


def is_starved(item: QueueItem, now: dt.datetime, starvation_minutes: float) -> bool:
    return (now - item.enqueued_at).total_seconds() > starvation_minutes * 60.0


def _sort_key(item: QueueItem, now: dt.datetime, weights: Mapping[str, float],
              starvation_minutes: float) -> tuple[int, float, float, int]:
    enqueued = item.enqueued_at.timestamp()
    if item.priority == URGENT:
        return (0, enqueued, enqueued, item.ticket_id)
    if is_starved(item, now, starvation_minutes):
        return (1, enqueued, enqueued, item.ticket_id)
    virtual_arrival = enqueued - head_start_minutes(item, weights) * 60.0
    return (2, virtual_arrival, enqueued, item.ticket_id)


def order_waiting(items: Sequence[QueueItem], now: dt.datetime, weights: Mapping[str, float],
                  starvation_minutes: float) -> list[QueueItem]:
    """All waiting items in the order they would be called (room preferences aside)."""
    return sorted(items, key=lambda item: _sort_key(item, now, weights, starvation_minutes))


def may_serve(item: QueueItem, room_id: int, room_service_ids: Collection[int], now: dt.datetime,
              starvation_minutes: float) -> bool:
    if item.service_id not in room_service_ids:
        return False
    if item.preferred_room_id is None or item.preferred_room_id == room_id:
        return True
    return is_starved(item, now, starvation_minutes)


def next_for_room(items: Sequence[QueueItem], room_id: int, room_service_ids: Collection[int], now: dt.datetime,
                  weights: Mapping[str, float], starvation_minutes: float) -> QueueItem | None:
    """The item this room should call now, across all the services it serves; None if none."""
    candidates = [item for item in items if may_serve(item, room_id, room_service_ids, now, starvation_minutes)]
    if not candidates:
        return None
    return min(candidates, key=lambda item: _sort_key(item, now, weights, starvation_minutes))
