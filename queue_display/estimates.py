"""The wait estimator as the queue uses it (queue_display.estimator, docs/estimator.md): how it is
made, what it is taught, and its warm-up from the last weeks of the database's history, which feeds
it what the live service would have fed it, so a restarted service estimates like one that ran all day."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from clinicall.db import Database
from queue_display import events as ev
from queue_display.estimator import Away, Held, RoomState, WaitEstimator, clinic_estimator
from queue_display.models import RoomStateChange, TicketEvent, Visit
from queue_display.ordering import QueueItem

log = logging.getLogger(__name__)
WARM_WEEKS = 8
WARM_BATCH = 5000
Run = Callable[..., Awaitable[Any]]  # runs a function where the estimator lives (its worker thread)

__all__ = ["Away", "Held", "RoomState", "estimate_queue", "estimate_ranges", "learn_arrival", "learn_hold", "learn_no_show",
           "learn_room_state", "learn_round_trip", "learn_service", "make_estimator", "warm"]


def make_estimator(tz: ZoneInfo, weights: Mapping[str, float], starvation_minutes: float,
                   return_hold_minutes: float = 60.0) -> WaitEstimator:
    return clinic_estimator(tz, weights, starvation_minutes, return_hold_minutes=return_hold_minutes)


def estimate_ranges(estimator: WaitEstimator, now: dt.datetime, waiting: Sequence[QueueItem],
                    rooms: Sequence[RoomState], away: Sequence[Away] | None = None,
                    held: Sequence[Held] | None = None) -> dict[int, tuple[float, float, float]]:
    """ticket id -> (estimated seconds, low, high)."""
    return {ticket_id: (span.seconds, span.low, span.high)
            for ticket_id, span in estimator.estimate_ranges(now, waiting, rooms, away, held).items()}


def estimate_queue(estimator: WaitEstimator, now: dt.datetime, waiting: Sequence[QueueItem],
                   rooms: Sequence[RoomState], away: Sequence[Away] | None = None,
                   held: Sequence[Held] | None = None, newcomers: Sequence[int] = (),
                   ) -> tuple[dict[int, tuple[float, float, float]], dict[int, tuple[float, float, float]]]:
    """(ticket id -> (seconds, low, high), service id -> the same for a normal walk-in taking a number now)."""
    tickets, joining = estimator.estimate_with_newcomers(now, waiting, rooms, away, held, newcomers)
    return ({ticket_id: (span.seconds, span.low, span.high) for ticket_id, span in tickets.items()},
            {service_id: (span.seconds, span.low, span.high) for service_id, span in joining.items()})


def learn_service(estimator: WaitEstimator, room_id: int, service_id: int, started_at: dt.datetime,
                  ended_at: dt.datetime, priority: str = "normal", returning: bool = False) -> None:
    estimator.record_service(room_id, service_id, started_at, ended_at, priority, returning)


def learn_no_show(estimator: WaitEstimator, room_id: int, service_id: int, called_at: dt.datetime,
                  ended_at: dt.datetime) -> None:
    estimator.record_no_show(room_id, service_id, called_at, ended_at)


def learn_room_state(estimator: WaitEstimator, room_id: int, open: bool, at: dt.datetime) -> None:
    estimator.record_room_state(room_id, open, at)


def learn_arrival(estimator: WaitEstimator, service_id: int, at: dt.datetime, priority: str, returning: bool) -> None:
    estimator.record_arrival(service_id, at, priority, returning)


def learn_round_trip(estimator: WaitEstimator, sent_at: dt.datetime, lab_done_at: dt.datetime,
                     back_at: dt.datetime) -> None:
    estimator.record_round_trip(sent_at, lab_done_at, back_at)


def learn_hold(estimator: WaitEstimator, ticket_id: int, held_at: dt.datetime,
               resumed_at: dt.datetime | None = None) -> None:
    estimator.record_hold(ticket_id, held_at, resumed_at)


def _teach(estimator: WaitEstimator, records: list[tuple[dt.datetime, int, Callable[..., None], tuple[Any, ...]]]) -> None:
    for _at, _order, function, args in records:
        function(estimator, *args)


async def _direct(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


async def warm(estimator: WaitEstimator, db: Database, now: dt.datetime, weeks: int = WARM_WEEKS,
               run: Run = _direct) -> int:
    """Feeds the estimator the last `weeks` weeks as the live service did, in the order it happened:
    every visit's arrival in its line (issued, transferred, back from the lab), every finished visit
    (from the call: the walk to the room is the room's time too), every no-show, every room opening and
    closing. `run` carries each batch to where the estimator lives. Returns the visits learned."""
    since = now - dt.timedelta(weeks=weeks)
    began = time.monotonic()
    async with db.session() as s:
        total = int(await s.scalar(select(func.count()).select_from(Visit).where(Visit.enqueued_at >= since)) or 0)
        log.info("queue: warming the wait estimator from %d visits since %s", total, since.date())
        records: list[tuple[dt.datetime, int, Callable[..., None], tuple[Any, ...]]] = []
        last_outcome: dict[int, tuple[str | None, Any, Any]] = {}  # ticket -> its latest leg's end, sent at
        learned, last_id, next_report = 0, 0, 0.1
        while True:
            rows = (await s.execute(
                select(Visit.id, Visit.ticket_id, Visit.room_id, Visit.service_id, Visit.priority, Visit.enqueued_at,
                       Visit.called_at, Visit.started_at, Visit.ended_at, Visit.outcome)
                .where(Visit.enqueued_at >= since, Visit.id > last_id).order_by(Visit.id).limit(WARM_BATCH))).all()
            if not rows:
                break
            for row in rows:
                records.extend(_visit_records(row, last_outcome))
                learned += 1
                last_id = row.id
            if total and learned / total >= next_report:
                log.info("queue: estimator warm-up %d%% (%d/%d visits)", int(100 * learned / total), learned, total)
                next_report = learned / total + 0.1
        changes = (await s.execute(
            select(RoomStateChange.room_id, RoomStateChange.open, RoomStateChange.at)
            .where(RoomStateChange.at >= since).order_by(RoomStateChange.at, RoomStateChange.id))).all()
        records.extend((at, 0, learn_room_state, (room_id, is_open, at)) for room_id, is_open, at in changes)
        records.extend(await _hold_records(s, since))
    records.sort(key=lambda record: (record[0], record[1]))
    for start in range(0, len(records), WARM_BATCH):
        await run(partial(_teach, estimator, records[start:start + WARM_BATCH]))
    log.info("queue: wait estimator warm: %d visits in %.1f s", learned, time.monotonic() - began)
    return learned


async def _hold_records(s: Any, since: dt.datetime) -> list[tuple[dt.datetime, int, Callable[..., None], tuple[Any, ...]]]:
    """Every hold and its end as the live service taught it: resumed, or called while held."""
    held_tickets = select(TicketEvent.ticket_id).where(TicketEvent.type == ev.TICKET_HELD, TicketEvent.at >= since)
    rows = (await s.execute(
        select(TicketEvent.ticket_id, TicketEvent.type, TicketEvent.at)
        .where(TicketEvent.at >= since, TicketEvent.ticket_id.in_(held_tickets),
               TicketEvent.type.in_((ev.TICKET_HELD, ev.TICKET_RESUMED, ev.TICKET_CALLED)))
        .order_by(TicketEvent.at, TicketEvent.id))).all()
    records: list[tuple[dt.datetime, int, Callable[..., None], tuple[Any, ...]]] = []
    held_at: dict[int, dt.datetime] = {}
    for ticket_id, kind, at in rows:
        if kind == ev.TICKET_HELD:
            held_at[ticket_id] = at
            records.append((at, 1, learn_hold, (ticket_id, at)))
        elif ticket_id in held_at:
            records.append((at, 1, learn_hold, (ticket_id, held_at.pop(ticket_id), at)))
    return records


def _visit_records(row: Any, last_outcome: dict[int, tuple[str | None, Any, Any]]) -> list[
        tuple[dt.datetime, int, Callable[..., None], tuple[Any, ...]]]:
    """As the live service taught it: a leg that follows a finished one (not a transfer) is the way back
    to the doctor, a returning patient's (its arrival and its visit); the round trip is learned too
    (from the doctor's transfer to the lab, and the lab's done, to back in the doctor's line)."""
    outcome, ended, sent = last_outcome.get(row.ticket_id, (None, None, None))
    returning = outcome == "done"
    last_outcome[row.ticket_id] = (row.outcome, row.ended_at, row.ended_at if row.outcome == "transferred" else sent)
    records: list[tuple[dt.datetime, int, Callable[..., None], tuple[Any, ...]]] = [
        (row.enqueued_at, 1, learn_arrival, (row.service_id, row.enqueued_at, row.priority, returning))]
    if returning and sent is not None and ended is not None:
        records.append((row.enqueued_at, 1, learn_round_trip, (sent, ended, row.enqueued_at)))
    if row.room_id is None or row.ended_at is None:
        return records
    if row.outcome in ("done", "transferred") and (row.called_at or row.started_at) is not None:
        began = row.called_at or row.started_at
        if row.ended_at > began:
            records.append((row.ended_at, 2, learn_service,
                            (row.room_id, row.service_id, began, row.ended_at, row.priority, returning)))
    elif row.outcome == "noshow" and row.called_at is not None:
        records.append((row.ended_at, 2, learn_no_show, (row.room_id, row.service_id, row.called_at, row.ended_at)))
    return records
