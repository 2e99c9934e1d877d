"""One per app: the wait estimator, and what happens after every queue operation (learn, re-estimate,
store the estimates, publish ticket.* and queue.changed).

call-next publishes from the view its transaction kept (the call first, back to back, so the screens get
one frame) and its estimates follow in a refresh shared by a burst; other operations read the queue once,
refreshed, and publish from it. The estimator lives on one worker thread: every record (just before the
next estimate) and every estimate is handed to it in order, so the event loop never runs the forward
simulation."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import select

from clinicall.bus import Event
from clinicall.counters import WindowCounters
from clinicall.db import Database, utcnow
from clinicall.hotpath import HotPath
from clinicall.keys import BUS_KEY, DB_KEY, HOT_PATH_KEY, SETTINGS_KEY, TASKS_KEY
from clinicall.settings import Settings
from crm_bridge.events import PATIENT_MERGED
from queue_display import events as ev
from queue_display import state as qstate
from queue_display.estimates import (
    estimate_queue,
    estimate_ranges,
    learn_arrival,
    learn_hold,
    learn_no_show,
    learn_room_state,
    learn_round_trip,
    learn_service,
    make_estimator,
    warm,
)
from queue_display.models import Ticket
from queue_display.ordering import QueueItem
from queue_display.tickets import Outcome, expire_past_days, repoint_patient, seconds_to_next_day

log = logging.getLogger(__name__)
REFRESH_SECONDS = 60.0
REFRESH_DELAY_SECONDS = 0.1  # after call-next: its events reach the screens before the estimator runs
REFRESH_TASK = "queue-refresh"
CALLS = (ev.TICKET_CALLED, ev.TICKET_RECALLED)
T = TypeVar("T")


def _logged(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception:
        log.exception("queue: the wait estimator could not learn a record")


class QueueRuntime:
    def __init__(self, db: Database, settings: Settings, bus: Any, hot: HotPath | None = None) -> None:
        self.db = db
        self.hot = hot or HotPath()  # the estimates wait for a call on its way to the screens
        self.settings = settings
        self.bus = bus
        queue = settings.queue
        self.estimator = make_estimator(settings.clinic.zone(), queue.priority_weights,
                                        float(queue.anti_starvation_minutes), float(queue.return_hold_minutes))
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queue-estimator")
        self._lessons: list[Callable[[], None]] = []  # records for the estimator, handed over by on_worker
        self._closed = False
        self._lock = asyncio.Lock()  # one refresh at a time; a burst of changes coalesces
        self._write_lock = asyncio.Lock()
        self.kiosk_counts = WindowCounters("clinicall:kiosk-tickets:", settings.bus.redis_url)
        self._requested = 0
        self._completed = 0
        self._last_state: qstate.QueueState | None = None
        self._wanted: set[int] = set()  # services whose estimates a coming refresh publishes
        self._stale = False  # a coming refresh is wanted even if it publishes no line
        self._refresher: asyncio.Task[None] | None = None
        self.refresh_delay = REFRESH_DELAY_SECONDS
        self._refresh_seconds = 0.0  # how long the last refresh after a change took
        self.refreshes = 0  # estimator runs so far (a burst of operations shares one)
        self.warmed = False

    async def kiosk_wait(self, client: str) -> int:
        """The public kiosk API's limit per client address in a one-minute window, counted by every instance
        together when Redis is configured: the seconds to wait when over it, else 0 (go ahead)."""
        count, remaining = await self.kiosk_counts.incr(client[:64], 60)
        return max(1, math.ceil(remaining)) if count > self.settings.queue.kiosk_tickets_per_minute else 0

    def serialised(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """On SQLite, queue writes from this process go one at a time: they would serialise on the
        database lock anyway, and waiting here is much cheaper than SQLite's busy-wait back-off.
        PostgreSQL runs them concurrently (its row locks and conditional updates keep them safe)."""
        return self._write_lock if self.db.is_sqlite else contextlib.nullcontext()

    async def on_worker(self, function: Callable[..., T], *args: Any) -> T:
        """Runs `function(*args)` on the estimator's thread, after everything taught before."""
        lessons, self._lessons = self._lessons, []
        for lesson in lessons:
            self._worker.submit(_logged, lesson)
        return await asyncio.get_running_loop().run_in_executor(self._worker, partial(function, *args))

    def _teach(self, function: Callable[..., None], *args: Any) -> None:
        """The estimator learns it on its thread just before it next runs (on_worker): never while an
        operation's frames go out, when its thread would contend with the event loop for the interpreter."""
        if not self._closed:  # after shutdown there is nothing left to estimate for
            self._lessons.append(partial(function, self.estimator, *args))

    async def estimate(self, now: dt.datetime, waiting: list[QueueItem], rooms: list[Any],
                       away: list[Any] | None = None, held: list[Any] | None = None,
                       ) -> dict[int, tuple[float, float, float]]:
        return await self.on_worker(estimate_ranges, self.estimator, now, waiting, rooms, away, held)

    async def estimate_queue(self, now: dt.datetime, waiting: list[QueueItem], rooms: list[Any],
                             away: list[Any] | None = None, held: list[Any] | None = None,
                             newcomers: list[int] | None = None) -> tuple[qstate.Estimates, qstate.Estimates]:
        """The waiting tickets' estimates and, per service in `newcomers`, a walk-in's taking a number now."""
        return await self.on_worker(estimate_queue, self.estimator, now, waiting, rooms, away, held, newcomers or ())

    async def warm_up(self) -> None:
        await warm(self.estimator, self.db, utcnow(), run=self.on_worker)
        self.warmed = True

    def close(self) -> None:
        self._closed = True
        if self._refresher is not None:
            self._refresher.cancel()
        self._worker.shutdown(wait=True, cancel_futures=True)

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        self.close()

    def learn(self, outcome: Outcome) -> None:
        for step in (*outcome.before, outcome):
            if step.served is not None:
                served = step.served
                self._teach(learn_service, served.room_id, served.service_id, served.started_at, served.ended_at,
                            served.priority, served.returning)
            if step.no_show is not None:
                lost = step.no_show
                self._teach(learn_no_show, lost.room_id, lost.service_id, lost.started_at, lost.ended_at)
            if step.arrival is not None:
                self._teach(learn_arrival, *step.arrival)
            if step.round_trip is not None:  # learned as it happens, not only at start-up
                self._teach(learn_round_trip, *step.round_trip)
            if step.hold is not None:
                self._teach(learn_hold, step.ticket_id, *step.hold)

    async def apply(self, outcome: Outcome | None) -> dict[str, Any] | None:
        """After an operation: learn, refresh estimates, publish. Returns the ticket's JSON."""
        return (await self.applied(outcome)).ticket

    async def applied(self, outcome: Outcome | None) -> Applied:
        """After an operation: the estimator learns, the events go out, the estimates are refreshed. An
        operation that kept its view (call-next), or that moved no waiting line (recall, start, done, skip),
        publishes at once and its estimates follow, shared by a burst; any other reads the queue once,
        refreshed, and publishes from that."""
        if outcome is None:
            await self.refresh_and_publish(set())
            return Applied(None, [], None)
        self.learn(outcome)
        steps = [*outcome.before, outcome]
        changed = set().union(*(step.service_ids for step in steps))
        catalog: qstate.Catalog
        if outcome.view is not None:
            catalog, rows = outcome.view, {step.ticket_id: outcome.view.tickets[step.ticket_id] for step in steps}
            self.request_refresh(changed)
        elif not changed:  # no waiting line moved (recall, start, done, skip...): the estimates follow
            state = await qstate.load_state(self.db, self.settings)
            catalog, rows = state, await self._rows(state, [step.ticket_id for step in steps])
            self.request_refresh(changed)
        else:
            state = await self.refresh_and_publish(changed)
            catalog, rows = state, await self._rows(state, [step.ticket_id for step in steps])
        names = (outcome.view.names if outcome.view is not None
                 else await qstate.masked_names(self.db, self.settings, rows.values()))
        language = self.settings.clinic.language
        published = [(step, self._event_data(step, qstate.tickets_json(catalog, [rows[step.ticket_id]], language,
                                                                        names)[0]))
                     for step in steps if step.ticket_id in rows]
        if outcome.event in CALLS and published and published[-1][0] is outcome:
            published.insert(0, published.pop())  # the call first: screens show it before the rest
        for step, data in published:  # back to back: the bus hands them to the screens as one batch
            await self.bus.publish(step.event, data)
        if published and outcome.event in CALLS:
            await asyncio.sleep(0)  # the screens' frame of the call goes out before the reply is built
        tickets = {step.ticket_id: data["ticket"] for step, data in published}
        return Applied(tickets.get(outcome.ticket_id),
                       [tickets[step.ticket_id] for step in outcome.before if step.ticket_id in tickets],
                       rows.get(outcome.ticket_id))

    @staticmethod
    def _event_data(step: Outcome, ticket: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"ticket": ticket, "at": utcnow().isoformat(), **step.detail}
        if step.served is not None:
            data["served"] = {"room_id": step.served.room_id, "service_id": step.served.service_id,
                              "started_at": step.served.started_at.isoformat(),
                              "ended_at": step.served.ended_at.isoformat(),
                              "priority": step.served.priority, "returning": step.served.returning}
        if step.arrival is not None:
            service_id, at, priority, returning = step.arrival
            data["arrival"] = {"service_id": service_id, "at": at.isoformat(), "priority": priority,
                               "returning": returning}
        if step.round_trip is not None:
            data["round_trip"] = [at.isoformat() for at in step.round_trip]
        if step.hold is not None:
            data["hold"] = [at.isoformat() if at is not None else None for at in step.hold]
        return data

    async def _rows(self, state: qstate.QueueState, ticket_ids: list[int]) -> dict[int, Ticket]:
        """The tickets as the state has them (waiting ones with position and estimate), the rest in one query."""
        rows: dict[int, Ticket] = {}
        for ticket_id in ticket_ids:
            found = state.waiting_ticket(ticket_id) or next(
                (t for t in state.current.values() if t.id == ticket_id), None)
            if found is not None:
                rows[ticket_id] = found
        missing = [i for i in ticket_ids if i not in rows]
        if missing:
            async with self.db.session() as s:
                rows.update({t.id: t for t in (await s.scalars(select(Ticket).where(Ticket.id.in_(missing)))).all()})
        return rows

    async def ticket_data(self, ticket_id: int, state: qstate.QueueState | None = None) -> dict[str, Any] | None:
        state = state or await qstate.load_state(self.db, self.settings)
        ticket = (await self._rows(state, [ticket_id])).get(ticket_id)
        if ticket is None:
            return None
        names = await qstate.masked_names(self.db, self.settings, [ticket])
        return qstate.tickets_json(state, [ticket], self.settings.clinic.language, names)[0]

    def request_refresh(self, changed: set[int]) -> None:
        """Estimates and queue.changed for `changed` soon, after the change's own events went out; the
        requests of a burst share one refresh."""
        self._wanted |= changed
        self._stale = True
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_soon(), name=REFRESH_TASK)

    async def _refresh_soon(self) -> None:
        """Under a stream of changes the refreshes are spaced by at least as long as the last one took, so
        the estimator (its thread shares the interpreter with the event loop) takes at most about half."""
        loop = asyncio.get_running_loop()
        while self._stale:
            await asyncio.sleep(max(self.refresh_delay, self._refresh_seconds))
            await self.hot.clear()
            changed, self._wanted, self._stale = self._wanted, set(), False
            began = loop.time()
            try:
                await self.refresh_and_publish(changed)
            except Exception:
                log.exception("queue: estimate refresh failed; the next change or the periodic one retries")
            self._refresh_seconds = loop.time() - began

    async def settled(self) -> None:
        """Until the refreshes asked for so far are done (tests and benches wait for them)."""
        while self._refresher is not None and not self._refresher.done():
            await asyncio.shield(self._refresher)

    async def refreshed_state(self) -> qstate.QueueState:
        """Fresh estimates that include every change committed before this call. Concurrent callers
        share one refresh: one that began after a caller's request already covers its change."""
        self._requested += 1
        mine = self._requested
        async with self._lock:
            if self._completed >= mine and self._last_state is not None:
                return self._last_state
            covers = self._requested
            self.refreshes += 1
            state = await qstate.refresh(self.db, self.settings, self.estimate_queue, write_guard=self.serialised())
            self._completed, self._last_state = covers, state
            return state

    async def refresh_and_publish(self, changed: set[int]) -> qstate.QueueState:
        state = await self.refreshed_state()
        language = self.settings.clinic.language
        names = await qstate.masked_names(self.db, self.settings, [t for sid in changed
                                                                   for t in state.waiting.get(sid, [])])
        for service_id in sorted(changed):
            line = state.waiting.get(service_id, [])
            joining = state.newcomer_wait(service_id)
            await self.bus.publish(ev.QUEUE_CHANGED, {
                "service_id": service_id,
                "waiting": qstate.tickets_json(state, line, language, names),
                "newcomer": list(joining) if joining else None,  # a walk-in taking a number now
                "at": utcnow().isoformat(),
            })
        return state

    async def keep_fresh(self, every_seconds: float = REFRESH_SECONDS) -> None:
        """Waits shrink as time passes even when nothing happens: re-estimate and tell the screens."""
        while True:
            await asyncio.sleep(every_seconds)
            await self.hot.clear()
            try:
                state = await qstate.load_state(self.db, self.settings)
                await self.refresh_and_publish({sid for sid, line in state.waiting.items() if line})
            except Exception:
                log.exception("queue: periodic estimate refresh failed; retrying in %s s", every_seconds)

    async def expire_past_days(self) -> int:
        """The past days' tickets still waiting, held or set aside expire; screens and pages are told."""
        async with self.serialised():
            outcomes = await expire_past_days(self.db, self.settings)
        if outcomes:
            outcomes[-1].before = outcomes[:-1]
            await self.applied(outcomes[-1])
            log.info("queue: %d ticket(s) of past days expired at the day's end", len(outcomes))
        return len(outcomes)

    async def expire_at_day_end(self) -> None:
        """At start-up and just after each midnight (clinic time): the past days' leftovers expire."""
        while True:
            try:
                await self.expire_past_days()
            except Exception:
                log.exception("queue: expiring the past days' tickets failed; retrying in an hour")
                await asyncio.sleep(3600)
                continue
            await asyncio.sleep(seconds_to_next_day(utcnow(), self.settings) + 1)

    async def room_state_changed(self, room_id: int, open: bool, at: dt.datetime) -> None:
        """A room opened or closed: the estimator learns the room's timetable; other instances too."""
        self._teach(learn_room_state, room_id, open, at)
        await self.bus.publish(ev.ROOM_STATE, {"room_id": room_id, "open": open, "at": at.isoformat()})

    async def catalog_changed(self) -> None:
        """A service or room was made or changed: every screen takes a fresh snapshot (names, rooms' services)."""
        await self.bus.publish(ev.CATALOG_CHANGED, {"at": utcnow().isoformat()})

    async def on_remote_event(self, event: Event) -> None:
        """Another instance's operation: learn from it too (its estimates are already stored)."""
        if event.origin == getattr(self.bus, "instance_id", None):
            return
        served, arrival = event.data.get("served"), event.data.get("arrival")
        trip, hold = event.data.get("round_trip"), event.data.get("hold")
        try:
            if event.type == ev.ROOM_STATE:
                self._teach(learn_room_state, int(event.data["room_id"]), bool(event.data["open"]),
                            dt.datetime.fromisoformat(event.data["at"]))
                return
            if isinstance(served, dict):
                self._teach(learn_service, int(served["room_id"]), int(served["service_id"]),
                            dt.datetime.fromisoformat(served["started_at"]),
                            dt.datetime.fromisoformat(served["ended_at"]),
                            str(served.get("priority", "normal")), bool(served.get("returning")))
            if isinstance(arrival, dict):
                self._teach(learn_arrival, int(arrival["service_id"]), dt.datetime.fromisoformat(arrival["at"]),
                            str(arrival.get("priority", "normal")), bool(arrival.get("returning")))
            if isinstance(trip, list) and len(trip) == 3:
                self._teach(learn_round_trip, *(dt.datetime.fromisoformat(at) for at in trip))
            if isinstance(hold, list) and len(hold) == 2:
                self._teach(learn_hold, int(event.data["ticket"]["id"]), dt.datetime.fromisoformat(hold[0]),
                            dt.datetime.fromisoformat(hold[1]) if hold[1] else None)
        except (KeyError, TypeError, ValueError):
            log.warning("ignored a malformed %s event from another instance", event.type)


@dataclass
class Applied:
    """An operation as published: its ticket as the screens see it, the tickets it finished first, and its
    row as it stands after the operation (the staff's reply adds its timestamps)."""

    ticket: dict[str, Any] | None
    finished: list[dict[str, Any]]
    row: Ticket | None


RUNTIME_KEY = web.AppKey("queue_runtime", QueueRuntime)


async def follow_merge(db: Database, event: Event) -> None:
    moved = await repoint_patient(db, int(event.data["from_id"]), int(event.data["into_id"]))
    log.info("patient %s merged into %s: %d ticket(s) re-pointed", event.data["from_id"], event.data["into_id"], moved)


async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = QueueRuntime(app[DB_KEY], app[SETTINGS_KEY], app[BUS_KEY], app[HOT_PATH_KEY])
    app[RUNTIME_KEY] = runtime
    try:
        await runtime.warm_up()
    except Exception:  # e.g. the database is not migrated yet: estimates start cold
        log.exception("queue: could not warm the wait estimator; it starts cold")
    unsubscribe = [app[BUS_KEY].subscribe(pattern, runtime.on_remote_event)
                   for pattern in (ev.TICKET_DONE, ev.TICKET_ISSUED, ev.TICKET_TRANSFERRED, ev.ROOM_STATE,
                                   ev.TICKET_HELD, ev.TICKET_RESUMED)]
    unsubscribe.append(app[BUS_KEY].subscribe(PATIENT_MERGED, partial(follow_merge, app[DB_KEY])))
    app[TASKS_KEY].spawn(runtime.keep_fresh(), name="queue-estimates")
    if app[SETTINGS_KEY].queue.expire_at_day_end:
        app[TASKS_KEY].spawn(runtime.expire_at_day_end(), name="queue-day-end")
    yield
    for undo in unsubscribe:
        undo()
    await runtime.stop()
    await runtime.kiosk_counts.close()
