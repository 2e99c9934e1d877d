"""Clinic-day scenarios for the estimator harness: rooms, services, arrivals, priorities, breaks.

Families marked `tuned=True` were looked at while the estimator was built (seed 1); the others are
held out: different clinic sizes, heavier load, more priority patients, other break patterns. The
harness is always evaluated on days it never trained on, and bench/ uses a seed not used in tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

GENERAL, PEDIATRICS, LAB, ULTRASOUND, DERMATOLOGY = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class ServiceSpec:
    service_id: int
    name: str
    mean_minutes: float  # typical service time before room, hour and patient effects
    cv: float  # coefficient of variation of one service time
    distribution: str  # "lognormal" or "gamma"
    daily_walk_ins: float  # expected tickets issued directly for this service per day
    lab_transfer_probability: float = 0.0  # consult -> lab -> back to the same doctor
    ultrasound_transfer_probability: float = 0.0
    return_mean_minutes: float = 0.5  # the second visit after the lab, relative to mean_minutes


@dataclass(frozen=True)
class RoomSpec:
    room_id: int
    service_ids: tuple[int, ...]
    speed: float = 1.0  # multiplies the service time of everything the room does
    breaks: tuple[tuple[float, float], ...] = ()  # (local hour it starts, minutes)
    opens_hour: float = 7.0


@dataclass(frozen=True)
class Scenario:
    name: str
    tuned: bool
    description: str
    services: tuple[ServiceSpec, ...]
    rooms: tuple[RoomSpec, ...]
    priority_mix: dict[str, float] = field(default_factory=lambda: {
        "emergency": 0.01, "elderly": 0.14, "pregnant": 0.04, "disabled": 0.02, "booked": 0.12, "normal": 0.67})
    no_show_probability: float = 0.06
    load: float = 1.0  # multiplies every arrival rate
    opens_hour: float = 7.0
    last_ticket_hour: float = 16.0
    closes_hour: float = 19.5  # rooms stop; tickets still waiting then are not scored
    result_delay_minutes: float = 20.0  # lab results before the patient goes back to the doctor
    # Arrival intensity by local hour (morning peak, lunch dip, smaller afternoon bump).
    arrival_profile: tuple[tuple[float, float, float], ...] = (
        (7.0, 8.0, 1.2), (8.0, 10.0, 2.0), (10.0, 11.5, 1.3), (11.5, 13.0, 0.45), (13.0, 14.5, 1.1),
        (14.5, 16.0, 0.7))
    # Service-time multiplier by local hour: slow first patients, brisk before lunch, tired afternoon.
    hour_factor: tuple[tuple[float, float, float], ...] = (
        (0.0, 8.0, 1.15), (8.0, 11.0, 1.0), (11.0, 13.0, 0.85), (13.0, 15.0, 1.05), (15.0, 24.0, 0.9))
    # What real clinic days add: today's pace against other days (the whole clinic, and each doctor),
    # a doctor who starts late, the walk from the call to the room, breaks that start early or late.
    pace_sd: float = 0.12  # sd of log(today's pace) for the whole clinic
    room_pace_sd: float = 0.08  # and on top of it for each room's doctor
    late_start_probability: float = 0.15  # a room opens late ...
    late_start_minutes: tuple[float, float] = (5.0, 40.0)  # ... by this many minutes (uniform)
    walk_minutes: float = 0.8  # mean walk from the call to the room (gamma, shape 3); elderly x1.6
    break_jitter_minutes: float = 8.0  # sd of a break's start around its usual time (early or late)
    break_length_spread: float = 0.2  # a break lasts its usual length x U(1 - this, 1 + this)
    # Held tickets: a waiting patient steps out (the desk holds the ticket; it keeps its place) after an
    # exponential time in line, and comes back after a gamma-distributed absence, or never.
    hold_probability: float = 0.06  # of walk-ins
    hold_after_minutes: float = 12.0  # mean time in line before stepping out
    hold_minutes: float = 15.0  # mean absence (gamma, shape 2)
    resume_probability: float = 0.85  # the rest never come back
    # Doctors hurry when the line is long: a visit called with L patients left waiting for its service,
    # served by R rooms, lasts (1 + L / R) ** -rush of its usual length (0.1: x0.93 at one waiting per
    # room, x0.79 at ten).
    rush: float = 0.1


def _standard() -> Scenario:
    services = (
        ServiceSpec(GENERAL, "general consultation", 9.0, 0.55, "lognormal", 150.0,
                    lab_transfer_probability=0.22, ultrasound_transfer_probability=0.08),
        ServiceSpec(PEDIATRICS, "pediatrics", 11.0, 0.45, "gamma", 38.0, lab_transfer_probability=0.12),
        ServiceSpec(LAB, "laboratory", 4.0, 0.5, "gamma", 25.0),
        ServiceSpec(ULTRASOUND, "ultrasound", 12.0, 0.35, "lognormal", 12.0),
    )
    rooms = (
        RoomSpec(101, (GENERAL,), 0.9, breaks=((11.5, 45.0),)),
        RoomSpec(102, (GENERAL,), 1.15, breaks=((12.0, 45.0),)),
        RoomSpec(103, (GENERAL, PEDIATRICS), 1.0, breaks=((11.75, 60.0),)),
        RoomSpec(104, (PEDIATRICS,), 1.05, breaks=((12.25, 45.0),)),
        RoomSpec(105, (GENERAL,), 1.0, breaks=((11.0, 30.0), (15.0, 15.0))),
        RoomSpec(201, (LAB,), 1.0, breaks=((12.0, 30.0),)),
        RoomSpec(202, (LAB,), 1.2, breaks=((11.5, 30.0),), opens_hour=7.5),
        RoomSpec(301, (ULTRASOUND, GENERAL), 1.0, breaks=((12.0, 60.0),)),
    )
    return Scenario("standard", True, "8 rooms, 4 services, overlapping consult rooms, staggered lunch breaks",
                    services, rooms)


def _small() -> Scenario:
    services = (
        ServiceSpec(GENERAL, "general consultation", 10.0, 0.5, "lognormal", 70.0, lab_transfer_probability=0.25),
        ServiceSpec(LAB, "laboratory", 4.5, 0.5, "gamma", 12.0),
    )
    rooms = (
        RoomSpec(101, (GENERAL,), 0.95, breaks=((11.5, 60.0),)),
        RoomSpec(102, (GENERAL,), 1.1, breaks=((12.0, 45.0),)),
        RoomSpec(201, (LAB, GENERAL), 1.0, breaks=((12.0, 30.0),)),
    )
    return Scenario("small", True, "3 rooms, a lab room that also consults", services, rooms)


def _large() -> Scenario:
    services = (
        ServiceSpec(GENERAL, "general consultation", 8.0, 0.6, "lognormal", 260.0,
                    lab_transfer_probability=0.25, ultrasound_transfer_probability=0.1),
        ServiceSpec(PEDIATRICS, "pediatrics", 12.0, 0.5, "gamma", 70.0, lab_transfer_probability=0.15),
        ServiceSpec(DERMATOLOGY, "dermatology", 7.0, 0.4, "gamma", 55.0),
        ServiceSpec(LAB, "laboratory", 3.5, 0.55, "gamma", 60.0),
        ServiceSpec(ULTRASOUND, "ultrasound", 14.0, 0.3, "lognormal", 20.0),
    )
    rooms = (
        RoomSpec(101, (GENERAL,), 0.85, breaks=((11.5, 45.0),)),
        RoomSpec(102, (GENERAL,), 1.1, breaks=((12.0, 45.0),)),
        RoomSpec(103, (GENERAL,), 1.0, breaks=((11.75, 45.0),)),
        RoomSpec(104, (GENERAL, DERMATOLOGY), 1.2, breaks=((12.5, 30.0),)),
        RoomSpec(105, (GENERAL, PEDIATRICS), 0.95, breaks=((12.0, 60.0),)),
        RoomSpec(106, (PEDIATRICS,), 1.0, breaks=((11.5, 60.0),)),
        RoomSpec(107, (PEDIATRICS,), 1.1, breaks=((12.5, 45.0),), opens_hour=8.0),
        RoomSpec(108, (DERMATOLOGY,), 0.9, breaks=((12.0, 60.0),)),
        RoomSpec(109, (GENERAL,), 1.05, breaks=((10.5, 20.0), (14.5, 20.0))),
        RoomSpec(201, (LAB,), 1.0, breaks=((12.0, 30.0),)),
        RoomSpec(202, (LAB,), 1.0, breaks=((11.5, 30.0),)),
        RoomSpec(301, (ULTRASOUND,), 1.0, breaks=((12.0, 60.0),)),
        RoomSpec(302, (ULTRASOUND, GENERAL), 1.1, breaks=((12.5, 45.0),)),
    )
    return Scenario("large", False, "13 rooms, 5 services, more overlap (held out)", services, rooms, rush=0.08)


def scenarios() -> dict[str, Scenario]:
    standard, small, large = _standard(), _small(), _large()
    heavy = replace(standard, name="heavy", tuned=False, load=1.3,
                    rush=0.14, description="the standard clinic with 30% more patients, near saturation (held out)")
    priorities = replace(
        standard, name="priorities", tuned=False,
        priority_mix={"emergency": 0.04, "elderly": 0.25, "pregnant": 0.08, "disabled": 0.05, "booked": 0.2,
                      "normal": 0.38},
        no_show_probability=0.1, rush=0.06,
        description="62% priority patients, 10% no-shows (held out)")
    afternoon = replace(
        small, name="small_afternoon", tuned=False, load=1.15,
        arrival_profile=((7.0, 9.0, 0.8), (9.0, 11.0, 1.2), (11.0, 13.0, 0.6), (13.0, 15.0, 1.8),
                         (15.0, 16.0, 1.4)),
        hour_factor=((0.0, 10.0, 1.0), (10.0, 14.0, 1.2), (14.0, 24.0, 0.8)), rush=0.15,
        description="the small clinic with an afternoon peak and other service-time rhythms (held out)")
    return {s.name: s for s in (standard, small, large, heavy, priorities, afternoon)}


def scenario(name: str) -> Scenario:
    table = scenarios()
    if name not in table:
        raise KeyError(f"unknown scenario {name!r}; choose one of {', '.join(table)}")
    return table[name]
