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
from functools import partial
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    Integer,
    all_,
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
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
from queue_display.ordering import PRIORITIES, QueueItem, order_for_room, order_from_heads

CALL_ATTEMPTS = 50
PATIENT_LOCK_SPACE = 0x51554555  # pg_advisory_xact_lock(space, patient id): one ticket issued per patient at a time
HEADS = 8  # call-next reads this many of each group at the head of the room's line


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


def seconds_to_next_day(now: dt.datetime, settings: Settings) -> float:
    """Seconds from `now` to the next midnight, clinic time."""
    zone = settings.clinic.zone()
    tomorrow = now.astimezone(zone).date() + dt.timedelta(days=1)
    return (dt.datetime.combine(tomorrow, dt.time(), zone) - now).total_seconds()


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
    """The service's next number of the day, passing over any number a ticket of another day still holds
    in this service's line (left waiting, held or skipped when the day rolled over): two tickets on one
    screen never share a number."""
    insert = pg_insert if db.is_postgres else sqlite_insert
    statement = (
        insert(QueueCounter)
        .values(service_id=service_id, local_day=day, last_seq=1)
        .on_conflict_do_update(index_elements=["service_id", "local_day"],
                               set_={"last_seq": QueueCounter.last_seq + 1})
        .returning(QueueCounter.last_seq)
    )
    taken = set((await s.scalars(select(Ticket.seq).where(
        Ticket.service_id == service_id, Ticket.local_day != day, Ticket.status.in_(ACTIVE_STATUSES)))).all())
    while True:
        seq = int((await s.execute(statement)).scalar_one())
        if seq not in taken:
            return seq


async def _renumber(s: AsyncSession, db: Database, ticket: Ticket, service: QueueService,
                    keep_seq: int | None = None) -> None:
    """The ticket joins another service's line: it takes a number of that service (its own earlier
    number there when it comes back, unless that was somehow given to another ticket)."""
    seq = keep_seq
    if seq is not None and await s.scalar(select(Ticket.id).where(
            Ticket.service_id == service.id, Ticket.seq == seq, Ticket.id != ticket.id,
            or_(Ticket.local_day == ticket.local_day, Ticket.status.in_(ACTIVE_STATUSES)))) is not None:
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
                                   f"{service.closes_at}. Please ask at reception.", code="service_closed")
                if patient_id is not None:
                    if db.is_postgres:  # two desks checking one patient in at once: one after the other
                        await s.execute(text("SELECT pg_advisory_xact_lock(:space, :patient)"),
                                        {"space": PATIENT_LOCK_SPACE, "patient": patient_id})
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
        raise conflict(f"{room.names.get('vi', 'The room')} is closed; open it (PATCH open: true) before calling.",
                       code="room_closed")
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
    """What an operation read and wrote, as it stands after it: the catalog and the tickets it touched, as
    plain rows (the columns ticket_json reads). The runtime builds the events and the HTTP reply from it
    instead of reading them again."""

    services: dict[int, Any]
    rooms: dict[int, Any]
    tickets: dict[int, Any]
    names: dict[int, str] = field(default_factory=dict)  # patient id -> masked name (display.name_mask)


def _statements(postgres: bool) -> dict[str, Any]:
    """call-next's statements, built once (building and keying a statement costs more than SQLite running it).
    A list of ids is an array on PostgreSQL (`= ANY`: one SQL text whatever its length, so nothing is rewritten
    per execution and asyncpg keeps one prepared statement) and an expanding IN on SQLite."""
    t, v, r, x = Ticket.__table__.c, Visit.__table__.c, QueueRoom.__table__.c, QueueService.__table__.c

    def within(column: Any, name: str) -> Any:
        return column == any_(bindparam(name, type_=ARRAY(Integer))) if postgres \
            else column.in_(bindparam(name, expanding=True))

    def not_within(column: Any, name: str) -> Any:
        return column != all_(bindparam(name, type_=ARRAY(Integer))) if postgres \
            else column.not_in(bindparam(name, expanding=True))

    now, room = bindparam("now", type_=UTCDateTime()), bindparam("room")
    claim = (update(Ticket.__table__).where(t.status == "waiting", within(t.service_id, "services"))
             .values(status="called", room_id=room, called_at=now, started_at=None, recall_count=0, updated_at=now)
             .returning(*t))
    candidates = bindparam("candidates", type_=ARRAY(Integer))
    is_call = v.id == bindparam("call")
    line = (t.id, t.service_id, t.priority, t.enqueued_at, t.is_returning, t.preferred_room_id, t.status,
            t.return_service_id)
    # who this room may call (ordering.may_serve through queue_item): no preferred room, this one, a closed or
    # gone one, or the preferred room's hold is over
    may_call = or_(t.preferred_room_id.is_(None), t.preferred_room_id == room,
                   not_within(t.preferred_room_id, "open_rooms"),
                   t.enqueued_at <= bindparam("held_until", type_=UTCDateTime()))

    def head(*group: Any) -> Any:
        """The first HEADS of one group in call order, read down ix_queue_tickets_line."""
        first = (select(*line).where(t.status == "waiting", *group, within(t.service_id, "services"), may_call)
                 .order_by(t.enqueued_at, t.id).limit(bindparam("heads")).subquery())
        return select(*first.c)

    heads = [head(t.priority == p, t.is_returning == r) for p in PRIORITIES for r in (False, True)]
    # a priority the operations never write (the rule counts it as normal): every such ticket, each range of
    # the index between the known ones read on its own (nothing to read, normally)
    known = sorted(PRIORITIES)
    gaps = (t.priority < known[0], t.priority > known[-1],
            *(and_(t.priority > a, t.priority < b) for a, b in zip(known, known[1:], strict=False)))
    unknown = [select(*line).where(t.status == "waiting", gap) for gap in gaps]
    return {
        "rooms": select(r.id, r.kind, r.number, r.names, r.service_ids, r.open),
        "services": select(x.id, x.prefix, x.names),
        # the room's current ticket(s), and the head of its line: the first HEADS it may call of each group of
        # one head start (ordering.head_group), whose call order is (enqueued_at, id)
        "candidates": union_all(select(*line).where(t.room_id == room, or_(t.status == "called", t.status == "in_service")),
                                *heads, *unknown),
        "line": select(*line).where(t.status == "waiting", within(t.service_id, "services")),
        "finish": update(Ticket.__table__)
        .where(within(t.id, "current"), t.room_id == room,
               t.status.in_(("called", "in_service")), t.return_service_id.is_(None))
        .values(status="done", done_at=now, updated_at=now, started_at=func.coalesce(t.started_at, t.called_at, now))
        .returning(*t),
        "claim": claim.where(t.id == bindparam("pick")),
        # PostgreSQL: the first candidate in call order that no concurrent transaction holds
        "claim_free": claim.where(t.id == select(t.id).where(t.id == any_(candidates), t.status == "waiting")
                                  .order_by(func.array_position(candidates, t.id)).limit(1)
                                  .with_for_update(skip_locked=True).scalar_subquery()),
        "visits": update(Visit.__table__).where(within(v.id, "visits")).values(
            room_id=case((is_call, room), else_=v.room_id),
            called_at=case((is_call, func.coalesce(v.called_at, now)), else_=v.called_at),
            started_at=case((is_call, v.started_at), else_=func.coalesce(v.started_at, v.called_at, now)),
            ended_at=case((is_call, v.ended_at), else_=now),
            outcome=case((is_call, v.outcome), else_=literal("done"))),
        "events": insert(TicketEvent.__table__),
    }


SQLITE_SQL, POSTGRES_SQL = _statements(False), _statements(True)


class _PgStatement:
    """A prebuilt statement compiled once for asyncpg: its SQL text and its parameters in order."""

    def __init__(self, statement: Any) -> None:
        compiled = statement.compile(dialect=asyncpg_dialect.dialect())
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or ())
        self.defaults = {name: compiled.params[name] for name in self.names}

    def args(self, **given: Any) -> list[Any]:
        return [given[name] if name in given else self.defaults[name] for name in self.names]


PG_READ = {name: _PgStatement(POSTGRES_SQL[name]) for name in ("rooms", "services", "candidates")}
# finish the room's current ticket(s), claim the first candidate no one else holds, end and start their visits
# and log their events: one statement (its parts see the same snapshot and touch different rows)
PG_CALL = """
WITH done AS (
    UPDATE queue_tickets SET status = 'done', done_at = $3::timestamptz, updated_at = $3,
                             started_at = coalesce(started_at, called_at, $3)
    WHERE id = ANY($1::integer[]) AND room_id = $2::integer AND status IN ('called', 'in_service')
          AND return_service_id IS NULL
    RETURNING *
), pick AS (
    SELECT id FROM queue_tickets WHERE id = ANY($4::integer[]) AND status = 'waiting' AND service_id = ANY($5::integer[])
          AND (SELECT count(*) FROM done) >= 0  -- finish first, then claim: call_ticket's and the full path's lock order
    ORDER BY array_position($4::integer[], id) LIMIT 1 FOR UPDATE SKIP LOCKED
), called AS (
    UPDATE queue_tickets t SET status = 'called', room_id = $2, called_at = $3, started_at = NULL, recall_count = 0,
                               updated_at = $3
    FROM pick WHERE t.id = pick.id AND t.status = 'waiting'
    RETURNING t.*
), visits AS (
    UPDATE queue_visits v SET
        room_id = CASE WHEN c.id IS NULL THEN v.room_id ELSE $2 END,
        called_at = CASE WHEN c.id IS NULL THEN v.called_at ELSE coalesce(v.called_at, $3) END,
        started_at = CASE WHEN c.id IS NULL THEN coalesce(v.started_at, v.called_at, $3) ELSE v.started_at END,
        ended_at = CASE WHEN c.id IS NULL THEN $3 ELSE v.ended_at END,
        outcome = CASE WHEN c.id IS NULL THEN 'done' ELSE v.outcome END
    FROM (SELECT visit_id, NULL::integer AS id FROM done UNION ALL SELECT visit_id, id FROM called) c
    WHERE v.id = c.visit_id
), logged AS (
    INSERT INTO queue_ticket_events (ticket_id, type, at, service_id, room_id, user_id, detail)
    SELECT id, 'ticket.done', $3::timestamptz, service_id, $2::integer, $6::integer, '{}'::json FROM done
    UNION ALL SELECT id, 'ticket.called', $3::timestamptz, service_id, $2::integer, $6::integer, '{"how": "next"}'::json
    FROM called
)
SELECT true AS was_called, * FROM called UNION ALL SELECT false, * FROM done
"""


class _Lean:
    """An asyncpg record read by attribute, as the lean rows of the SQLAlchemy path are."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


class _Elsewhere(Exception):
    """The fast path cannot finish this call-next (a round trip, every head taken): roll back, take the full one."""


def statements(conn: Connection) -> dict[str, Any]:
    return POSTGRES_SQL if conn.dialect.name == "postgresql" else SQLITE_SQL


async def call_next(db: Database, settings: Settings, room_id: int, *, user_id: int | None = None,
                    now: dt.datetime | None = None) -> Outcome | None:
    """Finishes the room's current ticket and calls the next one across the room's services, in one short
    transaction (Database.run_sync: on SQLite one hand-off to the writer thread) of prebuilt statements:
    the rooms, the services and the room's candidates read once as lean rows, the finished and the called
    rows taken from their UPDATEs, the visits in one UPDATE and the events in one INSERT. A current ticket
    on a round trip goes back to its doctor through the full path (_call_next_round_trip). Returns None
    (after finishing the current one) when nobody waits."""
    now = now or utcnow()
    if db.is_postgres:
        try:
            return await _call_next_pg(db, settings, room_id, user_id, now)
        except _Elsewhere:
            pass
    work = partial(_call_next_in, is_postgres=db.is_postgres, settings=settings, room_id=room_id, user_id=user_id,
                   now=now)
    outcome = await db.run_sync(work)
    if outcome is ROUND_TRIP:
        return await _call_next_round_trip(db, settings, room_id, user_id=user_id, now=now)
    assert not isinstance(outcome, str)
    return outcome


ROUND_TRIP = "round trip"


def _call_next_in(conn: Connection, *, is_postgres: bool, settings: Settings, room_id: int, user_id: int | None,
                  now: dt.datetime) -> Outcome | str | None:
    rooms, services = _read_room(conn, room_id)
    view = QueueView(services, rooms, {})
    room = rooms[room_id]
    rows = _candidates(conn, room, rooms, settings, now)
    current = [row.id for row in rows if row.status != "waiting"]
    if any(row.return_service_id is not None for row in rows if row.status != "waiting"):
        return ROUND_TRIP
    done = conn.execute(statements(conn)["finish"], {"current": current, "room": room.id, "now": now}).all() if current else []
    view.tickets.update({t.id: t for t in done})
    finished = [Outcome(t.id, ev.TICKET_DONE, set(), served=Served(room.id, t.service_id, t.called_at or t.started_at
                                                                    or now, now, t.priority, t.is_returning))
                for t in done]
    called = _claim_next(conn, is_postgres, settings, room, rooms, [row for row in rows if row.status == "waiting"],
                         now)
    _record_call(conn, done, called, room.id, user_id, now)
    if called is not None:
        view.tickets[called.id] = called
    view.names = _masked_names(conn, settings, view.tickets.values())
    if called is None:
        return _only_finished(finished, view) if finished else None
    return Outcome(called.id, ev.TICKET_CALLED, {called.service_id}, before=finished, view=view)


async def _call_next_pg(db: Database, settings: Settings, room_id: int, user_id: int | None,
                        now: dt.datetime) -> Outcome | None:
    """call-next on PostgreSQL straight through asyncpg: one transaction of four prepared statements (the rooms,
    the services, the room's candidates, then PG_CALL). Raises _Elsewhere (after rolling back) when the full path
    must do it: the current ticket goes back to its doctor, or no head of the line could be claimed."""
    async with db.pg_transaction() as conn:
        rooms = {r["id"]: _Lean(r) for r in await conn.fetch(PG_READ["rooms"].sql)}
        room = rooms.get(room_id)
        _check_open(room)
        services = {x["id"]: _Lean(x) for x in await conn.fetch(PG_READ["services"].sql)}
        service_ids = list(room.service_ids or [-1])
        open_rooms = [r.id for r in rooms.values() if r.open]
        hold = dt.timedelta(minutes=settings.queue.return_hold_minutes)
        statement = PG_READ["candidates"]
        rows = [_Lean(r) for r in await conn.fetch(statement.sql, *statement.args(
            services=service_ids, room=room.id, heads=HEADS, held_until=now - hold, open_rooms=open_rooms))]
        current = [row for row in rows if row.status != "waiting"]
        if any(row.return_service_id is not None for row in current):
            raise _Elsewhere
        weights, starvation = settings.queue.priority_weights, float(settings.queue.anti_starvation_minutes)
        ordered, whole = order_from_heads([queue_item(row, settings, set(open_rooms)) for row in rows
                                           if row.status == "waiting"], HEADS, room.id, room.service_ids, now,
                                          weights, starvation)
        if not ordered and not whole:
            raise _Elsewhere
        written = await conn.fetch(PG_CALL, [row.id for row in current], room.id, now,
                                   [item.ticket_id for item in ordered], service_ids, user_id)
        if ordered and not any(row["was_called"] for row in written):
            raise _Elsewhere  # every head was taken meanwhile: the full path waits for them or reads the line
    done = [_Lean(row) for row in written if not row["was_called"]]
    called = next((_Lean(row) for row in written if row["was_called"]), None)
    view = QueueView(services, rooms, {t.id: t for t in done})
    finished = [Outcome(t.id, ev.TICKET_DONE, set(), served=Served(room.id, t.service_id, t.called_at or t.started_at
                                                                    or now, now, t.priority, t.is_returning))
                for t in done]
    if called is not None:
        view.tickets[called.id] = called
    view.names = await _masked_names_after(db, settings, view.tickets.values())
    if called is None:
        return _only_finished(finished, view) if finished else None
    return Outcome(called.id, ev.TICKET_CALLED, {called.service_id}, before=finished, view=view)


async def _masked_names_after(db: Database, settings: Settings, rows: Collection[Any]) -> dict[int, str]:
    wanted = {row.patient_id for row in rows if row.patient_id is not None}
    if settings.display.name_mask == "none" or not wanted:
        return {}
    try:
        from crm_bridge.service import masked_names
    except ImportError:
        return {}
    return await masked_names(db, wanted)


async def _call_next_round_trip(db: Database, settings: Settings, room_id: int, *, user_id: int | None,
                                now: dt.datetime) -> Outcome | None:
    """call-next when the room's current ticket goes back to its doctor when done: finished through _finish
    (which sends it back), then the next one claimed as usual. The runtime reads what it publishes again."""
    async with db.transaction() as s:
        conn = await s.connection()
        rooms, _services = await conn.run_sync(_read_room, room_id)
        room = rooms[room_id]
        rows = await conn.run_sync(_candidates, room, rooms, settings, now)
        finished = await _finish_room_current(s, db, room.id, now, user_id, settings)
        await s.flush()
        called = await conn.run_sync(_claim_next, db.is_postgres, settings, room, rooms,
                                     [row for row in rows if row.status == "waiting"], now)
        await conn.run_sync(_record_call, [], called, room.id, user_id, now)
    if called is None:
        return _only_finished(finished, None) if finished else None
    return Outcome(called.id, ev.TICKET_CALLED, {called.service_id}, before=finished)


def _read_room(conn: Connection, room_id: int) -> tuple[dict[int, Any], dict[int, Any]]:
    """Every room and service (lean rows); Problem when the room is unknown or closed."""
    rooms = {r.id: r for r in conn.execute(statements(conn)["rooms"]).all()}
    _check_open(rooms.get(room_id))
    return rooms, {x.id: x for x in conn.execute(statements(conn)["services"]).all()}


def _candidates(conn: Connection, room: Any, rooms: dict[int, Any], settings: Settings, now: dt.datetime) -> list[Any]:
    """The room's current ticket(s) and the head of the line it calls from (HEADS of each head_group)."""
    hold = dt.timedelta(minutes=settings.queue.return_hold_minutes)
    return list(conn.execute(statements(conn)["candidates"], {
        "services": list(room.service_ids or [-1]), "room": room.id, "heads": HEADS, "held_until": now - hold,
        "open_rooms": [r.id for r in rooms.values() if r.open]}).all())


def _masked_names(conn: Connection, settings: Settings, rows: Collection[Any]) -> dict[int, str]:
    """The screens' masked names of these tickets' patients, in the operation's own transaction."""
    wanted = [row.patient_id for row in rows if row.patient_id is not None]
    if settings.display.name_mask == "none" or not wanted:
        return {}
    try:
        from crm_bridge.service import masked_names_in
    except ImportError:
        return {}
    return masked_names_in(conn, wanted)


def _check_open(room: Any) -> None:
    if room is None:
        raise not_found("Room")
    if not room.open:
        raise conflict(f"{room.names.get('vi', 'The room')} is closed; open it (PATCH open: true) before calling.",
                       code="room_closed")


def _claim_next(conn: Connection, is_postgres: bool, settings: Settings, room: Any, rooms: dict[int, Any],
                waiting: list[Any], now: dt.datetime) -> Any | None:
    """Claims the room's next ticket with a conditional UPDATE that returns its row as it is now, from the
    head of its line (`waiting`, read by _candidates), or from the whole line when every ticket of the head
    whose place is certain was taken meanwhile."""
    weights, starvation = settings.queue.priority_weights, float(settings.queue.anti_starvation_minutes)
    open_rooms = {r.id for r in rooms.values() if r.open}
    ordered, whole = order_from_heads([queue_item(row, settings, open_rooms) for row in waiting], HEADS, room.id,
                                      room.service_ids, now, weights, starvation)
    claimed = _claim_first(conn, is_postgres, room, ordered, now)
    if claimed is None and not whole:
        line = conn.execute(statements(conn)["line"], {"services": list(room.service_ids or [-1])}).all()
        ordered = order_for_room([queue_item(row, settings, open_rooms) for row in line], room.id, room.service_ids,
                                 now, weights, starvation)
        claimed = _claim_first(conn, is_postgres, room, ordered, now)
    return claimed


def _claim_first(conn: Connection, is_postgres: bool, room: Any, ordered: list[QueueItem],
                 now: dt.datetime) -> Any | None:
    """The first of `ordered` still waiting. On PostgreSQL the first that no concurrent call-next holds (FOR
    UPDATE SKIP LOCKED), so callers in other rooms never queue behind one another's claims; when every one is
    held or taken, one after the other, waiting for each (a claim rolled back frees its ticket). On SQLite
    the transaction holds the write lock, so the first is always free."""
    if not ordered:
        return None
    params = {"services": list(room.service_ids or [-1]), "room": room.id, "now": now}
    if is_postgres:
        claimed = conn.execute(statements(conn)["claim_free"], {**params, "candidates": [i.ticket_id for i in ordered]}).first()
        if claimed is not None:
            return claimed
    for item in ordered[:CALL_ATTEMPTS]:
        claimed = conn.execute(statements(conn)["claim"], {**params, "pick": item.ticket_id}).first()
        if claimed is not None:
            return claimed
    return None


def _record_call(conn: Connection, done: list[Any], called: Any | None, room_id: int, user_id: int | None,
                 now: dt.datetime) -> None:
    """The finished visits end (done) and the called one gets its room and call time, in one UPDATE; their
    events in one INSERT."""
    call = called.visit_id if called is not None else None
    ids = [*(t.visit_id for t in done if t.visit_id is not None), *([call] if call is not None else [])]
    if ids:
        conn.execute(statements(conn)["visits"], {"visits": ids, "call": call if call is not None else -1, "room": room_id,
                                     "now": now})
    log_rows = [_event_row(t, ev.TICKET_DONE, now, user_id, room_id) for t in done]
    if called is not None:
        log_rows.append(_event_row(called, ev.TICKET_CALLED, now, user_id, room_id, how="next"))
    if log_rows:
        conn.execute(statements(conn)["events"], log_rows)


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
        if ticket.return_service_id != target.id:
            await _check_takes_patients(s, target, now, settings)
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


async def _check_takes_patients(s: AsyncSession, target: QueueService, now: dt.datetime, settings: Settings) -> None:
    """A patient is sent on only to a service that will see them: within its hours, or with a room of it open
    (a lab closed for the day would keep them waiting until the day's end, never back with their doctor)."""
    if is_open_now(target, now, settings.clinic.zone()):
        return
    rooms = (await s.scalars(select(QueueRoom).where(QueueRoom.open.is_(True)))).all()
    if not any(target.id in room.service_ids for room in rooms):
        raise conflict(f"{target.names.get('vi')} is closed now (hours {target.opens_at}–{target.closes_at}) and "
                       "none of its rooms is open: the patient would wait for nobody. Send them to another "
                       "service, or open one of its rooms first.", code="transfer_target_closed")


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


LEFT_AT_DAY_END = ("waiting", "held", "skipped")


async def expire_past_days(db: Database, settings: Settings, *, now: dt.datetime | None = None) -> list[Outcome]:
    """Tickets still waiting, held or set aside when their clinic day ended were not seen that day: they end
    as `expired` (when they left is not known: their visit keeps no end time). A ticket called or in service
    stays with its room until the room finishes it."""
    now = now or utcnow()
    today = local_day(now, settings)
    outcomes = []
    async with db.transaction() as s:
        left = (await s.scalars(select(Ticket).where(Ticket.local_day < today, Ticket.status.in_(LEFT_AT_DAY_END))
                                .order_by(Ticket.id).with_for_update())).all()
        for ticket in left:
            if ticket.status not in LEFT_AT_DAY_END:  # re-checked after the lock
                continue
            visit = await _visit(s, ticket)
            if visit is not None and visit.outcome is None:
                visit.outcome = "expired"
            detail = {"from_status": ticket.status, "day": ticket.local_day.isoformat()}
            _log(s, ticket, ev.TICKET_EXPIRED, now, None, **detail)
            ticket.status = "expired"
            ticket.room_id = None
            ticket.updated_at = now
            outcomes.append(Outcome(ticket.id, ev.TICKET_EXPIRED, {ticket.service_id}, detail=detail))
    return outcomes
