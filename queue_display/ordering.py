"""Who is called next: the queue's ordering policy, pure (no database, no clock of its own).

Policy, in order:
0. Emergencies go first, oldest first.
1. Everyone else is ordered by a virtual arrival: when the ticket (re)entered the line minus its
   class's head start, `weights[priority]` minutes (a returning patient, back from the lab to the
   same doctor, gets the larger of that and `weights["returning"]`). Every head start is capped at
   `starvation_minutes`. This is ageing at one minute per minute from a per-class starting
   point, so classes keep their advantage however long the line (an elderly patient always counts
   20 minutes older than a walk-in who came at the same time), and it bounds being passed over:
   a ticket is never called after a non-emergency ticket that entered the line more than
   `starvation_minutes` after it.
2. Ties by enqueued_at, then by ticket id.

A ticket with a preferred room (a patient back from the lab goes back to the doctor who sent them)
is called only by that room until `preferred_until`; after that any room serving its service may
take it. The caller drops the preferred room when that room is closed, so a closed room strands no one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

PRIORITIES = ("emergency", "elderly", "pregnant", "disabled", "booked", "normal")
URGENT = "emergency"
RETURNING_KEY = "returning"
RETURNING_WEIGHT = 30.0


@dataclass(frozen=True)
class QueueItem:
    ticket_id: int
    service_id: int
    priority: str
    enqueued_at: dt.datetime  # when it (re)entered the waiting line (aware UTC)
    returning: bool = False  # back from lab/transfer to the same doctor
    preferred_room_id: int | None = None
    preferred_until: dt.datetime | None = None  # after this any room of the service may call it; None: never


def head_start_minutes(item: QueueItem, weights: Mapping[str, float], cap_minutes: float = float("inf")) -> float:
    minutes = float(weights.get(item.priority, 0.0))
    if item.returning:
        minutes = max(minutes, float(weights.get(RETURNING_KEY, RETURNING_WEIGHT)))
    return min(max(minutes, 0.0), cap_minutes)


def _sort_key(item: QueueItem, weights: Mapping[str, float], starvation_minutes: float) -> tuple[int, float, float, int]:
    enqueued = item.enqueued_at.timestamp()
    if item.priority == URGENT:
        return (0, enqueued, enqueued, item.ticket_id)
    virtual_arrival = enqueued - head_start_minutes(item, weights, starvation_minutes) * 60.0
    return (1, virtual_arrival, enqueued, item.ticket_id)


def order_waiting(items: Sequence[QueueItem], now: dt.datetime, weights: Mapping[str, float],
                  starvation_minutes: float) -> list[QueueItem]:
    """All waiting items in the order they would be called (room preferences aside)."""
    return sorted(items, key=lambda item: _sort_key(item, weights, starvation_minutes))


def may_serve(item: QueueItem, room_id: int, room_service_ids: Collection[int], now: dt.datetime) -> bool:
    if item.service_id not in room_service_ids:
        return False
    if item.preferred_room_id is None or item.preferred_room_id == room_id:
        return True
    return item.preferred_until is not None and now >= item.preferred_until


def next_for_room(items: Sequence[QueueItem], room_id: int, room_service_ids: Collection[int], now: dt.datetime,
                  weights: Mapping[str, float], starvation_minutes: float) -> QueueItem | None:
    """The item this room should call now, across all the services it serves; None if none."""
    candidates = [item for item in items if may_serve(item, room_id, room_service_ids, now)]
    if not candidates:
        return None
    return min(candidates, key=lambda item: _sort_key(item, weights, starvation_minutes))


def order_for_room(items: Sequence[QueueItem], room_id: int, room_service_ids: Collection[int], now: dt.datetime,
                   weights: Mapping[str, float], starvation_minutes: float) -> list[QueueItem]:
    """Every item this room may call now, in the order it should call them (next_for_room first)."""
    candidates = [item for item in items if may_serve(item, room_id, room_service_ids, now)]
    return sorted(candidates, key=lambda item: _sort_key(item, weights, starvation_minutes))


def head_group(item: QueueItem) -> tuple[str, bool]:
    """Items of one group share their head start, so within a group the call order is (enqueued_at, ticket_id)."""
    return item.priority, item.returning


def order_from_heads(heads: Sequence[QueueItem], per_group: int, room_id: int, room_service_ids: Collection[int],
                     now: dt.datetime, weights: Mapping[str, float], starvation_minutes: float,
                     ) -> tuple[list[QueueItem], bool]:
    """The start of order_for_room over the whole line, from only its head: the first `per_group` items this
    room may call of each head_group, in (enqueued_at, ticket_id) order. Returns the items whose place is
    certain (every item up to the first that a group's unread rest could precede; at least the first
    `per_group`) and whether they are the room's whole order (no group had more than it gave)."""
    ordered = order_for_room(heads, room_id, room_service_ids, now, weights, starvation_minutes)
    groups: dict[tuple[str, bool], list[tuple[int, float, float, int]]] = {}
    for item in heads:
        groups.setdefault(head_group(item), []).append(_sort_key(item, weights, starvation_minutes))
    cut = [max(keys) for keys in groups.values() if len(keys) >= per_group]
    if not cut:
        return ordered, True
    bound = min(cut)
    return [item for item in ordered if _sort_key(item, weights, starvation_minutes) <= bound], False
