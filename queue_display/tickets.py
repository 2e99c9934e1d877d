"""Ticket operations against the database: issue, call, recall, skip, hold, transfer, start, done...

Each operation runs in one transaction, keeps every timestamp (on the ticket, on its visit, and
as a row in queue_ticket_events) and returns an Outcome that the runtime turns into bus events
and fresh estimates. Nothing here publishes or estimates.

Concurrency: the ticket row is locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN
IMMEDIATE serialises writers) before it changes, and call-next claims a ticket with a conditional
UPDATE ... WHERE status = 'waiting' and checks the row count, trying the next candidate when
another receptionist or another instance won the race. Numbers come from an upserted counter
row per service and local day, so two kiosks never print the same number.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.db import Database, UTCDateTime, utcnow
from clinicall.problem import Problem, conflict, not_found
from clinicall.settings import Settings
from queue_display import events as ev
from queue_display.catalog import is_open_now
from queue_display.models import (
    ACTIVE_STATUSES,
    QueueCounter,
    QueueRoom,
    QueueService,
    Ticket,
    TicketEvent,
    Visit,
)
from queue_display.ordering import PRIORITIES, QueueItem, next_for_room

CALL_ATTEMPTS = 50


@dataclass
class Served:
    """A room's occupation by one ticket, from the call (the walk in counts) to done: the estimator learns it."""

    room_id: int
    service_id: int
    started_at: dt.datetime
    ended_at: dt.datetime
    priority: str = "normal"
    returning: bool = False


@dataclass
class Outcome:
    """What one operation did: the event to publish and what the estimator should learn."""

    ticket_id: int
    event: str
    service_ids: set[int] = field(default_factory=set)  # waiting lines that changed
    served: Served | None = None
    no_show: Served | None = None  # a called patient who never came: the room's lost time
    arrival: tuple[int, dt.datetime, str, bool] | None = None  # service, at, priority, returning
    hold: tuple[dt.datetime, dt.datetime | None] | None = None  # held at, resumed at (None: held now)
    round_trip: tuple[dt.datetime, dt.datetime, dt.datetime] | None = None  # sent, lab done, back in line
    detail: dict[str, Any] = field(default_factory=dict)
    before: list[Outcome] = field(default_factory=list)  # e.g. the room's previous ticket, finished by call-next
    view: QueueView | None = None  # what the operation read and wrote, when it kept it (call-next)


def local_day(now: dt.datetime, settings: Settings) -> dt.date:
    return now.astimezone(settings.clinic.zone()).date()


def format_number(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:03d}"


def queue_item(ticket: Any, settings: Settings, open_room_ids: Collection[int]) -> QueueItem:
    """The ordering's view of a waiting ticket (a Ticket or a row with its columns). A patient back
    from the lab waits for their own doctor's room while it is open, for queue.return_hold_minutes at
    most; then (or at once if that room is closed) any room of the service may call them."""
    preferred, until = ticket.preferred_room_id, None
    if preferred is not None:
        if preferred in open_room_ids:
            until = ticket.enqueued_at + dt.timedelta(minutes=settings.queue.return_hold_minutes)
        else:
            preferred = None
    return QueueItem(ticket_id=ticket.id, service_id=ticket.service_id, priority=ticket.priority,
                     enqueued_at=ticket.enqueued_at, returning=ticket.is_returning, preferred_room_id=preferred,
                     preferred_until=until)


async def open_room_ids(s: AsyncSession) -> set[int]:
    return set((await s.scalars(select(QueueRoom.id).where(QueueRoom.open))).all())


async def _next_seq(s: AsyncSession, db: Database, service_id: int, day: dt.date) -> int:
    insert = pg_insert if db.is_postgres else sqlite_insert
    statement = (
        insert(QueueCounter)
        .values(service_id=service_id, local_day=day, last_seq=1)
        .on_conflict_do_update(index_elements=["service_id", "local_day"],
                               set_={"last_seq": QueueCounter.last_seq + 1})
        .returning(QueueCounter.last_seq)
    )
    return int((await s.execute(statement)).scalar_one())


async def _renumber(s: AsyncSession, db: Database, ticket: Ticket, service: QueueService,
                    keep_seq: int | None = None) -> None:
    """The ticket joins another service's line: it takes a number of that service (its own earlier
    number there when it comes back, unless that was somehow given to another ticket)."""
    seq = keep_seq
    if seq is not None and await s.scalar(select(Ticket.id).where(
            Ticket.service_id == service.id, Ticket.local_day == ticket.local_day, Ticket.seq == seq,
            Ticket.id != ticket.id)) is not None:
        seq = None
    if seq is None:
        seq = await _next_seq(s, db, service.id, ticket.local_day)
    ticket.service_id = service.id
    ticket.seq = seq
    ticket.number = format_number(service.prefix, seq)


def _log(s: AsyncSession, ticket: Ticket, kind: str, at: dt.datetime, user_id: int | None,
         **detail: Any) -> None:
    s.add(TicketEvent(ticket_id=ticket.id, type=kind, at=at, service_id=ticket.service_id, room_id=ticket.room_id,
                      user_id=user_id, detail=detail))


async def _open_visit(s: AsyncSession, ticket: Ticket, day: dt.date, at: dt.datetime) -> None:
    visit = Visit(ticket_id=ticket.id, service_id=ticket.service_id, local_day=day, priority=ticket.priority,
                  enqueued_at=at)
    s.add(visit)
    await s.flush()
    ticket.visit_id = visit.id


async def _visit(s: AsyncSession, ticket: Ticket) -> Visit | None:
    return await s.get(Visit, ticket.visit_id) if ticket.visit_id else None


async def issue(db: Database, settings: Settings, *, service_id: int, source: str, priority: str = "normal",
                patient_id: int | None = None, user_id: int | None = None,
                now: dt.datetime | None = None) -> Outcome:
    """A new ticket at the end of a service's line (kiosk, reception or check-in)."""
    now = now or utcnow()
    if priority not in PRIORITIES:
        raise Problem(422, "Unknown priority", f"priority must be one of {', '.join(PRIORITIES)}.")
    day = local_day(now, settings)
    for _attempt in range(5):
        try:
            async with db.transaction() as s:
                service = await s.get(QueueService, service_id)
                if service is None or not service.active:
                    raise Problem(404, "Service not found",
                                  "No active service with that id; choose one from GET /api/services.")
                if source == "kiosk" and not is_open_now(service, now, settings.clinic.zone()):
                    raise conflict(f"{service.names.get('vi')} is closed now; it opens {service.opens_at} to "
                                   f"{service.closes_at}. Please ask at reception.")
                if patient_id is not None:
                    existing = await s.scalar(select(Ticket).where(
                        Ticket.patient_id == patient_id, Ticket.local_day == day,
                        Ticket.status.in_(ACTIVE_STATUSES)))
                    if existing is not None:
                        raise conflict(f"This patient already holds ticket {existing.number} today; "
                                       "use it or finish it first.", ticket_id=existing.id)
                seq = await _next_seq(s, db, service.id, day)
                ticket = Ticket(service_id=service.id, issued_service_id=service.id, local_day=day, seq=seq,
                                number=format_number(service.prefix, seq), token=secrets.token_urlsafe(18),
                                patient_id=patient_id, priority=priority, source=source, status="waiting",
                                issued_by=user_id, issued_at=now, enqueued_at=now, updated_at=now)
                s.add(ticket)
                await s.flush()
                await _open_visit(s, ticket, day, now)
                _log(s, ticket, ev.TICKET_ISSUED, now, user_id, source=source, priority=priority)
                return Outcome(ticket.id, ev.TICKET_ISSUED, {service.id},
                               arrival=(service.id, now, priority, False))
        except IntegrityError:
            continue  # numbering raced with a counter reset; take the next number
    raise Problem(503, "Busy", "Could not issue a number just now; please try again.")


async def _lock_ticket(s: AsyncSession, ticket_id: int) -> Ticket:
    ticket = await s.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update())
    if ticket is None:
        raise not_found("Ticket")
    return ticket


def _require_status(ticket: Ticket, allowed: tuple[str, ...], action: str) -> None:
    if ticket.status not in allowed:
        code = "ticket_already_called" if ticket.status == "called" else "ticket_wrong_state"
        raise conflict(code=code, detail=f"Ticket {ticket.number} is {ticket.status}; it can be {action} only when "
                       f"{' or '.join(allowed)}.", ticket_status=ticket.status)


async def _open_room(s: AsyncSession, room_id: int) -> QueueRoom:
    room = await s.get(QueueRoom, room_id)
    if room is None:
        raise not_found("Room")
    if not room.open:
        raise conflict(f"{room.names.get('vi', 'The room')} is closed; open it (PATCH open: true) before calling.")
    return room


def _requeue(ticket: Ticket, now: dt.datetime) -> None:
    """Into a new service's line as of now, out of any room."""
    ticket.status = "waiting"
    ticket.enqueued_at = now
    ticket.room_id = None
    ticket.called_at = ticket.started_at = None
    ticket.recall_count = 0
    ticket.transferred_at = now
    ticket.updated_at = now


async def _send_back(s: AsyncSession, db: Database, ticket: Ticket, back_to: QueueService, now: dt.datetime,
                     user_id: int | None, settings: Settings, served: Served | None) -> Outcome:
    """The ticket goes back to the service and the room that sent it, with its own number there."""
    finished_service, finished_number = ticket.service_id, ticket.number
    sent_at = ticket.transferred_at
    await _renumber(s, db, ticket, back_to, keep_seq=ticket.return_seq)
    ticket.preferred_room_id = ticket.return_room_id
    ticket.is_returning = True
    ticket.return_service_id = ticket.return_room_id = ticket.return_seq = None
    _requeue(ticket, now)
    await _open_visit(s, ticket, local_day(now, settings), now)
    detail = {"returning": True, "from_service_id": finished_service, "from_number": finished_number,
              "to_room_id": ticket.preferred_room_id}
    _log(s, ticket, ev.TICKET_TRANSFERRED, now, user_id, **detail)
    return Outcome(ticket.id, ev.TICKET_TRANSFERRED, {ticket.service_id, finished_service}, served=served,
                   arrival=(ticket.service_id, now, ticket.priority, True), detail=detail,
                   round_trip=(sent_at, now, now) if sent_at is not None else None)


async def _finish(s: AsyncSession, db: Database, ticket: Ticket, now: dt.datetime, user_id: int | None,
                  settings: Settings) -> Outcome:
    """Ends the ticket's current visit; sends a transferred ticket back to where it came from."""
    visit = await _visit(s, ticket)
    started = ticket.started_at or ticket.called_at or now
    served = None
    if ticket.room_id is not None:
        served = Served(ticket.room_id, ticket.service_id, ticket.called_at or started, now, ticket.priority,
                        ticket.is_returning)
    if visit is not None:
        visit.started_at = visit.started_at or started
        visit.ended_at = now
        visit.outcome = "done"
    ticket.started_at = started
    ticket.done_at = now
    ticket.updated_at = now
    back_to = await s.get(QueueService, ticket.return_service_id) if ticket.return_service_id is not None else None
    if back_to is not None:
        return await _send_back(s, db, ticket, back_to, now, user_id, settings, served)
    ticket.status = "done"
    _log(s, ticket, ev.TICKET_DONE, now, user_id)
    return Outcome(ticket.id, ev.TICKET_DONE, set(), served=served)


async def _finish_room_current(s: AsyncSession, db: Database, room_id: int, now: dt.datetime,
                               user_id: int | None, settings: Settings) -> list[Outcome]:
    current = (await s.scalars(select(Ticket).where(Ticket.room_id == room_id,
                                                    Ticket.status.in_(("called", "in_service")))
                               .with_for_update())).all()
    outcomes = []
    for ticket in current:
        if ticket.status in ("called", "in_service"):  # re-checked after the lock
            outcomes.append(await _finish(s, db, ticket, now, user_id, settings))
    return outcomes


def _mark_called(ticket: Ticket, room: QueueRoom, now: dt.datetime) -> None:
    ticket.status = "called"
    ticket.room_id = room.id
    ticket.called_at = now
    ticket.started_at = None
    ticket.recall_count = 0
    ticket.updated_at = now


@dataclass
class QueueView:
    """What an operation read and wrote, as it stands after it: the catalog and the tickets it touched.
    The runtime builds the events and the HTTP reply from it instead of reading them again."""

    services: dict[int, QueueService]
    rooms: dict[int, QueueRoom]
    tickets: dict[int, Ticket]


async def call_next(db: Database, settings: Settings, room_id: int, *, user_id: int | None = None,
                    now: dt.datetime | None = None) -> Outcome | None:
    """Finishes the room's current ticket and calls the next one across the room's services, in one short
    transaction: the rooms, the services and the room's candidates read once, the finished and the called
    rows taken from their UPDATEs. Returns None (after finishing the current one) when nobody waits."""
    now = now or utcnow()
    async with db.transaction() as s:
        rooms = {r.id: r for r in (await s.scalars(select(QueueRoom))).all()}
        room = rooms.get(room_id)
        _check_open(room)
        assert room is not None
        services = {x.id: x for x in (await s.scalars(select(QueueService))).all()}
        rows = (await s.execute(
            select(Ticket.id, Ticket.service_id, Ticket.priority, Ticket.enqueued_at, Ticket.is_returning,
                   Ticket.preferred_room_id, Ticket.status, Ticket.return_service_id)
            .where(or_(and_(Ticket.status == "waiting", Ticket.service_id.in_(room.service_ids or [-1])),
                       and_(Ticket.room_id == room.id, Ticket.status.in_(("called", "in_service"))))))).all()
        current = [row for row in rows if row.status != "waiting"]
        view: QueueView | None = QueueView(services, rooms, {})
        if any(row.return_service_id is not None for row in current):  # a round trip goes back: the full path
            finished = await _finish_room_current(s, db, room.id, now, user_id, settings)
            view = None
        else:
            finished = await _finish_in_place(s, room.id, [row.id for row in current], now, view)
        open_rooms = {r.id for r in rooms.values() if r.open}
        called = await _claim_next(s, settings, room, open_rooms, [row for row in rows if row.status == "waiting"], now)
        done_here = [view.tickets[o.ticket_id] for o in finished] if view is not None else []
        await _visits_after_call(s, [t.visit_id for t in done_here if t.visit_id is not None],
                                 called.visit_id if called is not None else None, room.id, now)
        log_rows = [_event_row(t, ev.TICKET_DONE, now, user_id, room.id) for t in done_here]
        if called is not None:
            log_rows.append(_event_row(called, ev.TICKET_CALLED, now, user_id, room.id, how="next"))
        if log_rows:
            await s.execute(insert(TicketEvent).values(log_rows))
    if called is not None and view is not None:
        view.tickets[called.id] = called
    if called is None:
        return _only_finished(finished, view) if finished else None
    return Outcome(called.id, ev.TICKET_CALLED, {called.service_id}, before=finished, view=view)


def _check_open(room: QueueRoom | None) -> None:
    if room is None:
        raise not_found("Room")
    if not room.open:
        raise conflict(f"{room.names.get('vi', 'The room')} is closed; open it (PATCH open: true) before calling.")


async def _finish_in_place(s: AsyncSession, room_id: int, current: list[int], now: dt.datetime,
                           view: QueueView) -> list[Outcome]:
    """The room's current ticket(s) done, in one conditional UPDATE that returns the rows as they are now
    (a ticket another operation moved meanwhile is left alone)."""
    if not current:
        return []
    done = (await s.scalars(
        update(Ticket).where(Ticket.id.in_(current), Ticket.room_id == room_id,
                             Ticket.status.in_(("called", "in_service")), Ticket.return_service_id.is_(None))
        .values(status="done", done_at=now, updated_at=now,
                started_at=func.coalesce(Ticket.started_at, Ticket.called_at, literal(now, UTCDateTime())))
        .returning(Ticket), execution_options={"synchronize_session": False})).all()
    view.tickets.update({t.id: t for t in done})
    return [Outcome(t.id, ev.TICKET_DONE, set(), served=Served(room_id, t.service_id, t.called_at or t.started_at or now,
                                                                 now, t.priority, t.is_returning))
            for t in done]


async def _claim_next(s: AsyncSession, settings: Settings, room: QueueRoom, open_rooms: set[int],
                      waiting: list[Any], now: dt.datetime) -> Ticket | None:
    """Claims the room's next ticket with a conditional UPDATE that returns its row as it is now; when
    another caller won it, the next one."""
    weights, starvation = settings.queue.priority_weights, float(settings.queue.anti_starvation_minutes)
    items = [queue_item(row, settings, open_rooms) for row in waiting]
    for _attempt in range(CALL_ATTEMPTS):
        pick = next_for_room(items, room.id, room.service_ids, now, weights, starvation)
        if pick is None:
            return None
        claimed = (await s.scalars(
            update(Ticket).where(Ticket.id == pick.ticket_id, Ticket.status == "waiting",
                                 Ticket.service_id.in_(room.service_ids or [-1]))
            .values(status="called", room_id=room.id, called_at=now, started_at=None, recall_count=0, updated_at=now)
            .returning(Ticket), execution_options={"synchronize_session": False, "populate_existing": True})).first()
        if claimed is not None:
            return claimed
        items = [item for item in items if item.ticket_id != pick.ticket_id]  # another caller took it first
    return None


async def _visits_after_call(s: AsyncSession, finished: list[int], called: int | None, room_id: int,
                             now: dt.datetime) -> None:
    """The finished visits end (done) and the called one gets its room and call time, in one UPDATE."""
    ids = [*finished, *([called] if called is not None else [])]
    if not ids:
        return
    at = literal(now, UTCDateTime())
    is_call = Visit.id == (called if called is not None else -1)
    await s.execute(update(Visit).where(Visit.id.in_(ids)).values(
        room_id=case((is_call, room_id), else_=Visit.room_id),
        called_at=case((is_call, func.coalesce(Visit.called_at, at)), else_=Visit.called_at),
        started_at=case((is_call, Visit.started_at), else_=func.coalesce(Visit.started_at, Visit.called_at, at)),
        ended_at=case((is_call, Visit.ended_at), else_=at),
        outcome=case((is_call, Visit.outcome), else_=literal("done")),
    ).execution_options(synchronize_session=False))


def _event_row(ticket: Ticket, kind: str, at: dt.datetime, user_id: int | None, room_id: int,
               **detail: Any) -> dict[str, Any]:
    return {"ticket_id": ticket.id, "type": kind, "at": at, "service_id": ticket.service_id, "room_id": room_id,
            "user_id": user_id, "detail": detail}


def _only_finished(finished: list[Outcome], view: QueueView | None) -> Outcome:
    """call-next found nobody: report the finished ticket(s); `detail.nobody_waiting` tells the caller."""
    last = finished[-1]
    last.before = finished[:-1]
    last.detail = {**last.detail, "nobody_waiting": True}
    last.view = view
    return last


async def call_ticket(db: Database, settings: Settings, ticket_id: int, room_id: int, *,
                      user_id: int | None = None, now: dt.datetime | None = None) -> Outcome:
    """Calls one given ticket (waiting, held or skipped) into a room that serves its service."""
    now = now or utcnow()
    async with db.transaction() as s:
        room = await _open_room(s, room_id)
        # the room's current ticket first, then the target: the same lock order as call-next
        finished = await _finish_room_current(s, db, room.id, now, user_id, settings)
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("waiting", "held", "skipped"), "called")
        resumed = (ticket.held_at, now) if ticket.status == "held" and ticket.held_at is not None else None
        if ticket.service_id not in room.service_ids:
            raise conflict(f"{room.names.get('vi', 'This room')} does not serve this ticket's service; "
                           "call it from a room that does, or transfer it first.")
        _mark_called(ticket, room, now)
        visit = await _visit(s, ticket)
        if visit is not None:
            visit.called_at = visit.called_at or now
            visit.room_id = room.id
        _log(s, ticket, ev.TICKET_CALLED, now, user_id, how="direct")
        return Outcome(ticket.id, ev.TICKET_CALLED, {ticket.service_id}, before=finished, hold=resumed)


async def recall(db: Database, settings: Settings, ticket_id: int, *, user_id: int | None = None,
                 now: dt.datetime | None = None) -> Outcome:
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("called",), "recalled")
        ticket.recall_count += 1
        ticket.recalled_at = now
        ticket.updated_at = now
        _log(s, ticket, ev.TICKET_RECALLED, now, user_id, recall_count=ticket.recall_count)
        return Outcome(ticket.id, ev.TICKET_RECALLED, set(), detail={"recall_count": ticket.recall_count})


async def skip(db: Database, settings: Settings, ticket_id: int, *, user_id: int | None = None,
               now: dt.datetime | None = None) -> Outcome:
    """The called patient did not come: set aside (restorable), or a no-show once it has been recalled
    settings.queue.no_show_after_recalls times."""
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("called",), "skipped")
        ticket.skipped_at = now
        ticket.updated_at = now
        if ticket.recall_count >= settings.queue.no_show_after_recalls:
            ticket.status = "noshow"
            ticket.noshow_at = now
            visit = await _visit(s, ticket)
            if visit is not None:
                visit.ended_at = now
                visit.outcome = "noshow"
            _log(s, ticket, ev.TICKET_NOSHOW, now, user_id, recall_count=ticket.recall_count)
            lost = (Served(ticket.room_id, ticket.service_id, ticket.called_at or now, now)
                    if ticket.room_id is not None else None)
            return Outcome(ticket.id, ev.TICKET_NOSHOW, set(), no_show=lost,
                           detail={"recall_count": ticket.recall_count})
        ticket.status = "skipped"
        _log(s, ticket, ev.TICKET_SKIPPED, now, user_id, recall_count=ticket.recall_count)
        return Outcome(ticket.id, ev.TICKET_SKIPPED, set(), detail={"recall_count": ticket.recall_count})


async def restore(db: Database, settings: Settings, ticket_id: int, *, user_id: int | None = None,
                  now: dt.datetime | None = None) -> Outcome:
    """A skipped or no-show patient is back: into the line where they stood (the line is ordered by
    when they entered it, which restore keeps), not at its end."""
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("skipped", "noshow"), "restored")
        visit = await _visit(s, ticket)
        if visit is not None and visit.ended_at is None:
            visit.ended_at = now
            visit.outcome = "skipped"
        previous = ticket.status
        ticket.status = "waiting"
        ticket.room_id = None
        ticket.recall_count = 0
        ticket.restored_at = now
        ticket.updated_at = now
        await _open_visit(s, ticket, local_day(now, settings), now)
        _log(s, ticket, ev.TICKET_RESTORED, now, user_id, previous=previous)
        return Outcome(ticket.id, ev.TICKET_RESTORED, {ticket.service_id}, detail={"previous": previous})


async def hold(db: Database, settings: Settings, ticket_id: int, *, user_id: int | None = None,
               now: dt.datetime | None = None) -> Outcome:
    """Parks a ticket (the patient stepped out); it keeps its place for when it resumes."""
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("waiting", "called", "in_service"), "held")
        was_waiting = ticket.status == "waiting"
        ticket.status = "held"
        ticket.held_at = now
        ticket.updated_at = now
        _log(s, ticket, ev.TICKET_HELD, now, user_id)
        return Outcome(ticket.id, ev.TICKET_HELD, {ticket.service_id} if was_waiting else set(), hold=(now, None))


async def resume(db: Database, settings: Settings, ticket_id: int, *, user_id: int | None = None,
                 now: dt.datetime | None = None) -> Outcome:
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("held",), "resumed")
        hold = (ticket.held_at or now, now)
        ticket.status = "waiting"
        ticket.room_id = None
        ticket.resumed_at = now
        ticket.updated_at = now
        _log(s, ticket, ev.TICKET_RESUMED, now, user_id)
        return Outcome(ticket.id, ev.TICKET_RESUMED, {ticket.service_id}, hold=hold)


async def start(db: Database, settings: Settings, ticket_id: int, *, user_id: int | None = None,
                now: dt.datetime | None = None) -> Outcome:
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("called",), "started")
        ticket.status = "in_service"
        ticket.started_at = now
        ticket.updated_at = now
        visit = await _visit(s, ticket)
        if visit is not None:
            visit.started_at = now
        _log(s, ticket, ev.TICKET_STARTED, now, user_id)
        return Outcome(ticket.id, ev.TICKET_STARTED, set())


async def done(db: Database, settings: Settings, ticket_id: int, *, user_id: int | None = None,
               now: dt.datetime | None = None) -> Outcome:
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("called", "in_service"), "finished")
        return await _finish(s, db, ticket, now, user_id, settings)


async def transfer(db: Database, settings: Settings, ticket_id: int, service_id: int, *, return_to_room: bool,
                   user_id: int | None = None, now: dt.datetime | None = None) -> Outcome:
    """Sends the patient to another service's line (e.g. exam -> lab). With return_to_room, when that
    service is done the ticket comes back to the original service, to the same room, with priority.
    A ticket already on its way back to a doctor keeps that return (the lab may send it on to imaging;
    it still ends with its doctor); transferring it to that doctor's service is the return itself."""
    now = now or utcnow()
    async with db.transaction() as s:
        ticket = await _lock_ticket(s, ticket_id)
        _require_status(ticket, ("waiting", "called", "in_service", "held"), "transferred")
        target = await s.get(QueueService, service_id)
        if target is None or not target.active:
            raise Problem(404, "Service not found", "No active service with that id; choose one from GET /api/services.")
        if target.id == ticket.service_id:
            raise conflict("The ticket is already in that service's line.")
        source_service, source_room, source_number = ticket.service_id, ticket.room_id, ticket.number
        served = await _end_leg(s, ticket, now)
        if ticket.return_service_id == target.id:
            return await _send_back(s, db, ticket, target, now, user_id, settings, served)
        if ticket.return_service_id is None and return_to_room:
            ticket.return_service_id, ticket.return_room_id, ticket.return_seq = source_service, source_room, ticket.seq
        await _renumber(s, db, ticket, target)
        ticket.is_returning = False
        ticket.preferred_room_id = None
        _requeue(ticket, now)
        await _open_visit(s, ticket, local_day(now, settings), now)
        detail = {"from_service_id": source_service, "from_room_id": source_room, "from_number": source_number,
                  "return_to_room": ticket.return_service_id is not None, "return_room_id": ticket.return_room_id,
                  "returning": False}
        _log(s, ticket, ev.TICKET_TRANSFERRED, now, user_id, **detail)
        return Outcome(ticket.id, ev.TICKET_TRANSFERRED, {source_service, target.id}, served=served,
                       arrival=(target.id, now, ticket.priority, False), detail=detail)


async def _end_leg(s: AsyncSession, ticket: Ticket, now: dt.datetime) -> Served | None:
    """Closes the ticket's current visit as transferred; what the room spent on it, if it was in one."""
    visit = await _visit(s, ticket)
    served = None
    if ticket.status in ("called", "in_service") and ticket.room_id is not None:
        started = ticket.started_at or ticket.called_at or now
        served = Served(ticket.room_id, ticket.service_id, ticket.called_at or started, now, ticket.priority,
                        ticket.is_returning)
        if visit is not None:
            visit.started_at = visit.started_at or started
    if visit is not None:
        visit.ended_at = now
        visit.outcome = "transferred"
    return served


async def repoint_patient(db: Database, from_id: int, into_id: int) -> int:
    """After crm_bridge merged patient from_id into into_id, the tickets follow (returns how many)."""
    async with db.transaction() as s:
        result = await s.execute(update(Ticket).where(Ticket.patient_id == from_id).values(patient_id=into_id))
        return result.rowcount or 0
