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

import datetime as dt
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from queue_display.ordering import URGENT, QueueItem, head_start_minutes, next_for_room

SQRT2 = math.sqrt(2.0)
LN2 = math.log(2.0)
SLOT_SECONDS = 300  # room timetables are learned in 5-minute slots of the local day
SLOTS_PER_DAY = 86400 // SLOT_SECONDS
FUTURE_TICKET_IDS = -(10**12)  # ids of the expected future arrivals in the simulation (never real)


@dataclass(frozen=True)
class RoomState:
    room_id: int
    service_ids: tuple[int, ...]
    open: bool
    serving_since: dt.datetime | None  # start of the ticket now in service, None if idle
    serving_service_id: int | None


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


class _ExpectedArrivals:
    """Deterministic stand-ins for future arrivals, generated an hour at a time as the simulation needs
    them: one ticket of a class wherever its cumulative expected count crosses k + 1/2."""

    def __init__(self, classes: list[tuple[int, str, bool, dict[int, float]]], now: dt.datetime,
                 tz: ZoneInfo, horizon_seconds: float, first_threshold: float = 0.5) -> None:
        self.classes = classes
        self.progress = [[0.0, first_threshold] for _ in classes]  # expected so far, next threshold
        self.start = now.timestamp()
        local = now.astimezone(tz)
        self.hour_start = self.start - (local.minute * 60 + local.second + local.microsecond / 1e6)
        self.local_hour = local.hour
        self.horizon = self.start + horizon_seconds if classes else self.start
        self.generated_until = self.start
        self.items: list[QueueItem] = []
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
            if rate <= 0.0:
                continue
            expected, threshold = progress
            gained = rate * (end - start)
            while expected + gained >= threshold:
                block.append((start + (threshold - expected) / rate, service_id, priority, returning))
                threshold += 1.0
            progress[0], progress[1] = expected + gained, threshold
        block.sort()
        for at, service_id, priority, returning in block:
            self.items.append(QueueItem(FUTURE_TICKET_IDS - len(self.items), service_id, priority,
                                        dt.datetime.fromtimestamp(at, dt.UTC), returning))
            self.epochs.append(at)
        self.generated_until = end
        return True


_LineKey = tuple[int, float, int | None]  # (service, head start minutes, preferred room)
_Head = tuple[float, int, QueueItem]  # (enqueued epoch, ticket id, item)


def _patient_class(priority: str | None, returning: bool) -> str | None:
    return "returning" if returning else priority


URGENT_LINE = math.inf  # the head start that marks a line of emergencies (always served first)


def _choose(keys: list[_LineKey], lines: dict[_LineKey, list[_Head]], heads: dict[_LineKey, int],
            room_id: int, at: float, starvation_seconds: float) -> _LineKey | None:
    """ordering.next_for_room's rule on epoch floats (tests check the two always agree): emergencies
    first, oldest first; then starved tickets, oldest first; otherwise the earliest enqueued_at minus
    head start; then enqueued_at, id. A ticket preferring another room is eligible only once starved.
    Each line is FIFO under this rule, so only line heads are compared. Returns the line whose head
    the room takes."""
    starved_before = at - starvation_seconds
    urgent: _Head | None = None  # the best emergency head
    urgent_key: _LineKey | None = None
    oldest: _Head | None = None  # the best starved head
    oldest_key: _LineKey | None = None
    best_key: _LineKey | None = None  # the line of the best head that is not starved
    best_rank = (0.0, 0.0, 0)
    for key in keys:
        line = lines[key]
        position = heads[key]
        if position >= len(line):
            continue
        head = line[position]
        eligible_here = key[2] is None or key[2] == room_id
        if key[1] == URGENT_LINE:
            if (eligible_here or head[0] < starved_before) and (urgent is None or head[:2] < urgent[:2]):
                urgent, urgent_key = head, key
        elif head[0] < starved_before:
            if oldest is None or head[:2] < oldest[:2]:
                oldest, oldest_key = head, key
        elif oldest is None and eligible_here:
            rank = (head[0] - key[1] * 60.0, head[0], head[1])
            if best_key is None or rank < best_rank:
                best_key, best_rank = key, rank
    if urgent is not None:
        return urgent_key
    return oldest_key if oldest is not None else best_key


class WaitEstimator:
    """Learns this clinic's service times and arrivals; estimates every waiting ticket's wait."""

    def __init__(self, tz: ZoneInfo, weights: Mapping[str, float], starvation_minutes: float, *,
                 default_service_seconds: float = 600.0, default_sigma: float = 0.5,
                 half_life_days: float = 28.0, kappa: float = 5.0, nu: float = 10.0,
                 no_show_seconds: float = 150.0, closed_room_seconds: float = 1200.0,
                 arrival_horizon_seconds: float = 4 * 3600.0, exact_policy: bool = False,
                 arrival_threshold: float = 0.5) -> None:
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
        self._arrivals: dict[tuple[int, str, bool, int], float] = {}
        self._arrival_days: set[dt.date] = set()
        self._arrival_plan: dict[int, dict[tuple[str, bool], dict[int, float]]] = {}
        self._room_open: dict[int, list[float]] = {}  # room -> weighted seconds open per local slot
        self._room_seen: dict[int, list[float]] = {}  # room -> weighted seconds observed per local slot
        self._room_last: dict[int, tuple[bool, dt.datetime]] = {}
        self._room_days: dict[int, set[dt.date]] = {}
        self._room_breaks: dict[int, list[tuple[float, float, float]]] = {}  # (closed at, seconds, weight)
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

    def record_arrival(self, service_id: int, at: dt.datetime, priority: str = "normal",
                       returning: bool = False) -> None:
        local = at.astimezone(self.tz)
        self._arrival_days.add(local.date())
        key = (service_id, priority, returning, local.hour)
        self._arrivals[key] = self._arrivals.get(key, 0.0) + 1.0
        self._arrival_plan.clear()

    def record_room_state(self, room_id: int, open: bool, at: dt.datetime) -> None:
        """Optional: a room opened or closed (breaks, end of day). The estimator learns each room's usual
        timetable from these and expects breaks and reopenings in its forward simulation."""
        last = self._room_last.get(room_id)
        self._room_last[room_id] = (open, at)
        self._room_days.setdefault(room_id, set()).add(at.astimezone(self.tz).date())
        if last is None or last[1] >= at:
            return
        was_open, since = last
        if since.astimezone(self.tz).date() != at.astimezone(self.tz).date():
            return  # overnight: nothing observed
        weight = self._weight(at)
        if open and not was_open:  # back from a break the same day
            self._room_breaks.setdefault(room_id, []).append(
                (self._day_seconds(since.timestamp()), (at - since).total_seconds(), weight))
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
            typical.append(_Break(due=closings[int(0.15 * (len(closings) - 1))],
                                  closes=closings[len(closings) // 2], seconds=lengths[len(lengths) // 2]))
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
        mean = math.exp(base.mu + shift + 0.5 * base.sigma * base.sigma * ratio)
        return (1.0 - probability) * mean + probability * lost

    def arrival_rates(self, service_id: int) -> dict[tuple[str, bool], dict[int, float]]:
        """{(priority, returning): {local hour: tickets per second}} learned for this service."""
        plan = self._arrival_plan.get(service_id)
        if plan is None:
            days = max(len(self._arrival_days), 1)
            plan = {}
            for (service, priority, returning, hour), count in self._arrivals.items():
                if service == service_id:
                    plan.setdefault((priority, returning), {})[hour] = count / (days * 3600.0)
            self._arrival_plan[service_id] = plan
        return plan

    # ---- estimating -----------------------------------------------------------------------------

    def _expected_arrivals(self, now: dt.datetime, service_ids: set[int],
                           min_head_start: float) -> _ExpectedArrivals:
        """Expected future tickets that could be called before some waiting ticket: every learned class
        with a larger head start than the least favoured waiting ticket."""
        classes: list[tuple[int, str, bool, dict[int, float]]] = []
        for service_id in sorted(service_ids):
            for (priority, returning), by_hour in self.arrival_rates(service_id).items():
                probe = QueueItem(0, service_id, priority, now, returning)
                if head_start_minutes(probe, self.weights) > min_head_start:
                    classes.append((service_id, priority, returning, by_hour))
        return _ExpectedArrivals(classes, now, self.tz, self.arrival_horizon_seconds, self.arrival_threshold)

    def _choose_exact(self, keys: list[_LineKey], lines: dict[_LineKey, list[_Head]], heads: dict[_LineKey, int],
                      room: RoomState, at: float) -> QueueItem | None:
        """The room's choice by ordering.next_for_room itself. Within one (head start, preferred room)
        group the ordering key is monotone in (enqueued_at, ticket_id), across services too, so only
        each group's earliest head can win and next_for_room sees a handful of candidates."""
        best: dict[tuple[float, int | None], _Head] = {}
        for key in keys:
            position = heads[key]
            line = lines[key]
            if position < len(line):
                head = line[position]
                group = (key[1], key[2])
                current = best.get(group)
                if current is None or head[:2] < current[:2]:
                    best[group] = head
        candidates = [head[2] for head in best.values()]
        if not candidates:
            return None
        return next_for_room(candidates, room.room_id, room.service_ids, dt.datetime.fromtimestamp(at, dt.UTC),
                             self.weights, self.starvation_minutes)

    def estimate(self, now: dt.datetime, waiting: Sequence[QueueItem],
                 rooms: Sequence[RoomState]) -> dict[int, float]:
        """ticket_id -> estimated seconds until the ticket is called."""
        if not waiting:
            return {}
        now_epoch = now.timestamp()
        offset = now.astimezone(self.tz).utcoffset()
        later = (now + dt.timedelta(hours=12)).astimezone(self.tz).utcoffset()
        # local seconds of the day by arithmetic, unless the clocks change within the next 12 hours
        fixed = offset.total_seconds() if offset is not None and offset == later else None
        served = {service for room in rooms for service in room.service_ids}
        open_services = {service for room in rooms if room.open for service in room.service_ids}
        # Rooms that will take tickets: the open ones (some will take their usual break when next free),
        # closed ones on a usual break or before their usual opening (back at the usual time), and other
        # closed ones only for services no open room serves (assumed back after `closed_room_seconds`).
        free_at: list[tuple[float, int]] = []
        now_day = self._day_seconds(now_epoch)
        pending_breaks: list[list[_Break]] = []  # per room: its usual breaks still to come in the simulation
        for index, room in enumerate(rooms):
            reopening = None
            pending = []
            for usual in self.typical_breaks(room.room_id):
                if now_day >= usual.window_end():
                    continue  # long over
                if now_day < usual.due:
                    pending.append(usual)
                elif not room.open:  # on this break now
                    reopening = now_epoch + max(usual.closes + usual.seconds - now_day, 60.0)
                elif room.serving_since is not None and \
                        self._day_seconds(room.serving_since.timestamp()) < usual.due:
                    pending.append(usual)  # the doctor goes once this patient is done
            pending_breaks.append(pending)
            if reopening is None and not room.open:
                reopening = self._expected_break(room.room_id, now_epoch)
            if room.open:
                start = now_epoch
            elif reopening is not None:  # a usual break: back at its usual time
                start = reopening
            elif any(service not in open_services for service in room.service_ids):
                start = now_epoch + self.closed_room_seconds
            else:
                continue
            if room.serving_since is not None and room.serving_service_id is not None:
                elapsed = max((now - room.serving_since).total_seconds(), 0.0)
                hour = self._hour(room.serving_since)
                start += self.service_time(room.room_id, room.serving_service_id, hour).residual(elapsed)
            free_at.append((start, index))
        heapq.heapify(free_at)
        timetables = [(self._room_seen[room.room_id], self._room_open[room.room_id])
                      if room.room_id in self._room_seen else None for room in rooms]

        # Tickets in classes that are FIFO under the ordering policy: same service, priority, returning
        # flag and preferred room. A room's choice is always the head of one of its eligible classes, so
        # next_for_room only ever sees a handful of candidates (exactly the same choice, much faster).
        weights = self.weights
        head_starts: dict[tuple[str, bool], float] = {}

        def head_start(item: QueueItem) -> float:
            minutes = head_starts.get((item.priority, item.returning))
            if minutes is None:
                minutes = URGENT_LINE if item.priority == URGENT else head_start_minutes(item, weights)
                head_starts[(item.priority, item.returning)] = minutes
            return minutes

        lines: dict[_LineKey, list[_Head]] = {}
        for item in waiting:
            key = (item.service_id, head_start(item), item.preferred_room_id)
            lines.setdefault(key, []).append((item.enqueued_at.timestamp(), item.ticket_id, item))
        for line in lines.values():
            line.sort(key=lambda entry: entry[:2])
        heads = {key: 0 for key in lines}
        min_head_start = min(min(key[1] for key in lines), head_start_minutes(
            QueueItem(0, 0, URGENT, now), weights))
        stream = self._expected_arrivals(now, {item.service_id for item in waiting} & served, min_head_start)
        future, future_epochs = stream.items, stream.epochs
        next_future = 0
        real_left = sum(1 for item in waiting if item.service_id in served)
        result: dict[int, float] = {}
        room_lines: dict[int, list[_LineKey]] = {}
        occupation: dict[tuple[int, int, int, str | None], float] = {}
        starvation_seconds = self.starvation_minutes * 60.0

        while free_at and real_left > 0:
            at, index = heapq.heappop(free_at)
            while stream.generated_until < at and stream.extend():
                pass
            while next_future < len(future) and future_epochs[next_future] <= at:
                item = future[next_future]
                key = (item.service_id, head_start(item), None)
                if key not in lines:
                    lines[key] = []
                    heads[key] = 0
                    room_lines.clear()
                lines[key].append((future_epochs[next_future], item.ticket_id, item))
                next_future += 1
            room = rooms[index]
            timetable = timetables[index]
            if timetable is not None and at > now_epoch:
                day_seconds = (at + fixed) % 86400.0 if fixed is not None else self._day_seconds(at)
                pending = pending_breaks[index]
                if pending and day_seconds >= pending[0].due:  # free after its usual break time: it goes
                    usual = pending.pop(0)
                    if day_seconds < usual.window_end():
                        heapq.heappush(free_at, (at + usual.seconds, index))
                        continue
                slot = int(day_seconds // SLOT_SECONDS)
                seen, opened = timetable
                if seen[slot] > 0.0 and opened[slot] < 0.5 * seen[slot] and not any(
                        usual.due <= day_seconds < usual.window_end()
                        for usual in self.typical_breaks(room.room_id)):
                    reopening = self.next_opening(room.room_id, at, day_seconds=day_seconds)
                    if reopening is not None:  # usually closed now (not a break it takes when free)
                        heapq.heappush(free_at, (reopening, index))
                        continue
            keys = room_lines.get(index)
            if keys is None:
                services = set(room.service_ids)
                keys = room_lines[index] = [key for key in lines if key[0] in services]
            if self.exact_policy:
                picked = self._choose_exact(keys, lines, heads, room, at)
                line_key = None if picked is None else (picked.service_id, head_start(picked),
                                                        picked.preferred_room_id)
            else:
                line_key = _choose(keys, lines, heads, room.room_id, at, starvation_seconds)
            if line_key is None:
                # Nothing this room may take yet: wait for the next expected arrival or for a preferred
                # ticket to starve (then any room may take it).
                services = set(room.service_ids)
                upcoming = next_future
                while True:  # the next expected arrival this room could take
                    while upcoming >= len(future) and stream.extend():
                        pass
                    if upcoming >= len(future) or future[upcoming].service_id in services:
                        break
                    upcoming += 1
                wake = [future_epochs[upcoming]] if upcoming < len(future) else []
                for key in keys:
                    if key[2] is not None and heads[key] < len(lines[key]):
                        wake.append(lines[key][heads[key]][0] + starvation_seconds + 1.0)
                later = [w for w in wake if w > at]
                if later:
                    heapq.heappush(free_at, (min(later), index))
                continue
            chosen = lines[line_key][heads[line_key]][2]
            heads[line_key] += 1
            if chosen.ticket_id > FUTURE_TICKET_IDS:
                result[chosen.ticket_id] = max(at - now_epoch, 0.0)
                real_left -= 1
            if fixed is not None:
                hour = int(((at + fixed) % 86400.0) // 3600)
            else:
                hour = dt.datetime.fromtimestamp(at, self.tz).hour
            kind = _patient_class(chosen.priority, chosen.returning)
            slot = (room.room_id, chosen.service_id, hour, kind)
            busy = occupation.get(slot)
            if busy is None:
                busy = occupation[slot] = self.expected_occupation(room.room_id, chosen.service_id, at, kind, hour)
            heapq.heappush(free_at, (at + busy, index))

        fallback = self.closed_room_seconds + sum(result.values()) / max(len(result), 1)
        for item in waiting:  # no room can serve it: a long, honest guess rather than none
            if item.ticket_id not in result:
                result[item.ticket_id] = fallback
        return result
