"""Evaluation harness: train on simulated days, then score every prediction on days never trained on.

At the moment each ticket enters a waiting line (issued, transferred to the lab, or back from it), every
predictor estimates its wait; the truth is the time until the ticket is called. Every predictor learns
online, as the live service does: clinicall's WaitEstimator is told each arrival, finished visit, no-show
and room opening or closing when it happens, so it never sees anything after the moment it predicts for.
clinicall's range (e.g. 80%) is scored by how often it holds the real wait, over the predictions that
are a range: a point (every simulated future calls the ticket at the same moment, mostly at once, when
a room is idle) holds its wait by construction and would only inflate the share; their share is reported
beside it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from clinicall.settings import QueueSettings
from queue_display.estimator import WaitEstimator, clinic_estimator
from queue_display.ordering import order_waiting
from queue_display.sim.baselines import LastEnteredService, QueueLength, RollingAverage, tickets_ahead
from queue_display.sim.clinic import ClinicDay, Entry
from queue_display.sim.scenarios import Scenario

PREDICTORS = ("clinicall", "rolling", "QL", "LES")
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(dict(QueueSettings().priority_weights))
DEFAULT_STARVATION_MINUTES = float(QueueSettings().anti_starvation_minutes)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


class EstimatorFeed:
    """Feeds a WaitEstimator what the queue room would, as it happens: arrivals, finished visits (from
    the call: the walk to the room is the room's time too), no-shows, rooms opening and closing."""

    def __init__(self, estimator: WaitEstimator) -> None:
        self.estimator = estimator

    @staticmethod
    def _do(action: Callable[[], None]) -> None:
        action()

    def entered(self, day: ClinicDay, entry: Entry) -> None:
        self._do(lambda: self.estimator.record_arrival(entry.service_id, _utc(entry.enqueued), entry.priority,
                                                       entry.returning))
        if entry.sent_at is not None and entry.lab_done_at is not None:
            sent, done = _utc(entry.sent_at), _utc(entry.lab_done_at)
            self._do(lambda: self.estimator.record_round_trip(sent, done, _utc(entry.enqueued)))

    def called(self, day: ClinicDay, entry: Entry) -> None:
        pass

    def served(self, room_id: int, service_id: int, started: float, ended: float, entry: Entry) -> None:
        self._do(lambda: self.estimator.record_service(room_id, service_id, _utc(started), _utc(ended),
                                                       entry.priority, entry.returning))

    def missed(self, room_id: int, service_id: int, called: float, ended: float) -> None:
        self._do(lambda: self.estimator.record_no_show(room_id, service_id, _utc(called), _utc(ended)))

    def room_changed(self, room_id: int, open: bool, at: float) -> None:
        self._do(lambda: self.estimator.record_room_state(room_id, open, _utc(at)))

    def held(self, day: ClinicDay, entry: Entry) -> None:
        held_at = _utc(day.now)
        self._do(lambda: self.estimator.record_hold(entry.entry_id, held_at))

    def resumed(self, day: ClinicDay, entry: Entry, held_at: float) -> None:
        resumed_at = _utc(day.now)
        self._do(lambda: self.estimator.record_hold(entry.entry_id, _utc(held_at), resumed_at))


@dataclass
class Scorer:
    """Predicts every entry's wait with each predictor and keeps (prediction, truth) pairs."""

    estimator: WaitEstimator
    weights: Mapping[str, float]
    starvation_minutes: float
    rolling: RollingAverage = field(default_factory=RollingAverage)
    les: LastEnteredService = field(default_factory=LastEnteredService)
    ql: QueueLength = field(default_factory=QueueLength)
    scoring: bool = False
    predictions: dict[int, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in PREDICTORS})
    estimate_cpu_ms: list[float] = field(default_factory=list)
    largest_queue: int = 0
    every_change: bool = False  # also predict every waiting ticket's remaining wait at every queue change
    snapshots: dict[int, list[tuple[float, dict[str, float]]]] = field(default_factory=dict)
    change_errors: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in PREDICTORS})
    covered: list[bool | None] = field(default_factory=list)  # clinicall's range held the real wait (None: a point)
    change_covered: list[bool | None] = field(default_factory=list)

    def _snapshot(self, day: ClinicDay) -> None:
        """Remaining-wait predictions for every waiting ticket now (rolling and LES: their wait minus the
        time already waited, at least 0)."""
        if not day.waiting:
            return
        now = day.now_datetime()
        items = day.waiting_items()
        rooms = day.room_states()
        estimates = self.estimator.estimate_ranges(now, items, rooms, day.away(), day.held_items())
        ahead_by_service: dict[int, int] = {}
        for item in order_waiting(items, now, self.weights, self.starvation_minutes):
            ahead = ahead_by_service.get(item.service_id, 0)
            ahead_by_service[item.service_id] = ahead + 1
            waited = day.now - _in_line_since(day.waiting[item.ticket_id])
            span = estimates[item.ticket_id]
            self.snapshots.setdefault(item.ticket_id, []).append((day.now, {
                "clinicall": span.seconds, "low": span.low, "high": span.high,
                "rolling": max(self.rolling.predict(item.service_id) - waited, 0.0),
                "QL": self.ql.predict(item.service_id, ahead, rooms),
                "LES": max(self.les.predict(item.service_id) - waited, 0.0),
            }))

    def entered(self, day: ClinicDay, entry: Entry) -> None:
        if not self.scoring:
            return
        if self.every_change:
            self._snapshot(day)
        now = day.now_datetime()
        items = day.waiting_items()
        rooms = day.room_states()
        started = time.thread_time()
        span = self.estimator.estimate_ranges(now, items, rooms, day.away(), day.held_items())[entry.entry_id]
        self.estimate_cpu_ms.append((time.thread_time() - started) * 1000.0)
        self.largest_queue = max(self.largest_queue, len(items))
        ordered = order_waiting(items, now, self.weights, self.starvation_minutes)
        ahead = tickets_ahead(ordered, entry.entry_id)
        self.predictions[entry.entry_id] = {
            "clinicall": span.seconds, "low": span.low, "high": span.high,
            "rolling": self.rolling.predict(entry.service_id),
            "QL": self.ql.predict(entry.service_id, ahead, rooms),
            "LES": self.les.predict(entry.service_id),
        }

    def held(self, day: ClinicDay, entry: Entry) -> None:
        """A patient who steps out: their wait so far was not the queue's doing, so what was predicted
        for them is not scored; they are predicted again when they come back."""
        self.predictions.pop(entry.entry_id, None)
        self.snapshots.pop(entry.entry_id, None)
        if self.scoring and self.every_change:
            self._snapshot(day)

    def resumed(self, day: ClinicDay, entry: Entry, held_at: float) -> None:
        self.entered(day, entry)

    def called(self, day: ClinicDay, entry: Entry) -> None:
        assert entry.called is not None
        wait = entry.called - _in_line_since(entry)
        self.rolling.record_wait(entry.service_id, wait)
        self.les.record_wait(entry.service_id, wait)
        predicted = self.predictions.pop(entry.entry_id, None)
        if predicted is not None:
            _score(predicted, wait, self.errors, self.covered)
        for at, values in self.snapshots.pop(entry.entry_id, ()):
            _score(values, entry.called - at, self.change_errors, self.change_covered)
        if self.scoring and self.every_change:
            self._snapshot(day)

    def served(self, room_id: int, service_id: int, started: float, ended: float, entry: Entry) -> None:
        self.ql.record_completion(service_id, ended)

    def missed(self, room_id: int, service_id: int, called: float, ended: float) -> None:
        self.ql.record_completion(service_id, ended)

    def room_changed(self, room_id: int, open: bool, at: float) -> None:
        pass

    def end_of_day(self) -> None:
        self.predictions.clear()  # tickets never called before closing are not scored
        self.snapshots.clear()
        self.ql.new_day()


def _in_line_since(entry: Entry) -> float:
    """When the patient last entered the line: issued, transferred, back from the lab, or back from a hold."""
    return entry.resumed_at if entry.resumed_at is not None else entry.enqueued


POINT_SECONDS = 1.0  # a range this narrow is a point: the futures agree (mostly: called at once)


def _score(predicted: dict[str, float], truth: float, errors: dict[str, list[float]],
           covered: list[bool | None]) -> None:
    """`covered` gets whether the range held the truth, or None for a point (not a range)."""
    for name in PREDICTORS:
        errors[name].append((predicted[name] - truth) / 60.0)
    ranged = predicted["high"] - predicted["low"] > POINT_SECONDS
    covered.append(predicted["low"] <= truth <= predicted["high"] if ranged else None)


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    tuned: bool
    seed: int
    train_days: int
    days: int
    predictions: int
    mae: dict[str, float]
    mse: dict[str, float]
    estimate_cpu_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)  # median, 95th percentile, max
    largest_queue: int = 0
    changes: ScenarioResult | None = None  # the same, predicting at every queue change
    coverage: float = float("nan")  # the share of real waits inside clinicall's range (ranges, not points)
    ranged: int = 0  # predictions whose range is not a point


def evaluate(scenario: Scenario, *, seed: int, train_days: int, days: int,
             weights: Mapping[str, float] = DEFAULT_WEIGHTS,
             starvation_minutes: float = DEFAULT_STARVATION_MINUTES,
             on_day: Callable[[], None] | None = None, every_change: bool = False,
             estimator_options: Mapping[str, Any] | None = None) -> ScenarioResult:
    """Warm the estimator on `train_days` days, then score `days` further days of `scenario`."""
    estimator = clinic_estimator(ZONE, weights, starvation_minutes, **(estimator_options or {}))
    feed = EstimatorFeed(estimator)
    scorer = Scorer(estimator, weights, starvation_minutes, every_change=every_change)
    for day_index in range(train_days + days):
        scorer.scoring = day_index >= train_days
        ClinicDay(scenario, seed, day_index, ZONE, weights, starvation_minutes).run([scorer, feed])
        scorer.end_of_day()
        if on_day is not None:
            on_day()
    cpu = sorted(scorer.estimate_cpu_ms) or [0.0]
    timing = (cpu[len(cpu) // 2], cpu[int(len(cpu) * 0.95)], cpu[-1])
    changes = None
    if every_change:
        changes = ScenarioResult(scenario.name, scenario.tuned, seed, train_days, days,
                                 len(scorer.change_errors["clinicall"]), *_scores(scorer.change_errors),
                                 coverage=_share(scorer.change_covered), ranged=_ranged(scorer.change_covered))
    return ScenarioResult(scenario.name, scenario.tuned, seed, train_days, days, len(scorer.errors["clinicall"]),
                          *_scores(scorer.errors), timing, scorer.largest_queue, changes, _share(scorer.covered),
                          _ranged(scorer.covered))


def _share(flags: list[bool | None]) -> float:
    """The share of ranges that held the real wait (points left out)."""
    ranged = [flag for flag in flags if flag is not None]
    return sum(ranged) / len(ranged) if ranged else float("nan")


def _ranged(flags: list[bool | None]) -> int:
    return sum(1 for flag in flags if flag is not None)


def _scores(errors: Mapping[str, list[float]]) -> tuple[dict[str, float], dict[str, float]]:
    mae = {name: _mean(abs(e) for e in errs) for name, errs in errors.items()}
    mse = {name: _mean(e * e for e in errs) for name, errs in errors.items()}
    return mae, mse


def _mean(values: Iterable[float]) -> float:
    total, count = 0.0, 0
    for value in values:
        total += value
        count += 1
    return total / count if count else float("nan")


def format_table(results: list[ScenarioResult]) -> str:
    """MAE (minutes) and MSE (minutes squared) per scenario and overall (pooled over all predictions)."""
    header = f"{'scenario':<16} {'set':<9} {'n':>6}  " + "  ".join(
        f"{name + ' MAE':>13} {name + ' MSE':>13}" for name in PREDICTORS) + f"  {'MSE/best':>8} {'range':>6} {'points':>6}"
    lines = [header, "-" * len(header)]

    def row(label: str, kind: str, n: int, mae: Mapping[str, float], mse: Mapping[str, float],
            coverage: float, ranged: int) -> str:
        best = min(mse[name] for name in PREDICTORS if name != "clinicall")
        return f"{label:<16} {kind:<9} {n:>6}  " + "  ".join(
            f"{mae[name]:>13.2f} {mse[name]:>13.1f}" for name in PREDICTORS) + \
            f"  {100 * mse['clinicall'] / best:>7.1f}% {100 * coverage:>5.1f}% {100 * (n - ranged) / max(n, 1):>5.0f}%"

    for result in results:
        lines.append(row(result.scenario, "tuned" if result.tuned else "held-out", result.predictions,
                         result.mae, result.mse, result.coverage, result.ranged))
    for label, chosen in (("ALL held-out", [r for r in results if not r.tuned]),
                          ("ALL tuned", [r for r in results if r.tuned]), ("ALL", results)):
        n = sum(r.predictions for r in chosen)
        if not n or len(chosen) == len(results) and label != "ALL":
            continue
        mae = {p: sum(r.mae[p] * r.predictions for r in chosen) / n for p in PREDICTORS}
        mse = {p: sum(r.mse[p] * r.predictions for r in chosen) / n for p in PREDICTORS}
        ranged = sum(r.ranged for r in chosen)
        coverage = sum(r.coverage * r.ranged for r in chosen if r.ranged) / max(ranged, 1)
        lines.append(row(label, "", n, mae, mse, coverage, ranged))
    return "\n".join(lines)
