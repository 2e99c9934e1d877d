"""The wait estimator as the queue uses it: queue_display.estimator.WaitEstimator (see docs/queue.md),
or a simple stand-in with the same calls while that module is absent; and its warm-up from the
last weeks of finished visits."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from clinicall.db import Database
from queue_display.models import RoomStateChange, Ticket, Visit
from queue_display.ordering import QueueItem, order_waiting

log = logging.getLogger(__name__)
WARM_WEEKS = 8
WARM_BATCH = 5000


@dataclass(frozen=True)
class FallbackRoomState:
    room_id: int
    service_ids: tuple[int, ...]
    open: bool
    serving_since: dt.datetime | None
    serving_service_id: int | None


class FallbackEstimator:
    """Position in line times the mean recent service time, shared by the open rooms of the service."""

    def __init__(self, tz: ZoneInfo, weights: Mapping[str, float], starvation_minutes: float) -> None:
        self.weights = dict(weights)
        self.starvation_minutes = starvation_minutes
        self._durations: dict[int, list[float]] = {}

    def record_service(self, room_id: int, service_id: int, started_at: dt.datetime, ended_at: dt.datetime,
                       *args: Any, **kwargs: Any) -> None:
        seconds = (ended_at - started_at).total_seconds()
        if seconds > 0:
            recent = self._durations.setdefault(service_id, [])
            recent.append(seconds)
            del recent[:-200]

    def record_arrival(self, service_id: int, at: dt.datetime, *args: Any, **kwargs: Any) -> None:
        return None

    def estimate(self, now: dt.datetime, waiting: Sequence[QueueItem], rooms: Sequence[Any]) -> dict[int, float]:
        result: dict[int, float] = {}
        ordered = order_waiting(waiting, now, self.weights, self.starvation_minutes)
        ahead: dict[int, int] = {}
        for item in ordered:
            recent = self._durations.get(item.service_id) or [600.0]
            mean = sum(recent) / len(recent)
            servers = max(1, sum(1 for r in rooms if r.open and item.service_id in r.service_ids))
            count = ahead.get(item.service_id, 0)
            result[item.ticket_id] = mean * count / servers
            ahead[item.service_id] = count + 1
        return result


try:
    from queue_display.estimator import RoomState, WaitEstimator
except ModuleNotFoundError as exc:  # the estimator module has not landed: keep the queue working
    if exc.name != "queue_display.estimator":
        raise
    RoomState = FallbackRoomState  # type: ignore[assignment,misc]
    WaitEstimator = FallbackEstimator  # type: ignore[assignment,misc]


def make_estimator(tz: ZoneInfo, weights: Mapping[str, float], starvation_minutes: float) -> Any:
    return WaitEstimator(tz, weights, starvation_minutes)


def learn_service(estimator: Any, room_id: int, service_id: int, started_at: dt.datetime, ended_at: dt.datetime,
                  priority: str = "normal", returning: bool = False) -> None:
    try:
        estimator.record_service(room_id, service_id, started_at, ended_at, priority, returning)
    except TypeError:  # an estimator that takes only the contract's four arguments
        estimator.record_service(room_id, service_id, started_at, ended_at)


def learn_room_state(estimator: Any, room_id: int, open: bool, at: dt.datetime) -> None:
    if hasattr(estimator, "record_room_state"):  # optional in the contract
        estimator.record_room_state(room_id, open, at)


def learn_arrival(estimator: Any, service_id: int, at: dt.datetime, priority: str, returning: bool) -> None:
    try:
        estimator.record_arrival(service_id, at, priority, returning)
    except TypeError:  # an estimator that takes only the contract's two arguments
        estimator.record_arrival(service_id, at)


async def warm(estimator: Any, db: Database, now: dt.datetime, weeks: int = WARM_WEEKS) -> int:
    """Feeds the estimator the finished visits and arrivals of the last `weeks` weeks, oldest first,
    logging progress. Returns the number of visits learned."""
    since = now - dt.timedelta(weeks=weeks)
    began = time.monotonic()
    async with db.session() as s:
        total = int(await s.scalar(select(func.count()).select_from(Visit).where(
            Visit.ended_at >= since, Visit.started_at.is_not(None), Visit.room_id.is_not(None),
            Visit.outcome.in_(("done", "transferred")))) or 0)
        log.info("queue: warming the wait estimator from %d finished visits since %s", total, since.date())
        learned, last_id, next_report = 0, 0, 0.1
        while True:
            rows = (await s.execute(
                select(Visit.id, Visit.room_id, Visit.service_id, Visit.started_at, Visit.ended_at, Visit.priority)
                .where(Visit.ended_at >= since, Visit.started_at.is_not(None), Visit.room_id.is_not(None),
                       Visit.outcome.in_(("done", "transferred")), Visit.id > last_id)
                .order_by(Visit.id).limit(WARM_BATCH))).all()
            if not rows:
                break
            for visit_id, room_id, service_id, started_at, ended_at, priority in rows:
                if ended_at > started_at:
                    learn_service(estimator, room_id, service_id, started_at, ended_at, priority)
                learned += 1
                last_id = visit_id
            if total and learned / total >= next_report:
                log.info("queue: estimator warm-up %d%% (%d/%d visits)", int(100 * learned / total), learned, total)
                next_report = learned / total + 0.1
        if hasattr(estimator, "record_no_show"):
            no_shows = (await s.execute(
                select(Visit.room_id, Visit.service_id, Visit.called_at, Visit.ended_at)
                .where(Visit.ended_at >= since, Visit.outcome == "noshow", Visit.room_id.is_not(None),
                       Visit.called_at.is_not(None)).order_by(Visit.id))).all()
            for room_id, service_id, called_at, ended_at in no_shows:
                estimator.record_no_show(room_id, service_id, called_at, ended_at)
        changes = (await s.execute(
            select(RoomStateChange.room_id, RoomStateChange.open, RoomStateChange.at)
            .where(RoomStateChange.at >= since).order_by(RoomStateChange.at, RoomStateChange.id))).all()
        for room_id, is_open, at in changes:
            learn_room_state(estimator, room_id, is_open, at)
        arrivals = (await s.execute(
            select(Ticket.issued_service_id, Ticket.issued_at, Ticket.priority)
            .where(Ticket.issued_at >= since).order_by(Ticket.issued_at))).all()
        for service_id, issued_at, priority in arrivals:
            learn_arrival(estimator, service_id, issued_at, priority, False)
    log.info("queue: wait estimator warm: %d visits and %d arrivals in %.1f s", learned, len(arrivals),
             time.monotonic() - began)
    return learned
