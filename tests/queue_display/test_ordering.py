"""The ordering policy: priorities as capped head starts, emergencies first, returning patients, ties."""

from __future__ import annotations

import datetime as dt

from queue_display.ordering import PRIORITIES, QueueItem, next_for_room, order_for_room, order_waiting

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
WEIGHTS = {"emergency": 100.0, "elderly": 20.0, "pregnant": 20.0, "disabled": 20.0, "booked": 10.0, "normal": 0.0}
STARVE = 30.0


def item(ticket_id: int, minutes_ago: float, priority: str = "normal", service_id: int = 1, **kw: object) -> QueueItem:
    return QueueItem(ticket_id=ticket_id, service_id=service_id, priority=priority,
                     enqueued_at=NOW - dt.timedelta(minutes=minutes_ago), **kw)  # type: ignore[arg-type]


def ids(items: list[QueueItem]) -> list[int]:
    return [i.ticket_id for i in items]


def test_fifo_within_a_class_and_ties_by_id() -> None:
    items = [item(3, 5), item(1, 10), item(2, 10), item(4, 1)]
    assert ids(order_waiting(items, NOW, WEIGHTS, STARVE)) == [1, 2, 3, 4]


def test_priority_is_a_head_start_in_minutes() -> None:
    # elderly 20 min head start: passes normals who arrived less than 20 minutes before it
    items = [item(1, 25), item(2, 15), item(3, 2, "elderly"), item(4, 1, "booked")]
    assert ids(order_waiting(items, NOW, WEIGHTS, STARVE)) == [1, 3, 2, 4]
    # an emergency goes before everyone
    items.append(item(5, 0, "emergency"))
    assert ids(order_waiting(items, NOW, WEIGHTS, STARVE))[0] == 5


def test_weights_are_configurable() -> None:
    items = [item(1, 5), item(2, 1, "booked")]
    assert ids(order_waiting(items, NOW, WEIGHTS, STARVE)) == [2, 1]
    assert ids(order_waiting(items, NOW, {**WEIGHTS, "booked": 0.0}, STARVE)) == [1, 2]
    # an unknown priority counts as normal
    assert ids(order_waiting([item(1, 1, "vip"), item(2, 2)], NOW, WEIGHTS, STARVE)) == [2, 1]


def test_classes_keep_their_head_start_however_long_the_line() -> None:
    # everyone has waited far beyond the limit: the elderly still count 20 minutes older, booked 10
    items = [item(1, 95), item(2, 82, "elderly"), item(3, 90, "booked"), item(4, 120), item(5, 76, "pregnant")]
    assert ids(order_waiting(items, NOW, WEIGHTS, STARVE)) == [4, 2, 3, 5, 1]
    # an emergency first, even one that just arrived
    assert ids(order_waiting([*items, item(6, 0, "emergency")], NOW, WEIGHTS, STARVE))[0] == 6


def test_nobody_is_passed_by_a_ticket_that_came_more_than_the_limit_later() -> None:
    # head starts are capped at the limit, however they are configured
    weights = {**WEIGHTS, "elderly": 500.0}
    normal = item(1, 31)
    elderly = item(2, 0, "elderly")
    assert ids(order_waiting([elderly, normal], NOW, weights, STARVE)) == [1, 2]
    assert ids(order_waiting([elderly, item(3, 29)], NOW, weights, STARVE)) == [2, 3]
    # a steady stream of elderly arrivals cannot keep a normal back beyond the limit
    stream = [item(100 + k, k * 0.5, "elderly") for k in range(60)]
    order = ids(order_waiting([*stream, item(1, 20.5)], NOW, WEIGHTS, STARVE))
    assert all(ticket > 100 and (ticket - 100) * 0.5 > 0.5 for ticket in order[:order.index(1)])
    assert all((ticket - 100) * 0.5 <= 0.5 for ticket in order[order.index(1) + 1:])


def test_returning_patient_goes_back_to_the_same_room_with_priority() -> None:
    until = NOW + dt.timedelta(minutes=30)
    returning = item(9, 1, returning=True, preferred_room_id=3, preferred_until=until)
    items = [item(1, 40), item(2, 10), returning]
    assert next_for_room(items, 3, {1}, NOW, WEIGHTS, STARVE) == items[0]  # passes nobody by more than the limit
    assert next_for_room(items[1:], 3, {1}, NOW, WEIGHTS, STARVE) == returning
    # another room of the same service does not take it
    assert ids([next_for_room(items[1:], 4, {1}, NOW, WEIGHTS, STARVE)]) == [2]  # type: ignore[list-item]
    # unless its own room kept it for the whole hold time: then any room of the service takes it
    assert next_for_room(items[1:], 4, {1}, until, WEIGHTS, STARVE) == returning
    # a preferred room without a time limit keeps it for good
    forever = item(9, 1, returning=True, preferred_room_id=3)
    assert next_for_room([forever], 4, {1}, NOW + dt.timedelta(days=1), WEIGHTS, STARVE) is None
    # "returning" weight configurable
    assert next_for_room(items[1:], 3, {1}, NOW, {**WEIGHTS, "returning": 0.0}, STARVE).ticket_id == 2  # type: ignore[union-attr]


def test_next_for_room_spans_the_rooms_services_only() -> None:
    items = [item(1, 20, service_id=2), item(2, 10, service_id=1), item(3, 30, service_id=5)]
    assert next_for_room(items, 1, {1, 2}, NOW, WEIGHTS, STARVE).ticket_id == 1  # type: ignore[union-attr]
    assert next_for_room(items, 1, {1}, NOW, WEIGHTS, STARVE).ticket_id == 2  # type: ignore[union-attr]
    assert next_for_room(items, 1, {7}, NOW, WEIGHTS, STARVE) is None
    assert next_for_room([], 1, {1}, NOW, WEIGHTS, STARVE) is None


def test_a_rooms_order_starts_with_its_next_and_calls_each_in_turn() -> None:
    """order_for_room (call-next claims down it) is next_for_room applied again and again."""
    items = [item(i, (i * 7) % 40, PRIORITIES[i % len(PRIORITIES)], service_id=1 + i % 3,
                  **({"preferred_room_id": 2, "preferred_until": NOW + dt.timedelta(minutes=5), "returning": True}
                     if i % 5 == 0 else {})) for i in range(1, 30)]
    order, remaining = order_for_room(items, 1, {1, 2}, NOW, WEIGHTS, STARVE), list(items)
    for expected in order:
        assert next_for_room(remaining, 1, {1, 2}, NOW, WEIGHTS, STARVE) == expected
        remaining.remove(expected)
    assert next_for_room(remaining, 1, {1, 2}, NOW, WEIGHTS, STARVE) is None


def test_every_priority_is_known() -> None:
    assert set(PRIORITIES) <= set(WEIGHTS)
    order = order_waiting([item(i, 1, p) for i, p in enumerate(PRIORITIES)], NOW, WEIGHTS, STARVE)
    assert order[0].priority == "emergency" and order[-1].priority == "normal"


def test_an_emergency_goes_before_even_a_starved_ticket() -> None:
    import datetime as dt

    from queue_display.ordering import QueueItem, next_for_room, order_waiting

    now = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)
    weights = {"emergency": 100.0, "elderly": 20.0, "normal": 0.0}
    starved = QueueItem(1, 7, "normal", now - dt.timedelta(minutes=90))  # long past the limit
    elderly = QueueItem(2, 7, "elderly", now - dt.timedelta(minutes=5))
    emergency = QueueItem(3, 7, "emergency", now - dt.timedelta(seconds=10))
    later_emergency = QueueItem(4, 7, "emergency", now)
    order = order_waiting([starved, elderly, later_emergency, emergency], now, weights, 30)
    assert [item.ticket_id for item in order] == [3, 4, 1, 2]
    assert next_for_room([starved, elderly, emergency], 1, {7}, now, weights, 30) == emergency
