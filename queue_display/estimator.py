"""Estimated wait for every waiting ticket: learned service times + a forward simulation of the queue.

Pure Python, no database, no clock of its own. The method and its formulas are in docs/estimator.md.

1. Service times are lognormal per (room, service, local hour): the mean and variance of log(duration)
   are exponentially weighted (recent weeks count more) and shrunk, empirical-Bayes style, toward
   (room, service) shifted by the service's hour-of-day effect, which in turn shrink toward the service
   and the whole clinic. No data at all gives a 10-minute default.
2. A ticket in service now has E[S - t | S > t] left (lognormal mean residual life), not mean minus t.
3. Arrivals are learned per (service, priority, returning, local hour): the expected number of priority
   tickets that will arrive during the wait is injected into the simulation as deterministic arrivals.
4. A deterministic event-driven simulation: each open room frees up at its expected time and takes the
   next ticket exactly as the clinic's ordering policy (`ordering.next_for_room`) would, with
   priorities, anti-starvation and returning patients; the estimate is the simulated call time.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import math
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any
from zoneinfo import ZoneInfo

from queue_display.ordering import URGENT, QueueItem, head_start_minutes, next_for_room
from queue_display.pace import DayPace, Pace

SQRT2 = math.sqrt(2.0)
LN2 = math.log(2.0)
SLOT_SECONDS = 300  # room timetables are learned in 5-minute slots of the local day
SLOTS_PER_DAY = 86400 // SLOT_SECONDS
FUTURE_TICKET_IDS = -(10**12)  # ids of the expected future arrivals in the simulation (never real)
RETURN_TICKET_IDS = -(10**15)  # ids of the simulated returns from the lab (never real)
NEWCOMER_TICKET_IDS = -(10**10)  # a phantom walk-in at the end of each service's line, minus its service id
HELD_TICKET_IDS = -(10**14)  # ids of the held tickets coming back in the simulation (their place, not their wait)
KEEP_HOLDS = 200  # the last holds' outcomes: seconds until resumed, or never
DEFAULT_HOLD_SECONDS = 600.0  # a held ticket is expected back this long after its hold, before any is seen
KEEP_TRIPS = 200  # the last round trips' lengths and result delays
DEFAULT_TRIP_SECONDS = 1800.0  # from a transfer to the lab until the patient is back, before any is seen
MIN_SAMPLES = 12  # simulated futures per estimate, at least ...
SAMPLE_BUDGET = 6000  # ... and at most this many divided by the waiting tickets
BREAK_EARLY_SECONDS = 1800.0  # a room closing up to this long before its usual break time is on it
BREAK_DUE_SPREAD = 0.7  # a simulated break is planned at one of the earliest 70% of its past closings
LATE_START_SECONDS = 3600.0  # a room later than every past first opening by less than this ...
KEEP_OPENINGS = 60  # the last days' first openings of each room
PACE_MIN_HISTORY = 30.0  # today's pace is learned once the service has this many (recent) visits
LATE_START_WAIT = 600.0  # ... is expected this much later; later than that, it is not coming today
_NORMAL = NormalDist()


@dataclass(frozen=True)
class RoomState:
    room_id: int
    service_ids: tuple[int, ...]
    open: bool
    serving_since: dt.datetime | None  # start of the ticket now in service, None if idle
    serving_service_id: int | None
    serving_ticket_id: int | None = None  # the ticket in the room (to match an `Away`)


@dataclass(frozen=True)
class Away:
    """A patient sent from a doctor's room to the lab or imaging who will come back to that doctor's line
    (returning, that room preferred): `ticket_id` waits in the lab's line or is in a lab room
    (`RoomState.serving_ticket_id`); or, with `done_at`, the lab has seen them and their results are due."""

    back_room_id: int | None  # None: any room of the service
    back_service_id: int
    priority: str = "normal"
    ticket_id: int | None = None
    done_at: dt.datetime | None = None


@dataclass(frozen=True)
class Held:
    """A held ticket (the patient stepped out): `item` is how it will stand in its line if it resumes
    (it keeps its place: the same enqueued_at)."""

    item: QueueItem
    held_at: dt.datetime


@dataclass(frozen=True)
class Lognormal:
    mu: float  # mean of log(seconds)
    sigma: float  # standard deviation of log(seconds)

    @property
    def mean(self) -> float:
        return math.exp(self.mu + 0.5 * self.sigma * self.sigma)

    def residual(self, elapsed: float) -> float:
        """E[S - t | S > t]: expected seconds left for a service that has already lasted `elapsed`."""
        if elapsed <= 0.0:
            return self.mean
        log_t = math.log(elapsed)
        sigma = max(self.sigma, 1e-3)
        z_survive = (self.mu - log_t) / sigma
        z_mass = z_survive + sigma
        survive = 0.5 * math.erfc(-z_survive / SQRT2)
        if survive > 1e-9:
            tail_mean = self.mean * 0.5 * math.erfc(-z_mass / SQRT2) / survive
            left = tail_mean - elapsed
        else:  # far in the tail: the asymptotic mean residual life of a lognormal
            left = sigma * sigma * elapsed / max(log_t - self.mu, 1e-6)
        return max(left, 0.05 * self.mean, 15.0)


@dataclass(frozen=True)
class _Break:
    due: float  # local seconds of the day from which the room closes once free
    closes: float  # its usual closing time
    seconds: float  # its usual length
    closings: tuple[float, ...] = ()  # every past closing of this break (sorted)
    lengths: tuple[float, ...] = ()  # every past length

    def window_end(self) -> float:
        return self.closes + self.seconds + 3600.0


class _Moments:
    """Exponentially weighted count, mean and variance of log(duration).

    Weights grow with time (2 ** (days / half_life)) instead of old ones decaying, so adding is O(1);
    `w / newest weight` is the count in "recent observations" (see _shrink)."""

    __slots__ = ("w", "s1", "s2")

    def __init__(self) -> None:
        self.w = 0.0
        self.s1 = 0.0
        self.s2 = 0.0

    def add(self, x: float, weight: float) -> None:
        self.w += weight
        self.s1 += weight * x
        self.s2 += weight * x * x

    def mean(self) -> float:
        return self.s1 / self.w

    def var(self) -> float:
        m = self.s1 / self.w
        return max(self.s2 / self.w - m * m, 0.0)


def _shrink(stats: _Moments | None, scale: float, prior_mu: float, prior_var: float,
            kappa: float, nu: float) -> tuple[float, float]:
    """Posterior mean and variance of log-duration: data with `n` effective observations shrunk toward
    the prior with `kappa` (mean) and `nu` (variance) pseudo-observations."""
    if stats is None or stats.w <= 0.0:
        return prior_mu, prior_var
    n = stats.w / scale
    mu = (n * stats.mean() + kappa * prior_mu) / (n + kappa)
    var = (n * stats.var() + nu * prior_var) / (n + nu)
    return mu, var


class _Arrival:
    """An expected future ticket in one simulated future: a QueueItem's fields that the simulation reads,
    with its time as an epoch (cheaper to make than a QueueItem; `_as_item` makes one)."""

    __slots__ = ("ticket_id", "service_id", "priority", "returning", "epoch")
    preferred_room_id = None
    preferred_until = None

    def __init__(self, ticket_id: int, service_id: int, priority: str, returning: bool, epoch: float) -> None:
        self.ticket_id = ticket_id
        self.service_id = service_id
        self.priority = priority
        self.returning = returning
        self.epoch = epoch


def _as_item(head: _Head) -> QueueItem:
    item = head[2]
    if isinstance(item, _Arrival):
        return QueueItem(item.ticket_id, item.service_id, item.priority,
                         dt.datetime.fromtimestamp(item.epoch, dt.UTC), item.returning)
    return item


class _ExpectedArrivals:
    """Stand-ins for future arrivals, generated an hour at a time as the simulation needs them: one ticket
    of a class wherever its cumulative expected count crosses k + 1/2 or, with `rng` (one sampled
    future), a Poisson process: thresholds a sum of unit exponentials. Returning patients start only
    `returning_after` seconds on when the ones already away are simulated one by one."""

    def __init__(self, classes: list[tuple[int, str, bool, dict[int, float]]], now: dt.datetime,
                 tz: ZoneInfo, horizon_seconds: float, first_threshold: float = 0.5,
                 rng: random.Random | None = None, returning_after: float = 0.0) -> None:
        self.classes = classes
        self.rng = rng
        self.returning_from = now.timestamp() + returning_after
        self.progress = [[0.0, first_threshold if rng is None else rng.expovariate(1.0)]
                         for _ in classes]  # expected so far, next threshold
        self.start = now.timestamp()
        local = now.astimezone(tz)
        self.hour_start = self.start - (local.minute * 60 + local.second + local.microsecond / 1e6)
        self.local_hour = local.hour
        self.horizon = self.start + horizon_seconds if classes else self.start
        self.generated_until = self.start
        self.items: list[_Arrival] = []
        self.epochs: list[float] = []

    def extend(self) -> bool:
        """Generate the next hour's expected arrivals; False once past the horizon."""
        if self.generated_until >= self.horizon:
            return False
        start = self.generated_until
        offset_hours = int((start - self.hour_start) // 3600)
        end = self.hour_start + (offset_hours + 1) * 3600.0
        hour = (self.local_hour + offset_hours) % 24
        block: list[tuple[float, int, str, bool]] = []
        for (service_id, priority, returning, by_hour), progress in zip(self.classes, self.progress, strict=True):
            rate = by_hour.get(hour, 0.0)
            begin = max(start, self.returning_from) if returning else start
            if rate <= 0.0 or begin >= end:
                continue
            expected, threshold = progress
            gained = rate * (end - begin)
            while expected + gained >= threshold:
                block.append((begin + (threshold - expected) / rate, service_id, priority, returning))
                threshold += 1.0 if self.rng is None else self.rng.expovariate(1.0)
            progress[0], progress[1] = expected + gained, threshold
        block.sort()
        for at, service_id, priority, returning in block:
            self.items.append(_Arrival(FUTURE_TICKET_IDS - len(self.items), service_id, priority, returning, at))
            self.epochs.append(at)
        self.generated_until = end
        return True


_LineKey = tuple[int, float, int | None]  # (service, head start minutes, preferred room)
_Head = tuple[float, int, "QueueItem | _Arrival"]  # (enqueued epoch, ticket id, item)


def _patient_class(priority: str | None, returning: bool) -> str | None:
    return "returning" if returning else priority


URGENT_LINE = math.inf  # the head start that marks a line of emergencies (always served first)


class _Line:
    """A FIFO line of tickets that prefer one room, of one service and head start: its entries
    (enqueued epoch, ticket id, item, preferred_until epoch or inf) in call order, and the position of its
    head."""

    __slots__ = ("key", "offset", "urgent", "preferred", "entries", "head")

    def __init__(self, key: _LineKey, entries: list[_Head]) -> None:
        self.key = key
        self.urgent = key[1] == URGENT_LINE
        self.offset = 0.0 if self.urgent else key[1] * 60.0  # the head start in seconds
        self.preferred = key[2]
        self.entries = entries
        self.head = 0


class _Lines:
    """The waiting tickets of one simulated future as ordering.next_for_room reads them. Per service, a heap
    of its ordinary tickets by (enqueued − head start, enqueued, id) and a heap of its emergencies by
    (enqueued, id); tickets that prefer a room in FIFO lines of (service, head start, room), whose heads only
    are looked at (ordering.may_serve on each head). A room compares the tops of its services' heaps and the
    heads of their preferred lines: `pick` is next_for_room's rule on epoch floats (tests check the two
    always agree)."""

    __slots__ = ("ordinary", "urgent", "preferred")

    def __init__(self, plan: _Plan) -> None:
        self.ordinary = {service: list(heap) for service, heap in plan.ordinary.items()}
        self.urgent = {service: list(heap) for service, heap in plan.urgent.items()}
        self.preferred = {service: [_Line(key, list(entries)) for key, entries in lines]
                          for service, lines in plan.preferred.items()}

    @staticmethod
    def preferred_entry(entry: _Head) -> tuple[float, int, Any, float]:
        until = getattr(entry[2], "preferred_until", None)
        return (*entry, math.inf if until is None else until.timestamp())

    def join(self, key: _LineKey, entry: _Head) -> None:
        service, head_start, preferred = key
        if preferred is None:
            if head_start == URGENT_LINE:
                heapq.heappush(self.urgent.setdefault(service, []), entry)
            else:
                heapq.heappush(self.ordinary.setdefault(service, []), (entry[0] - head_start * 60.0, *entry))
            return
        lines = self.preferred.setdefault(service, [])
        line = next((line for line in lines if line.key == key), None)
        if line is None:
            line = _Line(key, [])
            lines.append(line)
        entries = line.entries
        if not entries or entries[-1][:2] < entry[:2]:
            entries.append(self.preferred_entry(entry))
        else:
            bisect.insort(entries, self.preferred_entry(entry), lo=line.head, key=lambda head: head[:2])

    def pick(self, services: Sequence[int], room_id: int, at: float, closed_until: dict[int, float],
             ) -> list[Any] | _Line | None:
        """Where the room takes its next ticket from: emergencies first, oldest first; otherwise the earliest
        enqueued_at minus (capped) head start; then enqueued_at, id. None: nothing it may take. A ticket
        preferring another room is eligible (ordering.may_serve) from its preferred_until, or while that
        room is closed (`closed_until`: room id -> closed until then; tickets.queue_item drops the preferred
        room of a closed room)."""
        urgent: tuple[Any, ...] | None = None
        best: tuple[Any, ...] | None = None
        urgent_from: list[Any] | _Line | None = None
        best_from: list[Any] | _Line | None = None
        for service in services:
            heap = self.urgent.get(service)
            if heap and (urgent is None or heap[0][:2] < urgent[:2]):
                urgent, urgent_from = heap[0], heap
            heap = self.ordinary.get(service)
            if heap and (best is None or heap[0][:3] < best[:3]):
                best, best_from = heap[0], heap
            for line in self.preferred.get(service, ()):
                if line.head >= len(line.entries):
                    continue
                head = line.entries[line.head]
                if line.preferred != room_id and at < head[3] and at >= closed_until.get(line.preferred, -math.inf):
                    continue  # it waits for its room
                if line.urgent:
                    if urgent is None or head[:2] < urgent[:2]:
                        urgent, urgent_from = head, line
                elif best is None or (head[0] - line.offset, head[0], head[1]) < best[:3]:
                    best, best_from = (head[0] - line.offset, *head), line
        return urgent_from if urgent is not None else best_from

    def candidates(self, services: Sequence[int]) -> list[tuple[_Head, list[Any] | _Line]]:
        """The head of every heap and preferred line of these services (what `pick` chooses among)."""
        found: list[tuple[_Head, list[Any] | _Line]] = []
        for service in services:
            for heap in (self.urgent.get(service), self.ordinary.get(service)):
                if heap:
                    found.append((heap[0][-3:], heap))
            found.extend((line.entries[line.head], line) for line in self.preferred.get(service, ())
                         if line.head < len(line.entries))
        return found

    def take(self, source: list[Any] | _Line) -> QueueItem | _Arrival:
        if isinstance(source, _Line):
            source.head += 1
            if source.head >= len(source.entries):  # emptied: no longer looked at (join makes it anew)
                self.preferred[source.key[0]].remove(source)
            return source.entries[source.head - 1][2]
        return heapq.heappop(source)[-1]

    def preferred_until(self, services: Sequence[int]) -> list[float]:
        """When the heads of these services' preferred lines become anyone's."""
        found = []
        for service in services:
            for line in self.preferred.get(service, ()):
                if line.head < len(line.entries) and line.entries[line.head][3] < math.inf:
                    found.append(line.entries[line.head][3])
        return found


class WaitEstimator:
    """Learns this clinic's service times and arrivals; estimates every waiting ticket's wait."""

    def __init__(self, tz: ZoneInfo, weights: Mapping[str, float], starvation_minutes: float, *,
                 default_service_seconds: float = 600.0, default_sigma: float = 0.5,
                 half_life_days: float = 28.0, kappa: float = 5.0, nu: float = 10.0,
                 no_show_seconds: float = 150.0, closed_room_seconds: float = 1200.0,
                 arrival_horizon_seconds: float = 4 * 3600.0, exact_policy: bool = False,
                 arrival_threshold: float = 0.5, samples: int = 0, coverage: float = 0.8,
                 range_scale: float = 1.0, return_hold_minutes: float = 60.0) -> None:
        self.tz = tz
        self.weights = dict(weights)
        self.starvation_minutes = float(starvation_minutes)
        self.default = Lognormal(math.log(default_service_seconds) - 0.5 * default_sigma**2, default_sigma)
        self.half_life_days = half_life_days
        self.kappa = kappa
        self.nu = nu
        self.default_no_show_seconds = no_show_seconds
        self.closed_room_seconds = closed_room_seconds
        self.arrival_horizon_seconds = arrival_horizon_seconds
        self.arrival_threshold = arrival_threshold  # a stand-in where the expected count crosses k + this
        self.exact_policy = exact_policy  # choose through ordering.next_for_room itself (slower, same result)
        self.samples = samples  # simulated futures per estimate (0: one path of expected values)
        self.coverage = coverage  # the share of real waits the range should hold
        self.range_scale = range_scale  # widens the simulated spread (calibrated on simulated days)
        self.return_hold = dt.timedelta(minutes=return_hold_minutes)  # queue.return_hold_minutes
        self._trips: list[float] = []  # seconds from a transfer to the lab until back in the doctor's line
        self._result_delays: list[float] = []  # seconds from the lab's done until back in the doctor's line
        self._holds: list[float] = []  # seconds from a hold until the ticket resumed (inf: it never did)
        self._pending_holds: dict[int, dt.datetime] = {}  # ticket -> held at, not resumed yet
        self._pace = DayPace()
        self._first_openings: dict[int, list[float]] = {}  # room -> local seconds of its first opening, by day
        self._opened_on: dict[int, dt.date] = {}  # room -> the last day it opened
        self._origin: float | None = None  # epoch seconds of the first observation (weight 1)
        self._newest_weight = 1.0
        self._global = _Moments()
        self._by_service: dict[int, _Moments] = {}
        self._by_room_service: dict[tuple[int, int], _Moments] = {}
        self._by_service_hour: dict[tuple[int, int], _Moments] = {}
        self._by_room_service_hour: dict[tuple[int, int, int], _Moments] = {}
        self._by_class: dict[str, _Moments] = {}  # "returning" or the priority, all services
        self._by_service_class: dict[tuple[int, str], _Moments] = {}
        self._shifts: dict[tuple[int, str], tuple[float, float]] = {}
        self._params: dict[tuple[int, int, int], Lognormal] = {}
        self._no_shows: dict[int, list[float]] = {}  # service -> [no-shows, attended, seconds lost]
        self._arrivals: dict[tuple[int, str, bool, int], float] = {}  # counts on complete days
        self._arrival_days: set[dt.date] = set()  # the complete days counted
        self._arrival_today: dt.date | None = None  # the day under way: its counts wait until it is over
        self._today_arrivals: dict[tuple[int, str, bool, int], float] = {}
        self._arrival_plan: dict[int, dict[tuple[str, bool], dict[int, float]]] = {}
        self._room_open: dict[int, list[float]] = {}  # room -> weighted seconds open per local slot
        self._room_seen: dict[int, list[float]] = {}  # room -> weighted seconds observed per local slot
        self._room_last: dict[int, tuple[bool, dt.datetime]] = {}
        self._room_days: dict[int, set[dt.date]] = {}
        self._room_breaks: dict[int, list[tuple[float, float, float]]] = {}  # (closed at, seconds, weight)
        self._breaks_today: dict[int, tuple[dt.date, list[float]]] = {}  # room -> day, its breaks' closings
        self._typical_breaks: dict[int, list[_Break]] = {}

    # ---- learning -------------------------------------------------------------------------------

    def _weight(self, at: dt.datetime) -> float:
        epoch = at.timestamp()
        if self._origin is None:
            self._origin = epoch
        weight = math.exp(LN2 * (epoch - self._origin) / (86400.0 * self.half_life_days))
        self._newest_weight = max(self._newest_weight, weight)
        return weight

    def _hour(self, at: dt.datetime) -> int:
        return at.astimezone(self.tz).hour

    def record_service(self, room_id: int, service_id: int, started_at: dt.datetime, ended_at: dt.datetime,
                       priority: str | None = None, returning: bool = False) -> None:
        """A finished service. `priority` and `returning` (optional) let it learn that, say, a patient back
        from the lab takes half as long, or an elderly one a little longer."""
        seconds = (ended_at - started_at).total_seconds()
        if not (5.0 <= seconds <= 6 * 3600.0):  # a slip of the finger or a forgotten "done"
            return
        x = math.log(seconds)
        weight = self._weight(ended_at)
        hour = self._hour(started_at)
        self._global.add(x, weight)
        for table, key in ((self._by_service, service_id), (self._by_room_service, (room_id, service_id)),
                           (self._by_service_hour, (service_id, hour)),
                           (self._by_room_service_hour, (room_id, service_id, hour))):
            stats = table.get(key)  # type: ignore[attr-defined]
            if stats is None:
                stats = table[key] = _Moments()  # type: ignore[index]
            stats.add(x, weight)
        kind = _patient_class(priority, returning)
        if self._by_service.get(service_id) is not None and \
                self._by_service[service_id].w / self._newest_weight >= PACE_MIN_HISTORY:
            shift, _ = self.class_shift(service_id, kind)
            expected = self.service_time(room_id, service_id, hour).mu + shift
            self._pace.add(started_at.astimezone(self.tz).date(), room_id, x - expected)
        if kind is not None:
            for table, key in ((self._by_class, kind), (self._by_service_class, (service_id, kind))):
                stats = table.get(key)  # type: ignore[attr-defined]
                if stats is None:
                    stats = table[key] = _Moments()  # type: ignore[index]
                stats.add(x, weight)
        counts = self._no_shows.setdefault(service_id, [0.0, 0.0, 0.0])
        counts[1] += 1.0
        self._params.clear()
        self._shifts.clear()

    def record_no_show(self, room_id: int, service_id: int, called_at: dt.datetime,
                       ended_at: dt.datetime) -> None:
        """Optional: a called ticket that never came; the room lost (ended_at - called_at)."""
        counts = self._no_shows.setdefault(service_id, [0.0, 0.0, 0.0])
        counts[0] += 1.0
        counts[2] += max((ended_at - called_at).total_seconds(), 0.0)

    def record_round_trip(self, sent_at: dt.datetime, lab_done_at: dt.datetime, back_at: dt.datetime) -> None:
        """Optional: a patient sent to the lab at `sent_at`, seen there until `lab_done_at`, back in the
        doctor's line at `back_at` (the queue puts them back at the lab's done: no delay)."""
        for values, seconds in ((self._trips, (back_at - sent_at).total_seconds()),
                                (self._result_delays, (back_at - lab_done_at).total_seconds())):
            if 0.0 <= seconds <= 6 * 3600.0:
                values.append(seconds)
                del values[:-KEEP_TRIPS]

    def record_hold(self, ticket_id: int, held_at: dt.datetime, resumed_at: dt.datetime | None = None) -> None:
        """Optional: a ticket was held at `held_at` (`resumed_at` None), or resumed (or was called while
        held) at `resumed_at`. A hold not resumed by the end of its day counts as never resumed."""
        if resumed_at is None:
            self._settle_holds(held_at)
            self._pending_holds[ticket_id] = held_at
            return
        self._pending_holds.pop(ticket_id, None)
        seconds = (resumed_at - held_at).total_seconds()
        if 0.0 <= seconds <= 12 * 3600.0:
            self._add_hold(seconds)

    def _add_hold(self, seconds: float) -> None:
        self._holds.append(seconds)
        del self._holds[:-KEEP_HOLDS]

    def _settle_holds(self, now: dt.datetime) -> None:
        """Holds from an earlier local day than `now` that never resumed: never."""
        today = now.astimezone(self.tz).date()
        for ticket_id, held_at in list(self._pending_holds.items()):
            if held_at.astimezone(self.tz).date() < today:
                del self._pending_holds[ticket_id]
                self._add_hold(math.inf)

    def hold_return(self, held_for: float, rng: random.Random | None = None) -> float | None:
        """Seconds after its hold at which a ticket held `held_for` seconds ago resumes (None: it does not):
        one of the past holds that lasted longer (with `rng`), or their mean if most of them resumed."""
        if not self._holds:
            return max(DEFAULT_HOLD_SECONDS, held_for + 60.0)
        later = [seconds for seconds in self._holds if seconds > held_for]
        if not later:
            return None
        if rng is not None:
            chosen = rng.choice(later)
            return None if math.isinf(chosen) else chosen
        back = [seconds for seconds in later if not math.isinf(seconds)]
        return sum(back) / len(back) if 2 * len(back) >= len(later) else None

    def trip_seconds(self) -> float:
        """The mean time from a transfer to the lab until the patient is back in the doctor's line."""
        return sum(self._trips) / len(self._trips) if self._trips else DEFAULT_TRIP_SECONDS

    def result_delay(self, waited: float = 0.0) -> float:
        """Expected seconds until a patient the lab is done with is back, `waited` seconds after the done."""
        later = [delay - waited for delay in self._result_delays if delay > waited]
        return sum(later) / len(later) if later else 0.0

    def record_arrival(self, service_id: int, at: dt.datetime, priority: str = "normal",
                       returning: bool = False) -> None:
        local = at.astimezone(self.tz)
        day = local.date()
        if self._arrival_today is None or day > self._arrival_today:
            self._settle_holds(at)
            if self._arrival_today is not None:  # yesterday is complete: its counts join the rates
                self._arrival_days.add(self._arrival_today)
                for key, count in self._today_arrivals.items():
                    self._arrivals[key] = self._arrivals.get(key, 0.0) + count
            self._arrival_today, self._today_arrivals = day, {}
        counts = self._today_arrivals if day == self._arrival_today else self._arrivals
        key = (service_id, priority, returning, local.hour)
        counts[key] = counts.get(key, 0.0) + 1.0
        self._arrival_plan.clear()

    def record_room_state(self, room_id: int, open: bool, at: dt.datetime) -> None:
        """Optional: a room opened or closed (breaks, end of day). The estimator learns each room's usual
        timetable from these and expects breaks and reopenings in its forward simulation."""
        last = self._room_last.get(room_id)
        self._room_last[room_id] = (open, at)
        today = at.astimezone(self.tz).date()
        self._room_days.setdefault(room_id, set()).add(today)
        if open and self._opened_on.get(room_id) != today and (last is None or last[1] < at):
            self._opened_on[room_id] = today
            firsts = self._first_openings.setdefault(room_id, [])
            firsts.append(self._day_seconds(at.timestamp()))
            del firsts[:-KEEP_OPENINGS]
        if last is None or last[1] >= at:
            return
        was_open, since = last
        if since.astimezone(self.tz).date() != at.astimezone(self.tz).date():
            return  # overnight: nothing observed
        weight = self._weight(at)
        if open and not was_open:  # back from a break the same day
            closed = self._day_seconds(since.timestamp())
            self._room_breaks.setdefault(room_id, []).append((closed, (at - since).total_seconds(), weight))
            day, closings = self._breaks_today.get(room_id, (today, []))
            self._breaks_today[room_id] = (today, [*closings, closed] if day == today else [closed])
            self._typical_breaks.pop(room_id, None)
        opened = self._room_open.setdefault(room_id, [0.0] * SLOTS_PER_DAY)
        seen = self._room_seen.setdefault(room_id, [0.0] * SLOTS_PER_DAY)
        local = since.astimezone(self.tz)
        offset = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        remaining = (at - since).total_seconds()
        while remaining > 0 and offset < 86400:
            slot = int(offset // SLOT_SECONDS)
            chunk = min(remaining, (slot + 1) * SLOT_SECONDS - offset)
            seen[slot] += weight * chunk
            if was_open:
                opened[slot] += weight * chunk
            offset += chunk
            remaining -= chunk

    def typical_breaks(self, room_id: int) -> list[_Break]:
        """The breaks this room takes on most days: closings followed by a reopening the same day,
        grouped when less than 30 minutes apart, kept when seen on at least 30% of the room's days.
        A break is due from `due` (an early quantile of its closing times: the doctor finishes the
        patient in hand first) and lasts its median length."""
        cached = self._typical_breaks.get(room_id)
        if cached is not None:
            return cached
        breaks = sorted(self._room_breaks.get(room_id, ()))
        days = len(self._room_days.get(room_id, ()))
        groups: list[list[tuple[float, float, float]]] = []
        for entry in breaks:
            if groups and entry[0] - groups[-1][-1][0] < 1800.0:
                groups[-1].append(entry)
            else:
                groups.append([entry])
        typical = []
        for group in groups:
            if len(group) < max(2, 0.3 * days):
                continue
            closings = [closed for closed, _, _ in group]
            lengths = sorted(length for _, length, _ in group)
            closings.sort()
            typical.append(_Break(due=closings[int(0.15 * (len(closings) - 1))],
                                  closes=closings[len(closings) // 2], seconds=lengths[len(lengths) // 2],
                                  closings=tuple(closings), lengths=tuple(lengths)))
        self._typical_breaks[room_id] = typical
        return typical

    def _day_seconds(self, epoch: float) -> float:
        local = dt.datetime.fromtimestamp(epoch, self.tz)
        return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6

    def open_probability(self, room_id: int, at_epoch: float, day_seconds: float | None = None) -> float | None:
        """How often this room is open at this local time of day; None when never observed then."""
        seen = self._room_seen.get(room_id)
        if seen is None:
            return None
        if day_seconds is None:
            day_seconds = self._day_seconds(at_epoch)
        slot = int(day_seconds // SLOT_SECONDS)
        if seen[slot] <= 0.0:
            return None
        return self._room_open[room_id][slot] / seen[slot]

    def next_opening(self, room_id: int, at_epoch: float, limit_seconds: float = 6 * 3600.0,
                     day_seconds: float | None = None) -> float | None:
        """When the room's timetable says it is usually open again (start of that slot), within the limit."""
        seen = self._room_seen.get(room_id)
        if seen is None:
            return None
        opened = self._room_open[room_id]
        if day_seconds is None:
            day_seconds = self._day_seconds(at_epoch)
        slot = int(day_seconds // SLOT_SECONDS)
        step = 1
        while step * SLOT_SECONDS <= limit_seconds and slot + step < SLOTS_PER_DAY:
            observed = seen[slot + step]
            if observed > 0.0 and opened[slot + step] >= 0.5 * observed:
                return at_epoch - day_seconds + (slot + step) * SLOT_SECONDS
            step += 1
        return None

    def _expected_break(self, room_id: int, at_epoch: float, day_seconds: float | None = None) -> float | None:
        """If the timetable says this room is usually closed at this moment: when it usually reopens
        (None: no break expected, or no reopening known)."""
        if day_seconds is None:
            day_seconds = self._day_seconds(at_epoch)
        probability = self.open_probability(room_id, at_epoch, day_seconds)
        if probability is None or probability >= 0.5:
            return None
        return self.next_opening(room_id, at_epoch, day_seconds=day_seconds)

    # ---- learned parameters ---------------------------------------------------------------------

    def class_shift(self, service_id: int, kind: str | None) -> tuple[float, float]:
        """(shift of mean log-duration, ratio of log-variance) of one kind of patient ("returning" or a
        priority) against the service's whole mix: shrunk toward the same kind across all services,
        which is shrunk toward (0, 1)."""
        if kind is None:
            return 0.0, 1.0
        key = (service_id, kind)
        shift = self._shifts.get(key)
        if shift is None:
            mu, ratio = 0.0, 1.0
            everywhere = self._by_class.get(kind)
            if everywhere is not None and everywhere.w > 0 and self._global.w > 0:
                n = everywhere.w / self._newest_weight
                mu = n * (everywhere.mean() - self._global.mean()) / (n + self.kappa)
                ratio = (n * everywhere.var() / max(self._global.var(), 1e-6) + self.nu) / (n + self.nu)
            here = self._by_service_class.get(key)
            service = self._by_service.get(service_id)
            if here is not None and here.w > 0 and service is not None:
                n = here.w / self._newest_weight
                mu = (n * (here.mean() - service.mean()) + self.kappa * mu) / (n + self.kappa)
                ratio = (n * here.var() / max(service.var(), 1e-6) + self.nu * ratio) / (n + self.nu)
            shift = self._shifts[key] = (mu, ratio)
        return shift

    def service_time(self, room_id: int, service_id: int, hour: int) -> Lognormal:
        key = (room_id, service_id, hour)
        params = self._params.get(key)
        if params is None:
            params = self._params[key] = self._fit(room_id, service_id, hour)
        return params

    def _fit(self, room_id: int, service_id: int, hour: int) -> Lognormal:
        if self._global.w <= 0.0:
            return self.default
        scale = self._newest_weight
        d_var = self.default.sigma**2
        g_mu, g_var = _shrink(self._global, scale, self.default.mu, d_var, 1.0, 2.0)
        s_mu, s_var = _shrink(self._by_service.get(service_id), scale, g_mu, g_var, self.kappa, self.nu)
        rs_mu, rs_var = _shrink(self._by_room_service.get((room_id, service_id)), scale, s_mu, s_var,
                                self.kappa, self.nu)
        sh_mu, sh_var = _shrink(self._by_service_hour.get((service_id, hour)), scale, s_mu, s_var,
                                self.kappa, self.nu)
        hour_shift = sh_mu - s_mu
        hour_ratio = sh_var / s_var if s_var > 0 else 1.0
        mu, var = _shrink(self._by_room_service_hour.get((room_id, service_id, hour)), scale,
                          rs_mu + hour_shift, rs_var * hour_ratio, self.kappa, self.nu)
        return Lognormal(mu, math.sqrt(max(var, 1e-4)))

    def no_show(self, service_id: int) -> tuple[float, float]:
        """(probability a called ticket does not come, seconds the room loses when that happens)."""
        no_shows, attended, lost = self._no_shows.get(service_id, (0.0, 0.0, 0.0))
        probability = (no_shows + 0.5) / (no_shows + attended + 10.0)
        seconds = (lost + 2.0 * self.default_no_show_seconds) / (no_shows + 2.0)
        return probability, seconds

    def expected_occupation(self, room_id: int, service_id: int, at_epoch: float, kind: str | None = None,
                            hour: int | None = None) -> float:
        """Seconds a room is busy with the next ticket of this service (and kind of patient) called at
        `at_epoch` (local `hour` if known), counting the chance that it does not come."""
        if hour is None:
            hour = dt.datetime.fromtimestamp(at_epoch, self.tz).hour
        probability, lost = self.no_show(service_id)
        if kind == "returning":
            probability = 0.0  # a patient back from the lab is there
        base = self.service_time(room_id, service_id, hour)
        shift, ratio = self.class_shift(service_id, kind)
        pace = self._pace.today(dt.datetime.fromtimestamp(at_epoch, self.tz).date(), room_id)
        mean = math.exp(base.mu + shift + pace.mu + 0.5 * base.sigma * base.sigma * ratio)
        return (1.0 - probability) * mean + probability * lost

    def arrival_rates(self, service_id: int) -> dict[tuple[str, bool], dict[int, float]]:
        """{(priority, returning): {local hour: tickets per second}} learned for this service, from the
        complete days seen (a day under way would count its hours still to come as empty); from today's
        arrivals while there is no complete day yet."""
        plan = self._arrival_plan.get(service_id)
        if plan is None:
            days = len(self._arrival_days)
            counts = self._arrivals if days else self._today_arrivals
            days = max(days, 1)
            plan = {}
            for (service, priority, returning, hour), count in counts.items():
                if service == service_id:
                    plan.setdefault((priority, returning), {})[hour] = count / (days * 3600.0)
            self._arrival_plan[service_id] = plan
        return plan

    # ---- estimating -----------------------------------------------------------------------------

    def _expected_arrivals(self, now: dt.datetime, service_ids: set[int], min_head_start: float,
                           returning_after: float) -> _ExpectedArrivals:
        """Expected future tickets that could be called before some waiting ticket: every learned class
        with a larger head start than the least favoured waiting ticket."""
        classes: list[tuple[int, str, bool, dict[int, float]]] = []
        for service_id in sorted(service_ids):
            for (priority, returning), by_hour in self.arrival_rates(service_id).items():
                probe = QueueItem(0, service_id, priority, now, returning)
                if head_start_minutes(probe, self.weights, self.starvation_minutes) > min_head_start:
                    classes.append((service_id, priority, returning, by_hour))
        return _ExpectedArrivals(classes, now, self.tz, self.arrival_horizon_seconds, self.arrival_threshold,
                                 returning_after=returning_after)

    def _choose_exact(self, lines: _Lines, room: RoomState, at: float,
                      closed: Callable[[int, float], bool]) -> list[Any] | _Line | None:
        """The room's choice by ordering.next_for_room itself, among the heads `_Lines.pick` compares (each
        heap's and preferred line's earliest under the policy's key). A ticket whose preferred room is
        `closed` is anyone's, as tickets.queue_item makes it. Returns where the ticket is taken from."""
        candidates = []
        source_of: dict[int, list[Any] | _Line] = {}
        for head, source in lines.candidates(room.service_ids):
            item = _as_item(head)
            if isinstance(source, _Line) and source.preferred != room.room_id and closed(source.preferred, at):
                item = replace(item, preferred_room_id=None, preferred_until=None)
            candidates.append(item)
            source_of[item.ticket_id] = source
        picked = next_for_room(candidates, room.room_id, room.service_ids, dt.datetime.fromtimestamp(at, dt.UTC),
                               self.weights, self.starvation_minutes)
        return None if picked is None else source_of[picked.ticket_id]

    def estimate(self, now: dt.datetime, waiting: Sequence[QueueItem], rooms: Sequence[RoomState],
                 away: Sequence[Away] | None = None, held: Sequence[Held] | None = None) -> dict[int, float]:
        """ticket_id -> estimated seconds until the ticket is called."""
        return {ticket_id: span.seconds
                for ticket_id, span in self.estimate_ranges(now, waiting, rooms, away, held).items()}

    def estimate_ranges(self, now: dt.datetime, waiting: Sequence[QueueItem], rooms: Sequence[RoomState],
                        away: Sequence[Away] | None = None, held: Sequence[Held] | None = None,
                        ) -> dict[int, WaitRange]:
        """ticket_id -> (estimate, low, high): with `samples` > 0 the estimate is the mean over that many
        simulated futures and [low, high] their calibrated `coverage` range; with 0 samples one path of
        expected values, and the range is that path's estimate. `away` (optional): the patients at the lab
        or imaging who come back to their doctor; each comes back in the simulation once the lab is done
        with them, and returning patients are no longer expected at random until that many could be.
        `held` (optional): today's held tickets; each may come back, in its old place, as past holds did."""
        return self.estimate_with_newcomers(now, waiting, rooms, away, held)[0]

    def estimate_with_newcomers(self, now: dt.datetime, waiting: Sequence[QueueItem], rooms: Sequence[RoomState],
                                away: Sequence[Away] | None = None, held: Sequence[Held] | None = None,
                                newcomers: Collection[int] = ()) -> tuple[dict[int, WaitRange], dict[int, WaitRange]]:
        """estimate_ranges, and for each service in `newcomers` what a normal walk-in taking a number now
        would wait: every future carries a phantom one at the end of that service's line (after every
        waiting ticket, as the queue would put them), so the kiosk promises what the ticket will then say.
        Returns (ticket id -> range, service id -> a newcomer's range)."""
        if not waiting and not newcomers:
            return {}, {}
        joining = now + dt.timedelta(microseconds=1)  # after everyone already waiting, ties included
        phantoms = [QueueItem(NEWCOMER_TICKET_IDS - service_id, service_id, "normal", joining)
                    for service_id in sorted(set(newcomers))]
        everyone = [*waiting, *phantoms]
        plan = self._plan(now, everyone, rooms, away, held or ())
        if self.samples <= 0:
            path = self._run(plan, None)
            spans = {ticket_id: WaitRange(seconds, seconds, seconds) for ticket_id, seconds in path.items()}
        else:
            rng = random.Random(int(plan.now_epoch) * 7919 + len(waiting))
            count = max(MIN_SAMPLES, min(self.samples, SAMPLE_BUDGET // max(len(everyone), 1)))
            # today's clinic-wide pace, the largest cause shared by every waiting ticket, is drawn stratified:
            # one draw from each of `count` equally likely slices of its distribution (less noise in the mean)
            paths = [self._run(plan, rng, _NORMAL.inv_cdf((index + rng.random()) / count)) for index in range(count)]
            spans = _ranges(paths, self.coverage, self.range_scale)
        return ({ticket_id: span for ticket_id, span in spans.items() if ticket_id >= 0},
                {phantom.service_id: spans[phantom.ticket_id] for phantom in phantoms if phantom.ticket_id in spans})

    def _room_start(self, plan: _Plan, room: RoomState, now_day: float) -> _Start | None:
        """When a room starts taking tickets in the simulation (None: it does not), and its breaks to come."""
        now_epoch = plan.now_epoch
        reopening: float | None = None
        choices: tuple[float, ...] = ()
        pending: list[_Break] = []
        closed_at = self._closed_today(room.room_id, now_epoch) if not room.open else None
        # a doctor does not call a patient after the planned break time: it is planned after the last call
        called = self._day_seconds(room.serving_since.timestamp()) if room.serving_since is not None else now_day
        for usual in self.typical_breaks(room.room_id):
            if now_day >= usual.window_end():
                continue  # long over
            on_it = closed_at is not None and usual.closes - BREAK_EARLY_SECONDS <= closed_at <= usual.window_end()
            if now_day < usual.due and not on_it:
                pending.append(usual)
            elif not room.open and (on_it or now_day >= usual.due):  # on this break now
                began = now_epoch - now_day + (closed_at if on_it and closed_at is not None else usual.closes)
                reopening = max(began + usual.seconds, now_epoch + 60.0)
                choices = tuple(max(began + length, now_epoch + 60.0) for length in usual.lengths)
            elif room.open and called < usual.closes + usual.seconds and \
                    not self._had_break(room.room_id, usual, now_epoch):
                # past its usual time, not taken today, and the last call was before it usually ends: the
                # doctor goes once free (a break planned a little later today, or put off for the patient in
                # hand); one calling after its usual end has skipped it
                pending.append(usual)
        if reopening is None and not room.open:
            reopening, choices = self._expected_opening(room.room_id, now_epoch, now_day)
        if room.open:
            start = now_epoch
        elif reopening is not None:  # a usual break, or before its (late) start: back at the usual time
            start = reopening
        elif any(service not in plan.open_services for service in room.service_ids):
            start = now_epoch + self.closed_room_seconds
        else:
            return None
        serving = None
        if room.serving_since is not None and room.serving_service_id is not None:
            elapsed = max(now_epoch - room.serving_since.timestamp(), 0.0)
            base = self.service_time(room.room_id, room.serving_service_id, self._hour(room.serving_since))
            pace = plan.pace[room.room_id]
            serving = (Lognormal(base.mu + pace.mu, base.sigma), elapsed)
        return _Start(start, choices, serving, tuple(pending), called if room.open else 0.0)

    def _had_break(self, room_id: int, usual: _Break, now_epoch: float) -> bool:
        """Whether the room closed and reopened today within this usual break's window."""
        day, closings = self._breaks_today.get(room_id, (None, []))
        if day != dt.datetime.fromtimestamp(now_epoch, self.tz).date():
            return False
        earliest = min(usual.closings[0] if usual.closings else usual.closes, usual.closes) - BREAK_EARLY_SECONDS
        return any(earliest <= closed <= usual.window_end() for closed in closings)

    def _closed_today(self, room_id: int, now_epoch: float) -> float | None:
        """Local seconds of the day at which the room closed today (None: not known)."""
        last = self._room_last.get(room_id)
        if last is None or last[0]:
            return None
        closed = last[1].timestamp()
        if closed > now_epoch or now_epoch - closed > 86400.0 or \
                last[1].astimezone(self.tz).date() != dt.datetime.fromtimestamp(now_epoch, self.tz).date():
            return None
        return self._day_seconds(closed)

    def _expected_opening(self, room_id: int, now_epoch: float,
                          now_day: float) -> tuple[float | None, tuple[float, ...]]:
        """A closed room that has not opened today opens at one of its past first openings still to come
        (a doctor who starts late is expected, not written off); otherwise the timetable's usual reopening."""
        today = dt.datetime.fromtimestamp(now_epoch, self.tz).date()
        firsts = self._first_openings.get(room_id, [])
        if self._opened_on.get(room_id) != today and len(firsts) >= 3:
            later = tuple(now_epoch + first - now_day for first in firsts if first > now_day)
            if later:
                return sum(later) / len(later), later
            if now_day - max(firsts) < LATE_START_SECONDS:
                return now_epoch + LATE_START_WAIT, ()
            return None, ()
        return self._expected_break(room_id, now_epoch, now_day), ()

    def _plan(self, now: dt.datetime, waiting: Sequence[QueueItem], rooms: Sequence[RoomState],
              away: Sequence[Away] | None, held: Sequence[Held]) -> _Plan:
        now_epoch = now.timestamp()
        offset = now.astimezone(self.tz).utcoffset()
        later = (now + dt.timedelta(hours=12)).astimezone(self.tz).utcoffset()
        today = now.astimezone(self.tz).date()
        plan = _Plan(
            now=now, now_epoch=now_epoch, waiting=waiting, rooms=rooms,
            # local seconds of the day by arithmetic, unless the clocks change within the next 12 hours
            fixed=offset.total_seconds() if offset is not None and offset == later else None,
            open_services={service for room in rooms if room.open for service in room.service_ids},
            pace={room.room_id: self._pace.today(today, room.room_id) for room in rooms})
        now_day = self._day_seconds(now_epoch)
        plan.starts = [self._room_start(plan, room, now_day) for room in rooms]
        plan.timetables = [(self._room_seen[room.room_id], self._room_open[room.room_id])
                           if room.room_id in self._room_seen else None for room in rooms]
        weights = self.weights
        for item in waiting:
            key = (item.service_id, plan.head_start(item, weights, self.starvation_minutes), item.preferred_room_id)
            plan.lines.setdefault(key, []).append((item.enqueued_at.timestamp(), item.ticket_id, item))
        for (service, head_start, preferred), line in plan.lines.items():
            line.sort(key=lambda entry: entry[:2])
            if preferred is not None:
                plan.preferred.setdefault(service, []).append(
                    ((service, head_start, preferred), [_Lines.preferred_entry(entry) for entry in line]))
            elif head_start == URGENT_LINE:
                plan.urgent.setdefault(service, []).extend(line)
            else:
                plan.ordinary.setdefault(service, []).extend((entry[0] - head_start * 60.0, *entry) for entry in line)
        for heap in (*plan.urgent.values(), *plan.ordinary.values()):
            heap.sort(key=lambda entry: entry[:-1])  # a sorted list is a heap
        min_head_start = min(min(key[1] for key in plan.lines), head_start_minutes(
            QueueItem(0, 0, URGENT, now), weights, self.starvation_minutes))
        served = {service for room in rooms for service in room.service_ids}
        if away is not None:
            plan.returning_after = self.trip_seconds()
            for trip in away:
                if trip.ticket_id is not None:
                    plan.trips[trip.ticket_id] = trip
                elif trip.done_at is not None:
                    plan.results.append(trip)
        lines = {item.service_id for item in waiting} & served
        # a room shared with another service may take that service's priority newcomers first
        sharing = {service for room in rooms if lines.intersection(room.service_ids) for service in room.service_ids}
        plan.stream = self._expected_arrivals(now, sharing, min_head_start, plan.returning_after)
        plan.real_count = sum(1 for item in waiting if item.service_id in served)
        plan.holds = [(hold.held_at.timestamp(), replace(hold.item, ticket_id=HELD_TICKET_IDS - index))
                      for index, hold in enumerate(held) if hold.item.service_id in served
                      and hold.held_at <= now and hold.held_at.astimezone(self.tz).date() == today]
        return plan

    def _occupation(self, plan: _Plan, room: RoomState, item: QueueItem, at: float,
                    present: bool = False) -> _Occupation:
        """The room's occupation by `item` called at `at` (`present`: a patient in the middle of a round
        trip, who does not miss the call, like a returning one)."""
        if plan.fixed is not None:
            hour = int(((at + plan.fixed) % 86400.0) // 3600)
        else:
            hour = dt.datetime.fromtimestamp(at, self.tz).hour
        kind = _patient_class(item.priority, item.returning)
        slot = (room.room_id, item.service_id, hour, kind, present)
        found = plan.occupations.get(slot)
        if found is None:
            probability, lost = self.no_show(item.service_id)
            if kind == "returning" or present:
                probability = 0.0
            base = self.service_time(room.room_id, item.service_id, hour)
            shift, ratio = self.class_shift(item.service_id, kind)
            pace = plan.pace[room.room_id]
            sigma = base.sigma * math.sqrt(ratio)
            mu = base.mu + shift + pace.mu
            mean = math.exp(mu + 0.5 * sigma * sigma)
            found = plan.occupations[slot] = _Occupation((1.0 - probability) * mean + probability * lost,
                                                         mu, sigma, probability, lost)
        return found

    def _run(self, plan: _Plan, rng: random.Random | None, shared: float | None = None) -> dict[int, float]:
        """One future of the queue: expected values (rng None) or one random draw (`shared`: the clinic's
        pace draw in standard deviations, else drawn here)."""
        return _Future(self, plan, rng, shared).run()


CLINIC_SAMPLES = 40  # simulated futures per estimate in the clinic (and in `clinicall sim`)
CLINIC_RANGE_SCALE = 1.05  # calibrated on simulated days, over the predictions that are a range (docs/estimator.md §8)


def clinic_estimator(tz: ZoneInfo, weights: Mapping[str, float], starvation_minutes: float,
                     **options: Any) -> WaitEstimator:
    """The estimator as the clinic runs it: sampled futures with a calibrated 80% range, each room's choice
    made by `_Lines.pick`, ordering.next_for_room's rule on epoch floats (tests check the two agree; a third
    less CPU than calling next_for_room at every step)."""
    settings: dict[str, Any] = {"samples": CLINIC_SAMPLES, "coverage": 0.8, "range_scale": CLINIC_RANGE_SCALE}
    settings.update(options)
    return WaitEstimator(tz, weights, starvation_minutes, **settings)


class _Future:
    """One simulated future of the queue (docs/estimator.md, section 5): expected values (`rng` None) or
    one random draw of service times, no-shows, breaks, late starts, today's pace, arrivals, and the
    patients now at the lab coming back to their doctor's line."""

    def __init__(self, estimator: WaitEstimator, plan: _Plan, rng: random.Random | None,
                 shared: float | None = None) -> None:
        self.est = estimator
        self.plan = plan
        self.draw = _Draw(rng, plan, shared) if rng is not None else None
        self.free_at: list[tuple[float, int]] = []
        self.pending_breaks: list[list[tuple[float, float, _Break]]] = []
        # room id -> closed until then (a closed room's preferred tickets are anyone's)
        self.closed_until = {room.room_id: math.inf for room in plan.rooms}
        self.lines = _Lines(plan)
        self.returns: list[tuple[float, int, QueueItem]] = []  # patients back from the lab, by time
        self.sent_back = 0
        self.stream = plan.stream
        if rng is not None:
            after = plan.returning_after
            if after > 0.0 and estimator._trips:
                after = rng.choice(estimator._trips)
            self.stream = _ExpectedArrivals(plan.stream.classes, plan.now, estimator.tz,
                                            estimator.arrival_horizon_seconds, rng=rng, returning_after=after)
        self.next_future = 0
        self.result: dict[int, float] = {}

    def run(self) -> dict[int, float]:
        self._start_rooms()
        real_left = self.plan.real_count
        free_at, admit, off_duty, take = self.free_at, self._admit, self._off_duty, self._take
        stream, returns = self.stream, self.returns
        while free_at and real_left > 0:
            at, index = heapq.heappop(free_at)
            if stream.generated_until < at or returns and returns[0][0] <= at or \
                    self.next_future < len(stream.epochs) and stream.epochs[self.next_future] <= at:
                admit(at)
            if off_duty(index, at):
                continue
            real_left -= take(index, at)
        result = self.result
        fallback = self.est.closed_room_seconds + sum(result.values()) / max(len(result), 1)
        for item in self.plan.waiting:  # no room can serve it: a long, honest guess rather than none
            if item.ticket_id not in result:
                result[item.ticket_id] = fallback
        return result

    def _start_rooms(self) -> None:
        plan, draw = self.plan, self.draw
        for index, start in enumerate(plan.starts):
            if start is None:
                self.pending_breaks.append([])
                continue
            room = plan.rooms[index]
            at = start.at if draw is None or not start.choices else draw.rng.choice(start.choices)
            self.closed_until[room.room_id] = -math.inf if room.open else at
            if start.serving is not None:
                dist, elapsed = start.serving
                at += dist.residual(elapsed) if draw is None else draw.residual(dist, elapsed, index)
                trip = plan.trips.get(room.serving_ticket_id) if room.serving_ticket_id is not None else None
                if trip is not None:
                    self._back_at(trip, at + self._delay(0.0))
            self.free_at.append((at, index))
            self.pending_breaks.append([(usual.due, usual.seconds, usual) if draw is None
                                        else draw.break_(usual, start.planned_after)
                                        for usual in start.breaks])
        heapq.heapify(self.free_at)
        for trip in plan.results:
            assert trip.done_at is not None
            waited = max(plan.now_epoch - trip.done_at.timestamp(), 0.0)
            self._back_at(trip, plan.now_epoch + self._delay(waited))
        for held_at, item in plan.holds:
            back = self.est.hold_return(plan.now_epoch - held_at, None if self.draw is None else self.draw.rng)
            if back is not None:  # it comes back in its old place
                heapq.heappush(self.returns, (max(held_at + back, plan.now_epoch), item.ticket_id, item))

    def _delay(self, waited: float) -> float:
        """Seconds from now until a patient the lab was done with `waited` seconds ago is back in line."""
        if self.draw is None:
            return self.est.result_delay(waited)
        later = [delay for delay in self.est._result_delays if delay > waited]
        return self.draw.rng.choice(later) - waited if later else 0.0

    def _back_at(self, trip: Away, at: float) -> None:
        """The patient joins their doctor's line at `at`: returning, that room preferred (as the queue does)."""
        enqueued = dt.datetime.fromtimestamp(at, dt.UTC)
        self.sent_back += 1
        item = QueueItem(RETURN_TICKET_IDS - self.sent_back, trip.back_service_id,
                         trip.priority, enqueued, True, trip.back_room_id,
                         None if trip.back_room_id is None else enqueued + self.est.return_hold)
        heapq.heappush(self.returns, (at, item.ticket_id, item))

    def _join(self, item: QueueItem | _Arrival, epoch: float) -> None:
        """Into its line at its place: `epoch` is when it entered the line (a resumed ticket's is old)."""
        est = self.est
        key = (item.service_id, self.plan.head_start(item, est.weights, est.starvation_minutes), item.preferred_room_id)
        self.lines.join(key, (epoch, item.ticket_id, item))

    def _admit(self, at: float) -> None:
        """Everyone who joins a line by `at`: expected arrivals and patients back from the lab."""
        stream = self.stream
        while stream.generated_until < at and stream.extend():
            pass
        future, epochs = stream.items, stream.epochs
        while self.next_future < len(future) and epochs[self.next_future] <= at:
            self._join(future[self.next_future], epochs[self.next_future])
            self.next_future += 1
        while self.returns and self.returns[0][0] <= at:
            _, _, item = heapq.heappop(self.returns)
            self._join(item, item.enqueued_at.timestamp())

    def _close(self, index: int, until: float) -> None:
        self.closed_until[self.plan.rooms[index].room_id] = until
        heapq.heappush(self.free_at, (until, index))

    def _off_duty(self, index: int, at: float) -> bool:
        """A room free at `at` that goes on its usual break, or is usually closed then: it is back later."""
        plan = self.plan
        timetable = plan.timetables[index]
        if timetable is None or at <= plan.now_epoch:
            return False
        est = self.est
        fixed = plan.fixed
        day_seconds = (at + fixed) % 86400.0 if fixed is not None else est._day_seconds(at)
        pending = self.pending_breaks[index]
        if pending and day_seconds >= pending[0][0]:  # free after its usual break time: it goes
            _, seconds, usual = pending.pop(0)
            if day_seconds < usual.window_end():
                self._close(index, at + seconds)
                return True
        slot = int(day_seconds // SLOT_SECONDS)
        seen, opened = timetable
        if seen[slot] > 0.0 and opened[slot] < 0.5 * seen[slot]:
            room_id = plan.rooms[index].room_id
            if not any(usual.due <= day_seconds < usual.window_end() for usual in est.typical_breaks(room_id)):
                reopening = est.next_opening(room_id, at, day_seconds=day_seconds)
                if reopening is not None:  # usually closed now (not a break it takes when free)
                    self._close(index, reopening)
                    return True
        return False

    def _closed(self, room_id: int, at: float) -> bool:
        """Whether a room (by id) is closed at `at` in this future."""
        return at < self.closed_until.get(room_id, -math.inf)

    def _take(self, index: int, at: float) -> int:
        """The room free at `at` calls its next ticket (1 if a real waiting one), or waits for one."""
        plan, est = self.plan, self.est
        room = plan.rooms[index]
        if est.exact_policy:
            source = est._choose_exact(self.lines, room, at, self._closed)
        else:
            source = self.lines.pick(room.service_ids, room.room_id, at, self.closed_until)
        if source is None:
            wake = self._wake(room, at)
            if wake is not None:
                heapq.heappush(self.free_at, (wake, index))
            return 0
        chosen = self.lines.take(source)
        ticket_id = chosen.ticket_id
        trip = plan.trips.get(ticket_id)
        occupation = est._occupation(plan, room, chosen, at, trip is not None)
        busy = occupation.mean if self.draw is None else self.draw.occupation(occupation, index)
        heapq.heappush(self.free_at, (at + busy, index))
        if trip is not None:
            self._back_at(trip, at + busy + self._delay(0.0))
        if ticket_id > FUTURE_TICKET_IDS:
            self.result[ticket_id] = max(at - plan.now_epoch, 0.0)
            return 1
        return 0

    def _wake(self, room: RoomState, at: float) -> float | None:
        """Nothing this room may take yet: when to look again (the next expected arrival or patient back
        from the lab it could take, or a preferred ticket reaching its `preferred_until`)."""
        stream = self.stream
        future, future_epochs = stream.items, stream.epochs
        services = set(room.service_ids)
        upcoming = self.next_future
        while True:
            while upcoming >= len(future) and stream.extend():
                pass
            if upcoming >= len(future) or future[upcoming].service_id in services:
                break
            upcoming += 1
        wake = [future_epochs[upcoming]] if upcoming < len(future) else []
        wake.extend(epoch for epoch, _, item in self.returns if item.service_id in services)
        wake.extend(self.lines.preferred_until(room.service_ids))
        later = [w for w in wake if w > at]
        return min(later) if later else None


@dataclass(frozen=True)
class WaitRange:
    seconds: float  # the estimate: the mean over simulated futures
    low: float  # the calibrated range (see WaitEstimator.coverage)
    high: float


@dataclass(frozen=True)
class _Occupation:
    mean: float  # expected seconds the room is busy (counting a no-show's lost time)
    mu: float  # lognormal of an attended visit, with today's pace
    sigma: float
    no_show: float  # probability the called patient does not come
    lost: float  # seconds a no-show costs


@dataclass(frozen=True)
class _Start:
    at: float  # when the room starts taking tickets (expected)
    choices: tuple[float, ...]  # equally likely start times, when uncertain (a break's end, a late start)
    serving: tuple[Lognormal, float] | None  # the visit in progress: its distribution and elapsed seconds
    breaks: tuple[_Break, ...]  # usual breaks still to come
    planned_after: float = 0.0  # local seconds of the day after which those are planned (the last call)


@dataclass
class _Plan:
    """What every simulated future of one estimate() shares."""

    now: dt.datetime
    now_epoch: float
    waiting: Sequence[QueueItem]
    rooms: Sequence[RoomState]
    fixed: float | None
    open_services: set[int]
    pace: dict[int, Pace]
    starts: list[_Start | None] = field(default_factory=list)
    timetables: list[tuple[list[float], list[float]] | None] = field(default_factory=list)
    lines: dict[_LineKey, list[_Head]] = field(default_factory=dict)
    stream: _ExpectedArrivals | None = None  # type: ignore[assignment]
    real_count: int = 0
    occupations: dict[tuple[int, int, int, str | None, bool], _Occupation] = field(default_factory=dict)
    trips: dict[int, Away] = field(default_factory=dict)  # ticket at or waiting for the lab -> its way back
    results: list[Away] = field(default_factory=list)  # done at the lab, results due
    returning_after: float = 0.0  # returning patients are expected at random from now + this
    holds: list[tuple[float, QueueItem]] = field(default_factory=list)  # (held at, the ticket as it resumes)
    head_starts: dict[tuple[str, bool], float] = field(default_factory=dict)
    ordinary: dict[int, list[tuple[float, float, int, Any]]] = field(default_factory=dict)  # see _Lines
    urgent: dict[int, list[_Head]] = field(default_factory=dict)
    preferred: dict[int, list[tuple[_LineKey, list[_Head]]]] = field(default_factory=dict)

    def head_start(self, item: QueueItem, weights: Mapping[str, float], cap_minutes: float) -> float:
        minutes = self.head_starts.get((item.priority, item.returning))
        if minutes is None:
            minutes = URGENT_LINE if item.priority == URGENT else head_start_minutes(item, weights, cap_minutes)
            self.head_starts[(item.priority, item.returning)] = minutes
        return minutes


class _Draw:
    """The random parts of one simulated future: today's pace (shared by the clinic, and per room),
    each visit's length and no-show, the rest of the visits in progress, breaks."""

    def __init__(self, rng: random.Random, plan: _Plan, shared: float | None = None) -> None:
        self.rng = rng
        if shared is None:
            shared = rng.gauss(0.0, 1.0)
        self.log_pace = [math.sqrt(plan.pace[room.room_id].clinic_var) * shared
                         + math.sqrt(plan.pace[room.room_id].room_var) * rng.gauss(0.0, 1.0)
                         for room in plan.rooms]

    def occupation(self, occupation: _Occupation, index: int) -> float:
        if occupation.no_show > 0.0 and self.rng.random() < occupation.no_show:
            return occupation.lost
        return math.exp(occupation.mu + self.log_pace[index] + occupation.sigma * self.rng.gauss(0.0, 1.0))

    def residual(self, dist: Lognormal, elapsed: float, index: int) -> float:
        """The rest of a visit that has lasted `elapsed`: a draw of S - t given S > t."""
        mu = dist.mu + self.log_pace[index]
        sigma = max(dist.sigma, 1e-3)
        if elapsed <= 0.0:
            return math.exp(mu + sigma * self.rng.gauss(0.0, 1.0))
        below = _NORMAL.cdf((math.log(elapsed) - mu) / sigma)
        if below > 1.0 - 1e-9:
            return Lognormal(mu, sigma).residual(elapsed)
        u = min(below + (1.0 - below) * self.rng.random(), 1.0 - 1e-12)
        return max(math.exp(mu + sigma * _NORMAL.inv_cdf(u)) - elapsed, 15.0)

    def break_(self, usual: _Break, after: float = 0.0) -> tuple[float, float, _Break]:
        """(due, seconds, break): when it is planned today (one of its earlier past closings later than
        `after`; `after` itself when none is) and how long it lasts."""
        closings = usual.closings[:max(1, math.ceil(BREAK_DUE_SPREAD * len(usual.closings)))]
        later = [closed for closed in closings if closed > after]
        due = self.rng.choice(later) if later else max(after, usual.due) if closings else usual.due
        return due, self.rng.choice(usual.lengths) if usual.lengths else usual.seconds, usual


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted draws at the plotting position q (n + 1): a new draw falls below it with
    probability q, so a central range between two of them holds its stated share of draws however few
    they are (at q (n - 1), 40 draws' 10%–90% range holds 76%, 12 draws' 68%)."""
    position = min(max(q * (len(values) + 1) - 1.0, 0.0), len(values) - 1.0)
    below = int(position)
    above = min(below + 1, len(values) - 1)
    return values[below] + (values[above] - values[below]) * (position - below)


def _ranges(paths: list[dict[int, float]], coverage: float, scale: float) -> dict[int, WaitRange]:
    """The mean of the simulated waits, and the range between two of their quantiles: a central `coverage`
    range widened by `scale` as a normal one would be (each tail at Φ(scale · Φ⁻¹(tail)); the simulation
    knows its model's noise, not the model's own error). Quantiles at fixed levels keep a line's order:
    in every future a ticket behind another is called after it, so neither end decreases down a line."""
    tail = _NORMAL.cdf(scale * _NORMAL.inv_cdf((1.0 - coverage) / 2.0))
    result: dict[int, WaitRange] = {}
    for ticket_id in paths[0]:
        values = sorted(path[ticket_id] for path in paths)
        mean = sum(values) / len(values)
        low = max(_quantile(values, tail), 0.0)
        high = _quantile(values, 1.0 - tail)
        result[ticket_id] = WaitRange(mean, min(low, mean), max(high, mean))
    return result
