"""The queue as it stands: waiting lines in call order with positions and estimated waits, rooms
with their current and next tickets; the display snapshot; masked patient names."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from clinicall.db import Database, utcnow
from clinicall.settings import Settings
from queue_display.catalog import is_open_now
from queue_display.estimates import Away, Held, RoomState
from queue_display.events import back_to_json, local_name, room_json, service_json, ticket_json
from queue_display.models import QueueRoom, QueueService, Ticket, WaitEstimate
from queue_display.ordering import QueueItem, may_serve, order_waiting
from queue_display.tickets import queue_item

log = logging.getLogger(__name__)
RECENT_CALLS = 10
ROOM_NEXT = 3


Estimates = dict[int, tuple[float, float, float]]  # ticket id -> (seconds, low, high)


NEWCOMER = "newcomer"  # the key of a service's stored row that holds a walk-in's wait, beside the tickets' ids


class Estimate(Protocol):
    """Runs the estimator on a snapshot of the queue (in the queue runtime: on its worker thread): the
    waiting tickets' estimates, and per service in `newcomers` a normal walk-in's taking a number now."""

    def __call__(self, now: dt.datetime, waiting: list[QueueItem], rooms: list[Any],
                 away: list[Any] | None = None, held: list[Any] | None = None,
                 newcomers: list[int] | None = None) -> Awaitable[tuple[Estimates, Estimates]]: ...


@dataclass
class QueueState:
    now: dt.datetime
    services: dict[int, QueueService]
    rooms: dict[int, QueueRoom]
    waiting: dict[int, list[Ticket]]  # service_id -> tickets in call order
    current: dict[int, Ticket]  # room_id -> the ticket called into / served in it (latest)
    recent: list[Ticket]  # latest calls, newest first
    settings: Settings
    stored_waits: dict[int, dict[str, Any]] = field(default_factory=dict)  # as last written
    held: list[Ticket] = field(default_factory=list)  # held today (the patient stepped out)
    newcomer: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # service -> a walk-in's wait

    def newcomer_wait(self, service_id: int) -> tuple[float, float, float] | None:
        """What a normal walk-in taking a number now would wait (seconds, low, high), as last stored."""
        found = self.newcomer.get(service_id)
        if found is None:
            stored = self.stored_waits.get(service_id, {}).get(NEWCOMER)
            if isinstance(stored, list) and len(stored) >= 4 and stored[1] is not None:
                found = (stored[1], stored[2] if stored[2] is not None else stored[1],
                         stored[3] if stored[3] is not None else stored[1])
        return found

    def waiting_ticket(self, ticket_id: int) -> Ticket | None:
        return next((t for line in self.waiting.values() for t in line if t.id == ticket_id), None)

    def open_room_ids(self) -> set[int]:
        return {room.id for room in self.rooms.values() if room.open}

    def items(self) -> list[QueueItem]:
        open_rooms = self.open_room_ids()
        return [queue_item(t, self.settings, open_rooms) for line in self.waiting.values() for t in line]

    def room_states(self) -> list[Any]:
        states = []
        for room in self.rooms.values():
            ticket = self.current.get(room.id)
            # the room is taken from the call (the patient walks over), not only from "start"
            since = (ticket.called_at or ticket.started_at) if ticket is not None else None
            states.append(RoomState(room_id=room.id, service_ids=tuple(room.service_ids), open=room.open,
                                    serving_since=since,
                                    serving_service_id=ticket.service_id if ticket is not None else None,
                                    serving_ticket_id=ticket.id if ticket is not None else None))
        return states

    def held_items(self) -> list[Any]:
        """Today's held tickets as they would stand in their line if they resume (same place)."""
        open_rooms = self.open_room_ids()
        return [Held(queue_item(t, self.settings, open_rooms), t.held_at) for t in self.held if t.held_at is not None]

    def away(self) -> list[Any]:
        """Patients on a round trip (waiting for the lab or in a lab room) who come back to their doctor."""
        tickets = [*(t for line in self.waiting.values() for t in line), *self.current.values()]
        return [Away(t.return_room_id, t.return_service_id, t.priority, t.id)
                for t in tickets if t.return_service_id is not None]


async def load_state(db: Database, settings: Settings, now: dt.datetime | None = None,
                     recent: bool = False) -> QueueState:
    now = now or utcnow()
    async with db.session() as s:
        services = {x.id: x for x in (await s.scalars(select(QueueService))).all()}
        rooms = {x.id: x for x in (await s.scalars(select(QueueRoom).order_by(QueueRoom.kind, QueueRoom.number))).all()}
        active = (await s.scalars(select(Ticket).where(Ticket.status.in_(("waiting", "called", "in_service", "held")))
                                  .order_by(Ticket.called_at, Ticket.id))).all()
        waiting_rows = [t for t in active if t.status == "waiting"]
        day_began = dt.datetime.combine(now.astimezone(settings.clinic.zone()).date(), dt.time(),
                                        settings.clinic.zone())
        held = [t for t in active if t.status == "held" and t.held_at is not None and t.held_at >= day_began]
        busy = [t for t in active if t.status in ("called", "in_service")]
        stored_waits = {row.service_id: dict(row.waits or {}) for row in (await s.scalars(select(WaitEstimate))).all()}
        recent_rows: list[Ticket] = []
        if recent:
            since = now - dt.timedelta(hours=12)
            recent_rows = list((await s.scalars(select(Ticket).where(Ticket.called_at >= since)
                                                .order_by(Ticket.called_at.desc()).limit(RECENT_CALLS))).all())
    weights, starvation = settings.queue.priority_weights, float(settings.queue.anti_starvation_minutes)
    by_id = {t.id: t for t in waiting_rows}
    for line in stored_waits.values():
        for key, stored in line.items():
            ticket = by_id.get(int(key)) if key.isdigit() else None
            if ticket is not None:
                ticket.estimated_wait_seconds = stored[1]
                ticket.wait_range = (stored[2], stored[3]) if len(stored) >= 4 and stored[2] is not None else None
    waiting: dict[int, list[Ticket]] = {sid: [] for sid in services}
    open_rooms = {room.id for room in rooms.values() if room.open}
    items = [queue_item(t, settings, open_rooms) for t in waiting_rows]
    for item in order_waiting(items, now, weights, starvation):
        waiting.setdefault(item.service_id, []).append(by_id[item.ticket_id])
    for line in waiting.values():
        for position, ticket in enumerate(line, start=1):
            ticket.position = position
    current = {t.room_id: t for t in busy if t.room_id is not None}
    return QueueState(now, services, rooms, waiting, current, recent_rows, settings, stored_waits, held)


def positions(state: QueueState) -> dict[int, int]:
    return {t.id: index for line in state.waiting.values() for index, t in enumerate(line, start=1)}


def apply_estimates(state: QueueState, estimates: Estimates, newcomers: Estimates | None = None) -> None:
    """Sets position, estimated_wait_seconds and wait_range on the waiting tickets in memory. Down each
    service's line, in call order, neither the wait nor its range ever decreases: a ticket shown below
    another is not promised an earlier call (the displayed figure is the running maximum). A newcomer
    (a normal walk-in joins at the end of the call order) is floored by the line's last figures too."""
    for service_id in {*state.services, *state.waiting}:
        line = state.waiting.get(service_id, [])
        floor = (0.0, 0.0, 0.0)
        for position, ticket in enumerate(line, start=1):
            ticket.position = position
            estimate = estimates.get(ticket.id)
            if estimate is None:
                continue
            floor = (max(floor[0], estimate[0]), max(floor[1], estimate[1]), max(floor[2], estimate[2]))
            ticket.estimated_wait_seconds = round(floor[0], 1)
            ticket.wait_range = (round(min(floor[1], floor[0]), 1), round(max(floor[2], floor[0]), 1))
        joining = (newcomers or {}).get(service_id)
        if joining is not None:
            seconds, low, high = (max(floor[0], joining[0]), max(floor[1], joining[1]), max(floor[2], joining[2]))
            state.newcomer[service_id] = (round(seconds, 1), round(min(low, seconds), 1), round(max(high, seconds), 1))


async def refresh(db: Database, settings: Settings, estimate: Estimate | None,
                  now: dt.datetime | None = None,
                  write_guard: contextlib.AbstractAsyncContextManager[Any] | None = None) -> QueueState:
    """Recomputes positions and estimates of every waiting ticket and stores them, one row per
    service, so any instance (and the display hub, which has no estimator) reads the latest.
    Operations never touch that table, so this write never waits for (or deadlocks with) them."""
    state = await load_state(db, settings, now)
    estimates: Estimates = {}
    newcomers: Estimates = {}
    if estimate is not None:
        try:
            estimates, newcomers = await estimate(
                state.now, state.items(), state.room_states(), state.away(), state.held_items(),
                [x.id for x in state.services.values() if x.active])
        except Exception:
            log.exception("the wait estimator failed; waits are left as they were")
    apply_estimates(state, estimates, newcomers)
    rows = []
    for service_id in sorted(state.services):
        line = state.waiting.get(service_id, [])
        waits: dict[str, Any] = {str(t.id): [t.position, t.estimated_wait_seconds, *(t.wait_range or (None, None))]
                                 for t in line}
        joining = state.newcomer_wait(service_id)
        if joining is not None:
            waits[NEWCOMER] = [len(line) + 1, *joining]
        if waits != state.stored_waits.get(service_id, {}):
            rows.append({"service_id": service_id, "computed_at": state.now, "waits": waits})
    if rows:
        insert = pg_insert if db.is_postgres else sqlite_insert
        async with write_guard or contextlib.nullcontext(), db.transaction() as s:
            statement = insert(WaitEstimate).values(rows)  # every changed line in one statement
            await s.execute(statement.on_conflict_do_update(
                index_elements=["service_id"],
                set_={"computed_at": statement.excluded.computed_at, "waits": statement.excluded.waits}))
    return state


async def masked_names(db: Database, settings: Settings, tickets: Iterable[Ticket]) -> dict[int, str]:
    """patient_id -> masked name ("Nguyễn V. A."), only when settings.display.name_mask allows names; one
    query for all of them."""
    if settings.display.name_mask == "none":
        return {}
    wanted = {t.patient_id for t in tickets if t.patient_id is not None}
    if not wanted:
        return {}
    try:
        from crm_bridge import service as crm
    except ImportError:
        return {}
    return await crm.masked_names(db, wanted)


class Catalog(Protocol):
    """The services and rooms a ticket's JSON names (a QueueState, or an operation's QueueView)."""

    services: dict[int, QueueService]
    rooms: dict[int, QueueRoom]


def tickets_json(state: Catalog, tickets: Iterable[Ticket], language: str,
                 names: dict[int, str]) -> list[dict[str, Any]]:
    return [ticket_json(t, state.services.get(t.service_id), state.rooms.get(t.room_id) if t.room_id else None,
                        language, names.get(t.patient_id) if t.patient_id else None,
                        back_to_json(t, state.services, state.rooms, language)) for t in tickets]


def room_next(state: QueueState, room: QueueRoom, settings: Settings) -> list[Ticket]:
    open_rooms = state.open_room_ids()
    items = [queue_item(t, settings, open_rooms) for sid in room.service_ids for t in state.waiting.get(sid, [])]
    candidates = [item for item in items if may_serve(item, room.id, room.service_ids, state.now)]
    order = order_waiting(candidates, state.now, settings.queue.priority_weights,
                          float(settings.queue.anti_starvation_minutes))
    by_id = {t.id: t for sid in room.service_ids for t in state.waiting.get(sid, [])}
    return [by_id[item.ticket_id] for item in order[:ROOM_NEXT]]


async def display_snapshot(db: Database, settings: Settings, room_ids: Collection[int] | None,
                           service_ids: Collection[int] | None, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """What a screen shows: services with their waiting lines, rooms with current and next tickets,
    the latest calls. Empty or None filters mean everything; with rooms only, the services those rooms
    serve. Patients appear only as masked names (or not at all with name_mask "none"). Waits are the
    stored estimates (the estimator never runs for a screen)."""
    state = await load_state(db, settings, now, recent=True)
    language = settings.clinic.language
    rooms = [r for r in state.rooms.values() if not room_ids or r.id in room_ids]
    wanted_services = set(service_ids or ())
    if not wanted_services and room_ids:
        wanted_services = {sid for r in rooms for sid in r.service_ids}
    services = [x for x in sorted(state.services.values(), key=lambda x: x.prefix)
                if not wanted_services or x.id in wanted_services]
    if not room_ids and service_ids:
        rooms = [r for r in rooms if wanted_services & set(r.service_ids)]
    shown_services = {x.id for x in services}
    shown_rooms = {r.id for r in rooms}
    recent = [t for t in state.recent if t.room_id in shown_rooms or t.service_id in shown_services]
    involved = [t for x in services for t in state.waiting.get(x.id, [])] + list(state.current.values()) + recent
    names = await masked_names(db, settings, involved)
    service_list = []
    for x in services:
        line = state.waiting.get(x.id, [])
        joining = state.newcomer_wait(x.id)
        waits = [t.estimated_wait_seconds for t in line if t.estimated_wait_seconds is not None]
        service_list.append({
            **service_json(x, language),
            "open": is_open_now(x, state.now, settings.clinic.zone()),
            "waiting_count": len(line),
            # what a normal walk-in taking a number now would wait (the estimator's phantom newcomer at the end
            # of the line); before the estimator has run, the last waiting ticket's
            "estimated_wait_seconds": joining[0] if joining else max(waits) if waits else (0.0 if not line else None),
            "estimated_wait_range": [joining[1], joining[2]] if joining else None,
            "waiting": tickets_json(state, line, language, names),
        })
    room_list = []
    for r in rooms:
        current = state.current.get(r.id)
        room_list.append({
            **room_json(r, language),
            "current": tickets_json(state, [current], language, names)[0] if current is not None else None,
            "next": tickets_json(state, room_next(state, r, settings), language, names),
        })
    return {
        "at": state.now.isoformat(),
        "clinic": {"name": settings.clinic.name, "language": language},
        "services": service_list,
        "rooms": room_list,
        "recent_calls": tickets_json(state, recent, language, names),
    }


def service_name(state: QueueState, service_id: int, language: str) -> str:
    service = state.services.get(service_id)
    return local_name(service.names, language) if service else ""
