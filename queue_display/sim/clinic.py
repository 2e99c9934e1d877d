"""One simulated clinic day, event by event, calling patients with the clinic's real ordering policy.

Seeded and reproducible: the same (scenario, seed, day) gives the same day. Observers see every queue
entry, call, finished service and no-show as it happens, with the queue as it stands at that moment.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from queue_display.estimator import Away, Held, RoomState
from queue_display.ordering import QueueItem, next_for_room
from queue_display.sim.scenarios import LAB, ULTRASOUND, RoomSpec, Scenario, ServiceSpec

PRIORITY_SLOWER = {"emergency": 1.3, "elderly": 1.15, "disabled": 1.1}  # patients who need longer
SLOW_WALKERS = {"elderly": 1.6, "disabled": 1.8, "pregnant": 1.2}


RETURN_HOLD = dt.timedelta(minutes=60)  # queue.return_hold_minutes' default

@dataclass
class Entry:
    """One stay in a waiting line: a ticket issued, transferred to the lab, or back from it."""

    entry_id: int
    ticket_id: int
    service_id: int
    priority: str
    enqueued: float  # epoch seconds
    kind: str  # "walk_in", "transfer" or "return"
    no_show: bool = False
    returning: bool = False
    preferred_room_id: int | None = None
    back_to_room: int | None = None  # a lab/ultrasound entry: the consult room to go back to
    back_to_service: int | None = None
    called: float | None = None
    room_id: int | None = None
    sent_at: float | None = None  # a return: when the doctor sent the patient to the lab ...
    lab_done_at: float | None = None  # ... and when the lab was done with them
    resumed_at: float | None = None  # back in line after a hold (it kept its place: `enqueued` stays)

    def item(self, open_room_ids: Collection[int]) -> QueueItem:
        """As tickets.queue_item: the doctor's room keeps a returning patient while it is open, for
        RETURN_HOLD at most; a closed room's patients are anyone's."""
        enqueued = dt.datetime.fromtimestamp(self.enqueued, dt.UTC)
        preferred, until = self.preferred_room_id, None
        if preferred is not None:
            if preferred in open_room_ids:
                until = enqueued + RETURN_HOLD
            else:
                preferred = None
        return QueueItem(self.entry_id, self.service_id, self.priority, enqueued, self.returning, preferred, until)


class Observer(Protocol):
    def entered(self, day: ClinicDay, entry: Entry) -> None: ...
    def called(self, day: ClinicDay, entry: Entry) -> None: ...
    def served(self, room_id: int, service_id: int, started: float, ended: float, entry: Entry) -> None: ...
    def missed(self, room_id: int, service_id: int, called: float, ended: float) -> None: ...
    def room_changed(self, room_id: int, open: bool, at: float) -> None: ...
    def held(self, day: ClinicDay, entry: Entry) -> None: ...
    def resumed(self, day: ClinicDay, entry: Entry, held_at: float) -> None: ...


@dataclass
class _Room:
    spec: RoomSpec
    open: bool = False
    busy_with: Entry | None = None
    busy_since: float | None = None
    break_pending: float = 0.0  # minutes of break to take once the current patient is done
    pace: float = 1.0  # today's doctor: multiplies service times


class ClinicDay:
    """Simulates one local day of `scenario`; `run(observers)` returns every entry (called or not)."""

    def __init__(self, scenario: Scenario, seed: int, day_index: int, zone: ZoneInfo,
                 weights: Mapping[str, float], starvation_minutes: float) -> None:
        self.scenario = scenario
        self.rng = random.Random(f"{scenario.name}:{seed}:{day_index}")
        self.zone = zone
        self.weights = dict(weights)
        self.starvation_minutes = starvation_minutes
        self.date = dt.date(2026, 1, 5) + dt.timedelta(days=day_index)
        self.midnight = dt.datetime.combine(self.date, dt.time(), zone).timestamp()
        self.services = {spec.service_id: spec for spec in scenario.services}
        self.rooms = {spec.room_id: _Room(spec) for spec in scenario.rooms}
        self.waiting: dict[int, Entry] = {}
        self.results_due: dict[int, tuple[Entry, float]] = {}  # lab entry -> (it, when the lab was done)
        self.held: dict[int, tuple[Entry, float]] = {}  # entry -> (it, when it was held)
        # holds draw from their own generator: a day without them is the same day as before they existed
        self.hold_rng = random.Random(f"{scenario.name}:{seed}:{day_index}:hold")
        self.entries: list[Entry] = []
        self.now = 0.0
        self._events: list[tuple[float, int, str, object]] = []
        self._seq = 0
        self._next_ticket = 1
        self.pace = self.rng.lognormvariate(0.0, scenario.pace_sd) if scenario.pace_sd > 0 else 1.0
        for room in self.rooms.values():
            room.pace = self.pace * (self.rng.lognormvariate(0.0, scenario.room_pace_sd)
                                     if scenario.room_pace_sd > 0 else 1.0)

    # ---- helpers --------------------------------------------------------------------------------

    def at_hour(self, hour: float) -> float:
        return self.midnight + hour * 3600.0

    def hour_of(self, epoch: float) -> float:
        return (epoch - self.midnight) / 3600.0

    def _push(self, at: float, kind: str, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, kind, payload))

    def waiting_items(self) -> list[QueueItem]:
        open_rooms = {room_id for room_id, room in self.rooms.items() if room.open}
        return [entry.item(open_rooms) for entry in self.waiting.values()]

    def held_items(self) -> list[Held]:
        """The held tickets, as they will stand in their line if they come back."""
        open_rooms = {room_id for room_id, room in self.rooms.items() if room.open}
        return [Held(entry.item(open_rooms), dt.datetime.fromtimestamp(at, dt.UTC))
                for entry, at in self.held.values()]

    def away(self) -> list[Away]:
        """The patients sent to the lab who will come back to their doctor: waiting for the lab, in a lab
        room, or seen there with their results due."""
        trips = []
        busy = [room.busy_with for room in self.rooms.values() if room.busy_with is not None]
        for entry in [*self.waiting.values(), *busy]:
            if entry.back_to_room is not None and entry.back_to_service is not None:
                trips.append(Away(entry.back_to_room, entry.back_to_service, entry.priority, entry.entry_id))
        for entry, done in self.results_due.values():
            assert entry.back_to_room is not None and entry.back_to_service is not None
            trips.append(Away(entry.back_to_room, entry.back_to_service, entry.priority,
                              done_at=dt.datetime.fromtimestamp(done, dt.UTC)))
        return trips

    def room_states(self) -> list[RoomState]:
        states = []
        for room in self.rooms.values():
            busy = room.busy_with
            states.append(RoomState(
                room.spec.room_id, room.spec.service_ids, room.open,
                dt.datetime.fromtimestamp(room.busy_since, dt.UTC) if busy and room.busy_since else None,
                busy.service_id if busy else None, busy.entry_id if busy else None))
        return states

    def now_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.now, dt.UTC)

    # ---- randomness -----------------------------------------------------------------------------

    def _profile(self, hour: float) -> float:
        for start, end, level in self.scenario.arrival_profile:
            if start <= hour < end:
                return level
        return 0.0

    def _arrival_times(self, daily: float) -> list[float]:
        """Non-homogeneous Poisson arrivals by thinning, with the scenario's hourly profile."""
        span = self.scenario.last_ticket_hour - self.scenario.opens_hour
        area = sum((min(end, self.scenario.last_ticket_hour) - max(start, self.scenario.opens_hour)) * level
                   for start, end, level in self.scenario.arrival_profile
                   if end > self.scenario.opens_hour and start < self.scenario.last_ticket_hour)
        if daily <= 0 or area <= 0 or span <= 0:
            return []
        peak = max(level for _, _, level in self.scenario.arrival_profile)
        max_rate = daily * self.scenario.load * peak / area  # per hour
        times = []
        hour = self.scenario.opens_hour
        while True:
            hour += self.rng.expovariate(max_rate)
            if hour >= self.scenario.last_ticket_hour:
                return times
            if self.rng.random() * peak < self._profile(hour):
                times.append(self.at_hour(hour))

    def _priority(self) -> str:
        draw = self.rng.random()
        for priority, share in self.scenario.priority_mix.items():
            draw -= share
            if draw < 0:
                return priority
        return "normal"

    def _hour_factor(self, hour: float) -> float:
        for start, end, factor in self.scenario.hour_factor:
            if start <= hour < end:
                return factor
        return 1.0

    def _rush(self, service_id: int) -> float:
        """Doctors hurry when the line is long: (1 + waiting for the service per room serving it) ** -rush."""
        if self.scenario.rush <= 0.0:
            return 1.0
        waiting = sum(1 for entry in self.waiting.values() if entry.service_id == service_id)
        rooms = sum(1 for room in self.rooms.values() if service_id in room.spec.service_ids)
        return (1.0 + waiting / max(rooms, 1)) ** -self.scenario.rush

    def _service_seconds(self, room: RoomSpec, service: ServiceSpec, entry: Entry) -> float:
        """The room's occupation from the call: the walk to the room, then the visit itself."""
        mean = service.mean_minutes * 60.0 * room.speed * self._hour_factor(self.hour_of(self.now))
        mean *= self._rush(service.service_id)
        mean *= PRIORITY_SLOWER.get(entry.priority, 1.0) * self.rooms[room.room_id].pace
        if entry.returning:
            mean *= service.return_mean_minutes
        walk = 0.0
        if self.scenario.walk_minutes > 0:
            walk = self.rng.gammavariate(3.0, self.scenario.walk_minutes * 60.0 / 3.0) * SLOW_WALKERS.get(
                entry.priority, 1.0)
        if service.distribution == "gamma":
            shape = 1.0 / (service.cv * service.cv)
            return walk + max(30.0, self.rng.gammavariate(shape, mean / shape))
        sigma2 = math.log(1.0 + service.cv * service.cv)
        return walk + max(30.0, self.rng.lognormvariate(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)))

    # ---- the day --------------------------------------------------------------------------------

    def _new_entry(self, service_id: int, priority: str, kind: str, ticket_id: int | None = None,
                   **extra: object) -> Entry:
        if ticket_id is None:
            ticket_id = self._next_ticket
            self._next_ticket += 1
        entry = Entry(len(self.entries) + 1, ticket_id, service_id, priority, self.now, kind, **extra)  # type: ignore[arg-type]
        self.entries.append(entry)
        return entry

    def _enqueue(self, entry: Entry, observers: Sequence[Observer]) -> None:
        self.waiting[entry.entry_id] = entry
        scenario = self.scenario
        if entry.kind == "walk_in" and self.hold_rng.random() < scenario.hold_probability:
            self._push(self.now + self.hold_rng.expovariate(1.0 / (60.0 * scenario.hold_after_minutes)), "hold", entry)
        for observer in observers:
            observer.entered(self, entry)
        self._fill_rooms(observers)

    def _fill_rooms(self, observers: Sequence[Observer]) -> None:
        if not self.waiting:
            return
        for room in self.rooms.values():
            if room.open and room.busy_with is None and self.waiting:
                self._call_next(room, observers)

    def _call_next(self, room: _Room, observers: Sequence[Observer]) -> None:
        items = self.waiting_items()
        chosen = next_for_room(items, room.spec.room_id, room.spec.service_ids, self.now_datetime(),
                               self.weights, self.starvation_minutes)
        if chosen is None:
            return
        entry = self.waiting.pop(chosen.ticket_id)
        entry.called = self.now
        entry.room_id = room.spec.room_id
        room.busy_with = entry
        room.busy_since = self.now
        for observer in observers:
            observer.called(self, entry)
        if entry.no_show:  # three recalls, then the next number
            self._push(self.now + self.rng.uniform(90.0, 200.0), "missed", room)
        else:
            seconds = self._service_seconds(room.spec, self.services[entry.service_id], entry)
            self._push(self.now + seconds, "done", room)

    def _set_open(self, room: _Room, open: bool, observers: Sequence[Observer]) -> None:
        room.open = open
        for observer in observers:
            observer.room_changed(room.spec.room_id, open, self.now)

    def _free(self, room: _Room, observers: Sequence[Observer]) -> None:
        room.busy_with = None
        room.busy_since = None
        if room.break_pending:
            self._set_open(room, False, observers)
            self._push(self.now + room.break_pending * 60.0, "break_end", room)
            room.break_pending = 0.0
            return
        if room.open:
            self._call_next(room, observers)

    def _finish(self, room: _Room, observers: Sequence[Observer]) -> None:
        entry = room.busy_with
        assert entry is not None and room.busy_since is not None
        for observer in observers:
            observer.served(room.spec.room_id, entry.service_id, room.busy_since, self.now, entry)
        service = self.services[entry.service_id]
        if entry.kind == "walk_in" and service.service_id not in (LAB, ULTRASOUND):
            draw = self.rng.random()
            target = None
            if draw < service.lab_transfer_probability and LAB in self.services:
                target = LAB
            elif draw < service.lab_transfer_probability + service.ultrasound_transfer_probability \
                    and ULTRASOUND in self.services:
                target = ULTRASOUND
            if target is not None:
                transfer = self._new_entry(target, entry.priority, "transfer", entry.ticket_id,
                                           back_to_room=room.spec.room_id, back_to_service=entry.service_id)
                self._free(room, observers)
                self._enqueue(transfer, observers)
                return
        if entry.back_to_room is not None and entry.back_to_service is not None:
            delay = self.rng.gammavariate(4.0, self.scenario.result_delay_minutes * 60.0 / 4.0)
            self.results_due[entry.entry_id] = (entry, self.now)
            self._push(self.now + delay, "return", entry)
        self._free(room, observers)

    def _hold(self, entry: Entry, observers: Sequence[Observer]) -> None:
        """The patient steps out: the ticket leaves the line, keeping its place for when it resumes."""
        if self.waiting.pop(entry.entry_id, None) is None:
            return  # called already
        self.held[entry.entry_id] = (entry, self.now)
        for observer in observers:
            observer.held(self, entry)
        if self.hold_rng.random() < self.scenario.resume_probability:
            absence = self.hold_rng.gammavariate(2.0, self.scenario.hold_minutes * 60.0 / 2.0)
            self._push(self.now + absence, "resume", entry)

    def _resume(self, entry: Entry, observers: Sequence[Observer]) -> None:
        _, held_at = self.held.pop(entry.entry_id)
        entry.resumed_at = self.now
        self.waiting[entry.entry_id] = entry
        for observer in observers:
            observer.resumed(self, entry, held_at)
        self._fill_rooms(observers)

    def run(self, observers: Sequence[Observer] = ()) -> list[Entry]:
        scenario = self.scenario
        for service in scenario.services:
            for at in self._arrival_times(service.daily_walk_ins):
                self._push(at, "arrival", service.service_id)
        for room in self.rooms.values():
            opens = room.spec.opens_hour
            if self.rng.random() < scenario.late_start_probability:
                opens += self.rng.uniform(*scenario.late_start_minutes) / 60.0
            self._push(self.at_hour(opens), "open", room)
            for start, minutes in room.spec.breaks:
                start += self.rng.gauss(0.0, scenario.break_jitter_minutes) / 60.0
                minutes *= self.rng.uniform(1.0 - scenario.break_length_spread, 1.0 + scenario.break_length_spread)
                self._push(self.at_hour(start), "break", (room, minutes))
        handlers = {"arrival": self._arrive, "return": self._return, "done": self._finish, "hold": self._hold,
                    "resume": self._resume, "missed": self._missed, "open": self._reopen, "break_end": self._reopen,
                    "break": self._break}
        end = self.at_hour(scenario.closes_hour)
        while self._events:
            at, _, kind, payload = heapq.heappop(self._events)
            if at > end:
                break
            self.now = at
            handlers[kind](payload, observers)  # type: ignore[operator]
        self.now = end  # closing time: every room closes
        for room in self.rooms.values():
            if room.open:
                self._set_open(room, False, observers)
        return self.entries

    def _arrive(self, service_id: int, observers: Sequence[Observer]) -> None:
        entry = self._new_entry(service_id, self._priority(), "walk_in",
                                no_show=self.rng.random() < self.scenario.no_show_probability)
        self._enqueue(entry, observers)

    def _return(self, lab: Entry, observers: Sequence[Observer]) -> None:
        """Back from the lab to the doctor's line, that room preferred."""
        _, done = self.results_due.pop(lab.entry_id)
        back = self._new_entry(lab.back_to_service, lab.priority, "return", lab.ticket_id,  # type: ignore[arg-type]
                               returning=True, preferred_room_id=lab.back_to_room,
                               sent_at=lab.enqueued, lab_done_at=done)
        self._enqueue(back, observers)

    def _missed(self, room: _Room, observers: Sequence[Observer]) -> None:
        assert room.busy_with is not None and room.busy_since is not None
        for observer in observers:
            observer.missed(room.spec.room_id, room.busy_with.service_id, room.busy_since, self.now)
        self._free(room, observers)

    def _reopen(self, room: _Room, observers: Sequence[Observer]) -> None:
        self._set_open(room, True, observers)
        self._fill_rooms(observers)

    def _break(self, planned: tuple[_Room, float], observers: Sequence[Observer]) -> None:
        """A break is due: the room closes now, or once the patient in it is done."""
        room, minutes = planned
        if not room.open:
            return
        if room.busy_with is None:
            self._set_open(room, False, observers)
            self._push(self.now + minutes * 60.0, "break_end", room)
        else:
            room.break_pending = minutes
