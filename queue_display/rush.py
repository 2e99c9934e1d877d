"""Doctors hurry when the line is long: how much shorter a visit is when more patients wait for its service
than usually do at that hour, learned from the estimator's own record of arrivals and calls.

The line a visit was called from is counted from today's arrivals and calls of its service (waiting after the
call = arrivals so far − calls so far), per room that serves the service: `z = log(1 + line / rooms)`. A
visit's residual `r` (its log-duration less the learned mean for its room, service, hour and kind of patient)
is regressed on `z` within each (service, local hour), so the hour-of-day effect, which already holds the
usual rush of that hour, is not counted twice: `r ≈ β_s (z − z̄_s,h)`. β is a weighted least-squares slope
shrunk toward the clinic's slope, which is shrunk toward 0 (`PRIOR` units of z's spread each). A day's visits
join the regression once the day is over, when every call of it is known (a visit in progress hides its call
until it ends).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from dataclasses import dataclass

PRIOR = 5.0  # prior precision of a slope, in (weighted observations x z²)
MAX_SLOPE = 0.5  # |β| at most: a line never halves or doubles a visit by its log-length alone
ROOM_DAYS = 28.0  # a room that served a service within this many days counts among its rooms


@dataclass
class _Cross:
    """Weighted sums of (z, r) for one (service, hour)."""

    w: float = 0.0
    z: float = 0.0
    zz: float = 0.0
    r: float = 0.0
    rz: float = 0.0

    def add(self, z: float, r: float, weight: float) -> None:
        self.w += weight
        self.z += weight * z
        self.zz += weight * z * z
        self.r += weight * r
        self.rz += weight * r * z

    def centred(self) -> tuple[float, float]:
        """(Σ w (z − z̄)², Σ w (z − z̄)(r − r̄))."""
        if self.w <= 0.0:
            return 0.0, 0.0
        return self.zz - self.z * self.z / self.w, self.rz - self.r * self.z / self.w


class LineRush:
    def __init__(self) -> None:
        self._day: dt.date | None = None
        self._arrivals: dict[int, list[float]] = {}  # service -> today's arrival epochs, in order
        self._calls: dict[int, list[float]] = {}  # service -> today's call epochs (learned so far), sorted
        self._pending: list[tuple[int, int, int, float, float, float]] = []  # (room, service, hour, called, r, weight)
        self._rooms: dict[int, dict[int, float]] = {}  # service -> room -> epoch it last served it
        self._cross: dict[tuple[int, int], _Cross] = {}  # the usual load of each (service, hour)
        self._sums: dict[int, tuple[float, float]] = {}  # service -> (Σ w dz², Σ w dz r), within room-days
        self._scale = 1.0  # the newest weight: sums are read in units of today's observations
        self._slopes: dict[int, float] | None = None
        self._room_counts: dict[int, int] = {}

    def _today(self, day: dt.date) -> bool:
        """Starts a new day if `day` is later (the day before joins the regression); False for an earlier day."""
        if self._day is None or day > self._day:
            self._settle()
            self._day = day
            self._arrivals, self._calls = {}, {}
            return True
        return day == self._day

    def arrival(self, service_id: int, epoch: float, day: dt.date) -> None:
        if self._today(day):
            times = self._arrivals.setdefault(service_id, [])
            if not times or times[-1] <= epoch:
                times.append(epoch)
            else:
                bisect.insort(times, epoch)

    def call(self, service_id: int, epoch: float, day: dt.date) -> None:
        if self._today(day):
            bisect.insort(self._calls.setdefault(service_id, []), epoch)

    def line(self, service_id: int, epoch: float) -> int:
        """Today's patients waiting for the service just after a call at `epoch`, as far as known now."""
        arrived = bisect.bisect_right(self._arrivals.get(service_id, ()), epoch)
        called = bisect.bisect_right(self._calls.get(service_id, ()), epoch)
        return max(arrived - called, 0)

    def visit(self, room_id: int, service_id: int, hour: int, called: float, day: dt.date, residual: float,
              weight: float) -> None:
        """A finished visit called at `called` (its call already given to `call`)."""
        rooms = self._rooms.setdefault(service_id, {})
        rooms[room_id] = max(rooms.get(room_id, called), called)
        self._room_counts.pop(service_id, None)
        if self._today(day) and math.isfinite(residual):
            self._pending.append((room_id, service_id, hour, called, residual, weight))
            self._scale = max(self._scale, weight)

    def rooms(self, service_id: int) -> int:
        """The rooms that served the service in the last ROOM_DAYS days of its visits (at least 1)."""
        count = self._room_counts.get(service_id)
        if count is None:
            rooms = self._rooms.get(service_id, {})
            newest = max(rooms.values(), default=0.0)
            count = max(sum(1 for last in rooms.values() if newest - last <= ROOM_DAYS * 86400.0), 1)
            self._room_counts[service_id] = count
        return count

    def terms(self, service_id: int, hour: int) -> tuple[float, int, float]:
        """(β, rooms, z̄) of a visit of this service at this local hour; β 0 when nothing is learned."""
        slope = self.slopes().get(service_id, 0.0)
        cross = self._cross.get((service_id, hour))
        if not slope or cross is None or cross.w <= 0.0:
            return 0.0, 1, 0.0
        return slope, self.rooms(service_id), cross.z / cross.w

    def load(self, service_id: int, waiting: float) -> float:
        """z for `waiting` patients left in the service's line."""
        return math.log1p(max(waiting, 0.0) / self.rooms(service_id))

    def shift(self, service_id: int, hour: int, waiting: float) -> float:
        """Log-shift of a visit of this service at this local hour called with `waiting` left in line."""
        slope, rooms, usual = self.terms(service_id, hour)
        return slope * (math.log1p(max(waiting, 0.0) / rooms) - usual) if slope else 0.0

    def slopes(self) -> dict[int, float]:
        """β per service (shrunk toward the clinic's, which is shrunk toward 0)."""
        if self._slopes is None:
            sums = {service_id: (zz / self._scale, rz / self._scale) for service_id, (zz, rz) in self._sums.items()}
            clinic = sum(zz for zz, _ in sums.values()), sum(rz for _, rz in sums.values())
            overall = _clamp(clinic[1] / (clinic[0] + PRIOR))
            self._slopes = {service_id: _clamp((rz + PRIOR * overall) / (zz + PRIOR))
                            for service_id, (zz, rz) in sums.items()}
        return self._slopes

    def _settle(self) -> None:
        """The day under way is over: every call of it is known, so its visits' lines are exact. Each
        visit's load is taken against its (service, hour)'s usual one, and both it and its residual against
        the mean of its room's day: a slow day lengthens the line and the visits alike, which is today's
        pace (pace.py), not a rush."""
        days: dict[int, list[tuple[int, float, float, float]]] = {}
        for room_id, service_id, hour, called, residual, weight in self._pending:
            z = self.load(service_id, self.line(service_id, called))
            cross = self._cross.get((service_id, hour))
            if cross is None:
                cross = self._cross[(service_id, hour)] = _Cross()
            cross.add(z, residual, weight)
            days.setdefault(room_id, []).append((service_id, z - cross.z / cross.w, residual, weight))
        for visits in days.values():
            total = sum(weight for *_, weight in visits)
            mean_z = sum(weight * dz for _, dz, _, weight in visits) / total
            mean_r = sum(weight * r for _, _, r, weight in visits) / total
            for service_id, dz, r, weight in visits:
                zz, rz = self._sums.get(service_id, (0.0, 0.0))
                self._sums[service_id] = (zz + weight * (dz - mean_z) ** 2, rz + weight * (dz - mean_z) * (r - mean_r))
        if self._pending:
            self._slopes = None
        self._pending = []


def _clamp(slope: float) -> float:
    return min(max(slope, -MAX_SLOPE), MAX_SLOPE)
