"""WaitEstimator: learning service times, residual service time, the forward simulation of the queue."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from zoneinfo import ZoneInfo

import pytest

from queue_display.estimator import (
    Away,
    Held,
    Lognormal,
    RoomState,
    WaitEstimator,
    WaitRange,
    _ranges,
    clinic_estimator,
)
from queue_display.ordering import PRIORITIES, QueueItem, next_for_room

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WEIGHTS = {"emergency": 100.0, "elderly": 20.0, "pregnant": 20.0, "disabled": 20.0, "booked": 10.0, "normal": 0.0}
DAY = dt.datetime(2026, 3, 2, tzinfo=TZ)  # a Monday, local midnight
GENERAL, LAB = 1, 2


def local(day: int, hour: float) -> dt.datetime:
    return (DAY + dt.timedelta(days=day, hours=hour)).astimezone(dt.UTC)


def item(ticket_id: int, enqueued: dt.datetime, priority: str = "normal", service_id: int = GENERAL,
         returning: bool = False, preferred: int | None = None) -> QueueItem:
    return QueueItem(ticket_id, service_id, priority, enqueued, returning, preferred)


def idle(room_id: int, *services: int, open: bool = True) -> RoomState:
    return RoomState(room_id, services or (GENERAL,), open, None, None)


def make() -> WaitEstimator:
    return WaitEstimator(TZ, WEIGHTS, 30)


def train_service(estimator: WaitEstimator, room_id: int, service_id: int, minutes: float, count: int,
                  hour: float = 9.0, sigma: float = 0.3, seed: int = 1, days: int = 20) -> None:
    rng = random.Random(seed)
    for n in range(count):
        start = local(n % days, hour + rng.uniform(0, 0.9))
        seconds = minutes * 60.0 * math.exp(rng.gauss(-sigma * sigma / 2, sigma))
        estimator.record_service(room_id, service_id, start, start + dt.timedelta(seconds=seconds))


def _assert_sane(spans: dict[int, WaitRange], waiting: list[QueueItem]) -> None:
    """Every waiting ticket has a finite, non-negative wait inside its range, and down one line of one kind
    of ticket (called first come, first served) neither the wait nor its range ends decrease."""
    assert set(spans) == {i.ticket_id for i in waiting}
    for span in spans.values():
        assert all(math.isfinite(v) for v in (span.seconds, span.low, span.high))
        assert 0.0 <= span.low <= span.seconds <= span.high < 7 * 86400.0
    lines: dict[tuple[int, str, bool, int | None], list[QueueItem]] = {}
    for i in sorted(waiting, key=lambda i: (i.enqueued_at, i.ticket_id)):
        lines.setdefault((i.service_id, i.priority, i.returning, i.preferred_room_id), []).append(i)
    for line in lines.values():
        for end in ("seconds", "low", "high"):
            values = [getattr(spans[i.ticket_id], end) for i in line]
            assert values == sorted(values)


def test_no_data_gives_sensible_defaults() -> None:
    estimator = make()
    now = local(0, 9)
    waiting = [item(1, now - dt.timedelta(minutes=5)), item(2, now - dt.timedelta(minutes=1)),
               item(3, now, service_id=99)]
    result = estimator.estimate(now, waiting, [idle(1)])
    assert result[1] == 0.0  # an idle open room calls the first ticket at once
    assert result[2] == pytest.approx(600.0, rel=0.1)  # one default (10-minute) service later
    assert 600.0 <= result[3] < 24 * 3600  # no room serves it: still a finite, honest guess
    assert estimator.estimate(now, [], [idle(1)]) == {}
    assert estimator.service_time(5, 5, 9).mean == pytest.approx(600.0)


def test_days_unlike_the_ones_it_learned_from_give_sane_waits() -> None:
    """The clinic's sampled estimator on days it has not seen: a room with no history, a service created
    today, a doctor who never closes, no room or one, 500 waiting, clocks that jump back or far ahead,
    a zone changing its clocks. Waits stay finite, non-negative, inside their ranges, and never
    decrease down a line of one kind; a newcomer's too."""
    new_service = 77
    learned = clinic_estimator(TZ, WEIGHTS, 30)
    train_service(learned, 1, GENERAL, 9.0, 80)
    train_service(learned, 3, LAB, 4.0, 40, seed=3)
    rng = random.Random(3)
    for day in range(12):
        for n in range(30):
            learned.record_arrival(rng.choice((GENERAL, LAB)), local(day, 7 + n / 4), rng.choice(PRIORITIES))
        for room_id, hour, open in ((1, 7.0, True), (1, 11.5, False), (1, 12.5, True), (1, 17.0, False)):
            learned.record_room_state(room_id, open, local(day, hour))
        learned.record_no_show(1, GENERAL, local(day, 10), local(day, 10.05))
    now = local(30, 10)

    def line(count: int, service_id: int = GENERAL, start: int = 1, spread: float = 90.0) -> list[QueueItem]:
        return [item(start + n, now - dt.timedelta(minutes=spread * (count - n) / count),
                     PRIORITIES[n % len(PRIORITIES)], service_id, n % 7 == 3, 1 if n % 11 == 5 else None)
                for n in range(count)]

    long_visit = RoomState(1, (GENERAL,), True, now - dt.timedelta(hours=10), GENERAL)  # "done" never pressed
    strange = RoomState(9, (GENERAL, new_service), True, now - dt.timedelta(minutes=5), new_service)  # no history
    cases: list[tuple[WaitEstimator, dt.datetime, list[QueueItem], list[RoomState]]] = [
        (learned, now, line(30), [long_visit, strange]),
        (learned, now, [*line(5), *line(8, new_service, start=100)], [strange]),  # a service created today
        (learned, now, line(12), []),  # no room at all
        (learned, now, line(12), [idle(1, open=False)]),  # its only room closed
        (learned, now, line(12), [RoomState(4, (LAB,), True, None, None)]),  # a room for another service
        (learned, now, line(500, spread=240.0), [long_visit, idle(2), RoomState(3, (LAB, GENERAL), True, None, None)]),
        # clocks: the tickets and the visit in progress stamped up to an hour after "now" (a clock put back)
        (learned, now - dt.timedelta(hours=1), line(20), [RoomState(1, (GENERAL,), True, now, GENERAL)]),
        (learned, now + dt.timedelta(days=400), line(20), [idle(1)]),  # a year on: nothing learned is recent
        (learned, local(-400, 3), line(20), [idle(1)]),  # long before anything learned, at 3 in the night
        # a zone that changes its clocks tonight (plan.fixed is None), with nothing learned
        (clinic_estimator(ZoneInfo("Europe/Paris"), WEIGHTS, 30), dt.datetime(2026, 3, 28, 23, tzinfo=dt.UTC),
         [item(n, dt.datetime(2026, 3, 28, 22, n, tzinfo=dt.UTC)) for n in range(1, 15)], [idle(1)]),
    ]
    # a room serving nothing, one listed twice, results due an hour from now, a hold stamped in the future
    odd_rooms = [RoomState(5, (), True, None, None), idle(2), idle(2), RoomState(3, (LAB,), True, now, LAB, 999)]
    odd = {"away": [Away(1, GENERAL, "normal", done_at=now + dt.timedelta(hours=1)), Away(2, GENERAL, "normal", 999)],
           "held": [Held(item(998, now - dt.timedelta(minutes=3)), now + dt.timedelta(minutes=10))]}
    tickets = learned.estimate_with_newcomers(now, line(25), odd_rooms, newcomers=[GENERAL], **odd)[0]
    _assert_sane(tickets, line(25))
    for estimator, at, waiting, rooms in cases:
        tickets, newcomers = estimator.estimate_with_newcomers(at, waiting, rooms, newcomers=[GENERAL, new_service])
        _assert_sane(tickets, waiting)
        for service_id, joining in newcomers.items():
            assert math.isfinite(joining.high) and 0.0 <= joining.low <= joining.seconds <= joining.high
            ahead = [tickets[i.ticket_id].seconds for i in waiting if i.service_id == service_id and i.enqueued_at <= at
                     and (i.priority, i.returning, i.preferred_room_id) == ("normal", False, None)]
            assert joining.seconds >= max(ahead, default=0.0) - 1e-6  # behind every normal walk-in of its line
        _assert_sane(make().estimate_ranges(at, waiting, rooms), waiting)  # the expected path too


def test_learns_service_times_per_room_with_shrinkage_for_thin_data() -> None:
    estimator = make()
    train_service(estimator, 1, GENERAL, 6.0, 300)
    train_service(estimator, 2, GENERAL, 15.0, 300, seed=2)
    train_service(estimator, 3, GENERAL, 30.0, 2, seed=3)  # two long ones only
    assert estimator.service_time(1, GENERAL, 9).mean == pytest.approx(360.0, rel=0.1)
    assert estimator.service_time(2, GENERAL, 9).mean == pytest.approx(900.0, rel=0.1)
    thin = estimator.service_time(3, GENERAL, 9).mean
    service_level = estimator.service_time(99, GENERAL, 9).mean  # a room never seen: the service's figure
    assert service_level < thin < 1800.0  # pulled toward the service's estimate, still above it
    # a slow room makes its queue longer
    now = local(30, 9)
    waiting = [item(n, now - dt.timedelta(minutes=10 - n)) for n in range(1, 4)]
    fast = estimator.estimate(now, waiting, [idle(1)])
    slow = estimator.estimate(now, waiting, [idle(2)])
    assert fast[3] == pytest.approx(2 * 360.0, rel=0.15)
    assert slow[3] == pytest.approx(2 * 900.0, rel=0.15)


def test_learns_time_of_day_bands() -> None:
    estimator = make()
    train_service(estimator, 1, GENERAL, 12.0, 200, hour=8.0)
    train_service(estimator, 1, GENERAL, 5.0, 200, hour=14.0, seed=4)
    train_service(estimator, 2, GENERAL, 8.0, 200, hour=8.0, seed=5)  # room 2 seen in the morning only
    assert estimator.service_time(1, GENERAL, 8).mean == pytest.approx(720.0, rel=0.1)
    assert estimator.service_time(1, GENERAL, 14).mean == pytest.approx(300.0, rel=0.1)
    # room 2 in the afternoon borrows the service's afternoon effect: faster than its morning
    assert estimator.service_time(2, GENERAL, 14).mean < 0.8 * estimator.service_time(2, GENERAL, 8).mean


def test_residual_time_is_conditional_on_elapsed_not_mean_minus_elapsed() -> None:
    dist = Lognormal(math.log(600.0), 0.6)
    assert dist.residual(0.0) == pytest.approx(dist.mean)
    # Monte Carlo check of E[S - t | S > t]
    rng = random.Random(7)
    draws = [rng.lognormvariate(dist.mu, dist.sigma) for _ in range(200_000)]
    for elapsed in (300.0, 900.0, 1500.0):
        tail = [d - elapsed for d in draws if d > elapsed]
        assert dist.residual(elapsed) == pytest.approx(sum(tail) / len(tail), rel=0.05)
    # a consultation running past its mean still has a positive, growing expected remainder
    assert dist.residual(2 * dist.mean) > 0.3 * dist.mean
    assert dist.residual(10 * dist.mean) > dist.residual(2 * dist.mean)
    assert math.isfinite(dist.residual(1e7))

    estimator = make()
    train_service(estimator, 1, GENERAL, 10.0, 300, sigma=0.6)
    now = local(30, 9.5)
    waiting = [item(1, now)]
    busy = [RoomState(1, (GENERAL,), True, now - dt.timedelta(minutes=25), GENERAL)]
    learned = estimator.service_time(1, GENERAL, 9)
    assert estimator.estimate(now, waiting, busy)[1] == pytest.approx(learned.residual(1500.0), rel=1e-6)
    assert estimator.estimate(now, waiting, busy)[1] > 0


def test_priority_ticket_moves_ahead_and_pushes_others_back() -> None:
    estimator = make()
    train_service(estimator, 1, GENERAL, 10.0, 100)
    now = local(30, 9)
    busy = RoomState(1, (GENERAL,), True, now, GENERAL)
    normals = [item(n, now - dt.timedelta(minutes=10 - n)) for n in range(1, 4)]
    before = estimator.estimate(now, normals, [busy])
    elderly = item(9, now, "elderly")  # 20-minute head start: ahead of all three
    after = estimator.estimate(now, [*normals, elderly], [busy])
    assert after[9] == pytest.approx(before[1], rel=1e-6)
    for n in (1, 2, 3):
        assert after[n] > before[n] + 300.0
    # a starved normal ticket (waited > 30 minutes) goes before the elderly one
    starved = item(4, now - dt.timedelta(minutes=31))
    third = estimator.estimate(now, [*normals, elderly, starved], [busy])
    assert third[4] < third[9]


def test_returning_patient_waits_for_its_own_room() -> None:
    estimator = make()
    train_service(estimator, 1, GENERAL, 10.0, 100)
    train_service(estimator, 2, GENERAL, 10.0, 100, seed=3)
    now = local(30, 9)
    rooms = [RoomState(1, (GENERAL,), True, now - dt.timedelta(minutes=2), GENERAL), idle(2)]
    back = item(5, now, returning=True, preferred=1)
    result = estimator.estimate(now, [back, item(6, now)], rooms)
    assert result[6] == 0.0  # room 2 takes the walk-in at once
    assert result[5] > 240.0  # the returning patient waits for doctor 1 to finish


def test_closed_rooms_do_not_serve() -> None:
    estimator = make()
    train_service(estimator, 1, GENERAL, 10.0, 100)
    train_service(estimator, 2, GENERAL, 10.0, 100, seed=2)
    now = local(30, 9)
    waiting = [item(n, now - dt.timedelta(minutes=20 - n)) for n in range(1, 7)]
    both = estimator.estimate(now, waiting, [idle(1), idle(2)])
    one = estimator.estimate(now, waiting, [idle(1), idle(2, open=False)])
    assert one[6] > 1.7 * both[6]
    # every room of the service closed: assumed back after closed_room_seconds, not "now"
    none_open = estimator.estimate(now, waiting, [idle(1, open=False)])
    assert none_open[1] >= estimator.closed_room_seconds


def test_expected_priority_arrivals_lengthen_a_normal_wait() -> None:
    quiet, busy = make(), make()
    for estimator in (quiet, busy):
        train_service(estimator, 1, GENERAL, 10.0, 100)
    for day in range(10):  # six emergencies an hour, every morning
        for n in range(18):
            busy.record_arrival(GENERAL, local(day, 8 + n / 6), "emergency")
    now = local(30, 8.5)
    waiting = [item(n, now - dt.timedelta(minutes=5 - n)) for n in range(1, 5)]
    rooms = [RoomState(1, (GENERAL,), True, now, GENERAL)]
    assert busy.estimate(now, waiting, rooms)[4] > quiet.estimate(now, waiting, rooms)[4] + 600.0
    # an emergency ticket itself is not delayed by future normal arrivals
    first = item(7, now, "emergency")
    assert busy.estimate(now, [*waiting, first], rooms)[7] == pytest.approx(
        quiet.estimate(now, [*waiting, first], rooms)[7], abs=120.0)


def _reference(estimator: WaitEstimator, now: dt.datetime, waiting: list[QueueItem],
               rooms: list[RoomState]) -> dict[int, float]:
    """The plain forward simulation: next_for_room over the whole remaining queue at every step."""
    free: list[tuple[float, int]] = []
    for index, room in enumerate(rooms):
        if not room.open:
            continue
        start = now.timestamp()
        if room.serving_since is not None and room.serving_service_id is not None:
            hour = room.serving_since.astimezone(TZ).hour
            elapsed = (now - room.serving_since).total_seconds()
            start += estimator.service_time(room.room_id, room.serving_service_id, hour).residual(elapsed)
        free.append((start, index))
    closed = {room.room_id for room in rooms if not room.open}  # as tickets.queue_item: anyone's
    remaining = [dataclasses.replace(i, preferred_room_id=None) if i.preferred_room_id in closed else i
                 for i in waiting]
    result: dict[int, float] = {}
    while free and remaining:
        free.sort()
        at, index = free.pop(0)
        room = rooms[index]
        chosen = next_for_room(remaining, room.room_id, room.service_ids, dt.datetime.fromtimestamp(at, dt.UTC),
                               WEIGHTS, 30)
        if chosen is None:
            starving = [i.enqueued_at.timestamp() + 1801 for i in remaining
                        if i.service_id in room.service_ids and i.enqueued_at.timestamp() + 1801 > at]
            if starving:
                free.append((min(starving), index))
            continue
        remaining.remove(chosen)
        result[chosen.ticket_id] = at - now.timestamp()
        kind = "returning" if chosen.returning else chosen.priority
        free.append((at + estimator.expected_occupation(room.room_id, chosen.service_id, at, kind), index))
    return result


@pytest.mark.parametrize("seed", range(8))
def test_fast_simulation_with_arrivals_and_breaks_matches_next_for_room(seed: int) -> None:
    """With learned arrivals, breaks and timetables the fast choices still equal next_for_room's."""
    rng = random.Random(100 + seed)
    fast, exact = make(), WaitEstimator(TZ, WEIGHTS, 30, exact_policy=True)
    arrivals = [(rng.choice((GENERAL, LAB)), local(day, 7 + n / 5), rng.choice(PRIORITIES), rng.random() < 0.1)
                for day in range(10) for n in range(40)]  # both learners must see the same history
    for learner in (fast, exact):
        train_service(learner, 1, GENERAL, 8.0, 50)
        train_service(learner, 2, GENERAL, 12.0, 50, seed=2)
        train_service(learner, 3, LAB, 4.0, 50, seed=3)
        for arrival in arrivals:
            learner.record_arrival(*arrival)
        for day in range(10):
            for room_id, hour, open in ((1, 7.0, True), (1, 11.5, False), (1, 12.25, True), (1, 17.0, False),
                                        (2, 7.5, True), (2, 12.0, False), (2, 13.0, True), (2, 17.0, False)):
                learner.record_room_state(room_id, open, local(day, hour))
    now = local(30, rng.uniform(7.0, 13.0))
    waiting = [item(n + 1, now - dt.timedelta(seconds=rng.randint(0, 2400)), rng.choice(PRIORITIES),
                    rng.choice((GENERAL, LAB)), rng.random() < 0.1, rng.choice((1, 2, None)))
               for n in range(rng.randint(5, 60))]
    rooms = [RoomState(1, (GENERAL,), rng.random() < 0.8, now - dt.timedelta(minutes=rng.uniform(0, 30)), GENERAL),
             RoomState(2, (GENERAL, LAB), rng.random() < 0.8, None, None),
             RoomState(3, (LAB,), True, None, None)]
    result = fast.estimate(now, waiting, rooms)
    assert result == pytest.approx(exact.estimate(now, waiting, rooms), abs=1e-6)
    assert set(result) == {i.ticket_id for i in waiting}
    assert all(math.isfinite(seconds) and seconds >= 0.0 for seconds in result.values())


@pytest.mark.parametrize("seed", range(12))
def test_fast_simulation_makes_exactly_the_ordering_policys_choices(seed: int) -> None:
    rng = random.Random(seed)
    estimator = make()
    exact = WaitEstimator(TZ, WEIGHTS, 30, exact_policy=True)
    for learner in (estimator, exact):
        train_service(learner, 1, GENERAL, 8.0, 50)
        train_service(learner, 2, GENERAL, 12.0, 50, seed=2)
        train_service(learner, 3, LAB, 4.0, 50, seed=3)
    now = local(30, 10)
    waiting = []
    for n in range(rng.randint(5, 80)):
        preferred = rng.choice((1, 2)) if rng.random() < 0.1 else None
        waiting.append(item(n + 1, now - dt.timedelta(seconds=rng.randint(0, 3000)), rng.choice(PRIORITIES),
                            rng.choice((GENERAL, GENERAL, LAB)), preferred is not None, preferred))
    rooms = [RoomState(1, (GENERAL,), True, now - dt.timedelta(minutes=rng.uniform(0, 9)), GENERAL),
             RoomState(2, (GENERAL, LAB), rng.random() < 0.8, None, None),
             RoomState(3, (LAB,), True, now - dt.timedelta(minutes=1), LAB)]
    fast = estimator.estimate(now, waiting, rooms)
    assert fast == pytest.approx(exact.estimate(now, waiting, rooms), abs=1e-6)
    assert all(0.0 <= seconds < 86400.0 for seconds in fast.values()) and set(fast) == {i.ticket_id for i in waiting}
    by_line: dict[tuple[int, str, bool, int | None], list[QueueItem]] = {}
    for waiting_item in sorted(waiting, key=lambda i: (i.enqueued_at, i.ticket_id)):
        key = (waiting_item.service_id, waiting_item.priority, waiting_item.returning, waiting_item.preferred_room_id)
        by_line.setdefault(key, []).append(waiting_item)
    for line in by_line.values():  # first come, first called within one kind of ticket
        assert [fast[i.ticket_id] for i in line] == sorted(fast[i.ticket_id] for i in line)
    reference = _reference(estimator, now, waiting, rooms)
    assert set(reference) <= set(fast)
    for ticket_id, seconds in reference.items():
        assert fast[ticket_id] == pytest.approx(seconds, abs=1e-6)


def test_learns_room_timetable_and_expects_breaks_and_reopenings() -> None:
    learned, naive = make(), make()
    for estimator in (learned, naive):
        train_service(estimator, 1, GENERAL, 10.0, 200)
        train_service(estimator, 2, GENERAL, 10.0, 200, seed=2)
    for day in range(10):
        for room_id, hour, open in ((1, 7.0, True), (1, 11.5, False), (1, 12.5, True), (1, 17.0, False),
                                    (2, 7.0, True), (2, 17.0, False)):
            learned.record_room_state(room_id, open, local(day, hour))
    assert learned.open_probability(1, local(30, 11.75).timestamp()) == 0.0
    assert learned.open_probability(1, local(30, 10.0).timestamp()) == 1.0
    assert learned.next_opening(1, local(30, 11.75).timestamp()) == local(30, 12.5).timestamp()
    assert naive.open_probability(1, local(30, 11.75).timestamp()) is None
    (lunch,) = learned.typical_breaks(1)
    assert (lunch.due, lunch.seconds) == (11.5 * 3600, 3600.0)
    assert learned.typical_breaks(2) == []

    before_break = local(30, 11.0)
    waiting = [item(n, before_break - dt.timedelta(minutes=20 - n)) for n in range(1, 13)]
    rooms = [idle(1), idle(2)]
    # room 1 will go to lunch at 11:30: the last tickets wait longer than two rooms would give
    assert learned.estimate(before_break, waiting, rooms)[12] > naive.estimate(before_break, waiting, rooms)[12] + 600
    during_break = local(30, 11.75)
    waiting = [item(n, during_break - dt.timedelta(minutes=20 - n)) for n in range(1, 13)]
    rooms = [idle(1, open=False), idle(2)]
    # room 1 is usually back at 12:30: the queue is shorter than with room 2 alone for good
    assert learned.estimate(during_break, waiting, rooms)[12] < naive.estimate(during_break, waiting, rooms)[12] - 600
    # at 11:40 a doctor still with a patient who came in at 11:20 goes to lunch afterwards
    late = local(30, 11 + 40 / 60)
    waiting = [item(n, late - dt.timedelta(minutes=20 - n)) for n in range(1, 7)]
    busy = [RoomState(1, (GENERAL,), True, local(30, 11 + 20 / 60), GENERAL), idle(2)]
    back_from_lunch = learned.estimate(late, waiting, busy)
    assert back_from_lunch[6] > naive.estimate(late, waiting, busy)[6] + 300
    # a doctor who called at 11:35 and has not closed today puts lunch off until this patient is done
    put_off = [RoomState(1, (GENERAL,), True, local(30, 11 + 35 / 60), GENERAL), idle(2)]
    assert learned.estimate(late, waiting, put_off)[6] > naive.estimate(late, waiting, put_off)[6] + 300
    # ... but one who started after 12:30, the break's usual end, has had lunch already (or skipped it)
    after = [RoomState(1, (GENERAL,), True, local(30, 12.6), GENERAL), idle(2)]
    assert learned.estimate(local(30, 12.7), waiting, after)[6] == pytest.approx(
        naive.estimate(local(30, 12.7), waiting, after)[6], rel=0.05)


def test_learns_that_returning_patients_are_quicker() -> None:
    estimator = make()
    rng = random.Random(3)
    for n in range(300):
        start = local(n % 20, 9 + rng.random())
        returning = n % 3 == 0
        minutes = (4.0 if returning else 12.0) * math.exp(rng.gauss(0, 0.2))
        estimator.record_service(1, GENERAL, start, start + dt.timedelta(minutes=minutes), "normal", returning)
    at = local(30, 9.5).timestamp()
    back = estimator.expected_occupation(1, GENERAL, at, "returning")
    first = estimator.expected_occupation(1, GENERAL, at, "normal")
    assert back == pytest.approx(240.0, rel=0.15)
    assert first == pytest.approx(0.95 * 720.0, rel=0.15)  # includes the chance of a no-show


@pytest.mark.parametrize("seed", range(8))
def test_fast_simulation_releases_returning_patients_as_next_for_room_does(seed: int) -> None:
    """A returning patient waits for its own room until preferred_until, then any room may take it."""
    rng = random.Random(500 + seed)
    estimator, exact = make(), WaitEstimator(TZ, WEIGHTS, 30, exact_policy=True)
    for learner in (estimator, exact):
        train_service(learner, 1, GENERAL, 8.0, 50)
        train_service(learner, 2, GENERAL, 12.0, 50, seed=2)
    now = local(30, 10)
    waiting = []
    for n in range(rng.randint(5, 60)):
        enqueued = now - dt.timedelta(seconds=rng.randint(0, 3000))
        preferred = rng.choice((1, 2)) if rng.random() < 0.3 else None
        entry = item(n + 1, enqueued, rng.choice(PRIORITIES), GENERAL, preferred is not None, preferred)
        if preferred is not None and rng.random() < 0.7:
            entry = dataclasses.replace(entry, preferred_until=enqueued + dt.timedelta(minutes=rng.choice((20, 45))))
        waiting.append(entry)
    rooms = [RoomState(1, (GENERAL,), True, now - dt.timedelta(minutes=rng.uniform(0, 9)), GENERAL),
             RoomState(2, (GENERAL,), True, None, None)]
    assert estimator.estimate(now, waiting, rooms) == pytest.approx(exact.estimate(now, waiting, rooms), abs=1e-6)


def test_patients_at_the_lab_come_back_ahead_of_the_walk_ins_of_their_doctor() -> None:
    """A patient waiting for the lab, and one in the lab room now, come back to doctor 1's line with the
    returning head start when the lab is done with them: doctor 1's walk-ins wait for both visits."""
    estimator = make()
    train_service(estimator, 1, GENERAL, 10.0, 60)
    train_service(estimator, 3, LAB, 4.0, 60, seed=3)
    now = local(30, 10)
    waiting = [item(1, now - dt.timedelta(minutes=10)), item(2, now - dt.timedelta(minutes=5)),
               item(10, now - dt.timedelta(minutes=1), service_id=LAB)]
    rooms = [RoomState(1, (GENERAL,), True, now - dt.timedelta(minutes=2), GENERAL),
             RoomState(3, (LAB,), True, now - dt.timedelta(minutes=1), LAB, serving_ticket_id=11)]
    away = [Away(1, GENERAL, "normal", ticket_id=10), Away(1, GENERAL, "elderly", ticket_id=11)]
    unaware = estimator.estimate(now, waiting, rooms)
    aware = estimator.estimate(now, waiting, rooms, away)
    visit = estimator.service_time(1, GENERAL, 10).mean
    assert aware[10] == pytest.approx(unaware[10])  # the lab's own line is as before
    assert aware[1] > unaware[1] + 0.9 * visit  # the one back first goes before ticket 1 ...
    assert aware[2] > unaware[2] + 1.8 * visit  # ... and both before ticket 2
    # patients going back to doctor 2 are doctor 2's to call: ticket 1 goes to whichever room frees first
    rooms2 = [*rooms, RoomState(2, (GENERAL,), True, now - dt.timedelta(minutes=2), GENERAL)]
    elsewhere = [Away(2, GENERAL, "normal", ticket_id=10), Away(2, GENERAL, "elderly", ticket_id=11)]
    assert estimator.estimate(now, waiting, rooms2, elsewhere)[1] < estimator.estimate(now, waiting, rooms2)[1] + 0.5 * visit
    # doctor 1 closed: the patients coming back to that room are anyone's, as tickets.queue_item makes them
    closed = [RoomState(1, (GENERAL,), False, None, None), *rooms2[1:]]
    assert estimator.estimate(now, waiting, closed, away)[2] > estimator.estimate(now, waiting, closed)[2] + 0.9 * visit


def test_a_held_ticket_comes_back_in_its_place_as_past_holds_did() -> None:
    """A held patient keeps their place: once past holds show that patients come back within minutes, the
    tickets behind the held one wait for its visit too; on a clinic where held patients never come back
    (a hold not resumed by the end of its day), they do not."""
    back, gone = make(), make()
    for estimator in (back, gone):
        train_service(estimator, 1, GENERAL, 10.0, 60)
    for n in range(12):  # past days: each hold resumed after 5 minutes, or never
        held_at = local(n, 9)
        back.record_hold(100 + n, held_at)
        back.record_hold(100 + n, held_at, held_at + dt.timedelta(minutes=5))
        gone.record_hold(100 + n, held_at)
    gone.record_hold(999, local(13, 9))  # a new day: the old holds are settled as never resumed
    now = local(30, 10)
    waiting = [item(1, now - dt.timedelta(minutes=30)), item(2, now - dt.timedelta(minutes=10))]
    rooms = [RoomState(1, (GENERAL,), True, now - dt.timedelta(minutes=2), GENERAL)]
    held = [Held(item(3, now - dt.timedelta(minutes=20)), now - dt.timedelta(minutes=2))]
    visit = back.service_time(1, GENERAL, 10).mean
    unaware = back.estimate(now, waiting, rooms)
    aware = back.estimate(now, waiting, rooms, held=held)
    assert aware[1] == pytest.approx(unaware[1])  # ahead of the held ticket's place: as before
    assert aware[2] > unaware[2] + 0.9 * visit  # behind it: it comes back first
    assert gone.estimate(now, waiting, rooms, held=held) == pytest.approx(gone.estimate(now, waiting, rooms))
    yesterday = [Held(held[0].item, now - dt.timedelta(days=1))]  # a hold from another day is over
    assert back.estimate(now, waiting, rooms, held=yesterday) == pytest.approx(unaware)


@pytest.mark.parametrize("futures", [12, 40])
def test_the_range_of_few_sampled_futures_holds_its_stated_share(futures: int) -> None:
    """The 80% range of n sampled futures holds a further draw of the same futures 80% of the time,
    whether n is 12 (a long queue) or 40 (quantiles at the plotting position q (n + 1))."""
    rng = random.Random(futures)
    held = 0
    trials = 3000
    for _ in range(trials):
        paths = [{1: rng.lognormvariate(7.0, 0.5)} for _ in range(futures)]
        span = _ranges(paths, 0.8, 1.0)[1]
        held += span.low <= rng.lognormvariate(7.0, 0.5) <= span.high
    assert 0.77 <= held / trials <= 0.83


def test_a_newcomer_waits_one_visit_more_than_the_last_in_line_and_changes_nobody_elses_wait() -> None:
    estimator = WaitEstimator(TZ, WEIGHTS, 30.0)
    now = local(2, 9.0)
    waiting = [item(i, now - dt.timedelta(minutes=10 - i)) for i in range(1, 5)]
    alone = estimator.estimate(now, waiting, [idle(1)])
    tickets, newcomers = estimator.estimate_with_newcomers(now, waiting, [idle(1)], newcomers=[1])
    assert {ticket_id: span.seconds for ticket_id, span in tickets.items()} == pytest.approx(alone)
    visit = alone[2] - alone[1]
    assert newcomers[1].seconds == pytest.approx(alone[4] + visit)
    empty = estimator.estimate_with_newcomers(now, [], [idle(1)], newcomers=[1])[1]
    assert empty[1].seconds == pytest.approx(0.0)  # nobody waits and the room is free: called at once
