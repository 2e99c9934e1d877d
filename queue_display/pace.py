"""Today's pace against other days: how much longer (or shorter) than usual visits run today, for the
whole clinic and for each room's doctor, learned from the day's finished visits.

A finished visit's residual r = log(seconds) - (the learned mean log-duration for its room, service,
hour and kind of patient) is modelled as r = a_day + b_room,day + noise (variance σ²). The day effects
have variances τ_a², τ_b², learned from past days (variance of the daily means less their sampling
noise); today's effects are their posterior means, shrunk toward 0 by σ²/τ² pseudo-observations, with
posterior variances that the forward simulation samples from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

KEEP_DAYS = 60
MIN_DAY_VISITS = 8  # a past day counts toward τ² with at least this many visits (a room: half of it)
TAU2_FLOOR = 0.0025  # today can always differ a little (5% in log terms)
TAU2_PRIOR = 0.02  # before there are past days: about 14% typical day-to-day variation


@dataclass
class _Sums:
    n: float = 0.0
    s1: float = 0.0
    s2: float = 0.0

    def add(self, r: float) -> None:
        self.n += 1.0
        self.s1 += r
        self.s2 += r * r

    def mean(self) -> float:
        return self.s1 / self.n if self.n else 0.0


@dataclass
class _Day:
    clinic: _Sums = field(default_factory=_Sums)
    rooms: dict[int, _Sums] = field(default_factory=dict)


@dataclass(frozen=True)
class Pace:
    mu: float  # posterior mean of today's log pace (clinic + room)
    clinic_var: float  # posterior variance of the clinic part (shared by every room)
    room_var: float  # posterior variance of the room part


NO_PACE = Pace(0.0, 0.0, 0.0)


class DayPace:
    def __init__(self) -> None:
        self._days: dict[dt.date, _Day] = {}
        self._cache: dict[tuple[dt.date, int], Pace] = {}
        self._taus: tuple[dt.date, float, float, float] | None = None  # (for day, σ², τ_a², τ_b²)

    def add(self, day: dt.date, room_id: int, residual: float) -> None:
        record = self._days.get(day)
        if record is None:
            record = self._days[day] = _Day()
            for old in sorted(self._days)[:-KEEP_DAYS]:
                del self._days[old]
        record.clinic.add(residual)
        record.rooms.setdefault(room_id, _Sums()).add(residual)
        self._cache.clear()
        if self._taus is not None and self._taus[0] != day:
            self._taus = None

    def _variances(self, today: dt.date) -> tuple[float, float, float]:
        """(σ², τ_a², τ_b²) from the days before today."""
        if self._taus is not None and self._taus[0] == today:
            return self._taus[1:]
        within = _Sums()
        clinic_means: list[tuple[float, float]] = []
        room_means: list[tuple[float, float]] = []
        for day, record in self._days.items():
            if day >= today:
                continue
            for sums in record.rooms.values():
                if sums.n >= 2:
                    mean = sums.mean()
                    within.n += sums.n - 1
                    within.s2 += sums.s2 - sums.n * mean * mean
            if record.clinic.n >= MIN_DAY_VISITS:
                day_mean = record.clinic.mean()
                clinic_means.append((day_mean, record.clinic.n))
                room_means.extend((sums.mean() - day_mean, sums.n) for sums in record.rooms.values()
                                  if sums.n >= MIN_DAY_VISITS / 2)
        sigma2 = within.s2 / within.n if within.n >= 20 else 0.25
        tau_a = _between(clinic_means, sigma2)
        tau_b = _between(room_means, sigma2)
        self._taus = (today, sigma2, tau_a, tau_b)
        return sigma2, tau_a, tau_b

    def today(self, day: dt.date, room_id: int) -> Pace:
        cached = self._cache.get((day, room_id))
        if cached is not None:
            return cached
        sigma2, tau_a, tau_b = self._variances(day)
        record = self._days.get(day)
        clinic = record.clinic if record is not None else _Sums()
        clinic_precision = clinic.n / sigma2 + 1.0 / tau_a
        a = (clinic.s1 / sigma2) / clinic_precision
        room = record.rooms.get(room_id) if record is not None else None
        b, room_var = 0.0, tau_b
        if room is not None and room.n:
            room_precision = room.n / sigma2 + 1.0 / tau_b
            b = ((room.s1 - room.n * a) / sigma2) / room_precision
            room_var = 1.0 / room_precision
        pace = self._cache[(day, room_id)] = Pace(a + b, 1.0 / clinic_precision, room_var)
        return pace


def _between(means: list[tuple[float, float]], sigma2: float) -> float:
    """Variance of day effects: the variance of daily means less their average sampling variance."""
    if len(means) < 3:
        return TAU2_PRIOR
    grand = sum(m for m, _ in means) / len(means)
    spread = sum((m - grand) ** 2 for m, _ in means) / (len(means) - 1)
    noise = sum(sigma2 / n for _, n in means) / len(means)
    return max(spread - noise, TAU2_FLOOR)
