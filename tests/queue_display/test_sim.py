"""The clinic-day simulator and the evaluation harness (estimator vs rolling average, QL, LES)."""

from __future__ import annotations

import statistics

from queue_display.sim.cli import run_comparison
from queue_display.sim.clinic import ClinicDay
from queue_display.sim.harness import DEFAULT_STARVATION_MINUTES, DEFAULT_WEIGHTS, ZONE, evaluate
from queue_display.sim.scenarios import LAB, scenario, scenarios


def day(name: str, seed: int, index: int = 0) -> ClinicDay:
    return ClinicDay(scenario(name), seed, index, ZONE, DEFAULT_WEIGHTS, DEFAULT_STARVATION_MINUTES)


def test_days_are_reproducible_and_realistic() -> None:
    first = day("standard", 11).run()
    again = day("standard", 11).run()
    other = day("standard", 12).run()
    signature = [(e.service_id, e.priority, round(e.enqueued, 3), e.called and round(e.called, 3), e.room_id)
                 for e in first]
    assert signature == [(e.service_id, e.priority, round(e.enqueued, 3), e.called and round(e.called, 3),
                          e.room_id) for e in again]
    assert signature != [(e.service_id, e.priority, round(e.enqueued, 3), e.called and round(e.called, 3),
                          e.room_id) for e in other]

    clinic = day("standard", 11)
    walk_ins = [e for e in first if e.kind == "walk_in"]
    hours = [clinic.hour_of(e.enqueued) for e in walk_ins]
    peak = sum(1 for h in hours if 8.0 <= h < 10.0) / 2.0
    lunch = sum(1 for h in hours if 11.5 <= h < 13.0) / 1.5
    assert peak > 2.5 * lunch  # morning peak, lunch dip
    assert any(e.no_show for e in walk_ins)
    back_from_hold = [e for e in walk_ins if e.resumed_at is not None]  # stepped out, came back to their place
    assert back_from_hold and all(e.called is None or e.called >= e.resumed_at for e in back_from_hold)
    transfers = [e for e in first if e.kind == "transfer"]
    returns = [e for e in first if e.kind == "return"]
    assert transfers and all(e.service_id == LAB or e.back_to_room for e in transfers)
    assert returns and all(e.returning and e.preferred_room_id for e in returns)
    by_ticket = {e.ticket_id: e for e in walk_ins}
    assert all(by_ticket[e.ticket_id].room_id == e.preferred_room_id or e.called is None
               or e.called - e.enqueued > DEFAULT_STARVATION_MINUTES * 60 for e in returns)
    waits = {p: [e.called - e.enqueued for e in walk_ins if e.called is not None and e.priority == p]
             for p in ("elderly", "normal")}
    assert statistics.mean(waits["elderly"]) < statistics.mean(waits["normal"])
    assert max(waits["normal"]) <= DEFAULT_STARVATION_MINUTES * 60 * 4  # anti-starvation bounds the wait


def test_scenario_families_include_held_out_ones() -> None:
    table = scenarios()
    assert {name for name, s in table.items() if s.tuned} == {"standard", "small"}
    assert {"large", "heavy", "priorities", "small_afternoon"} <= {n for n, s in table.items() if not s.tuned}


def test_estimator_beats_every_baseline_on_a_seeded_small_clinic() -> None:
    result = evaluate(scenario("small"), seed=3, train_days=4, days=3, every_change=True)
    assert result.predictions > 200
    assert result.changes is not None and result.changes.predictions > result.predictions
    for scored in (result, result.changes):  # at issue, and every waiting ticket at every queue change
        for baseline in ("rolling", "QL", "LES"):
            assert scored.mae["clinicall"] < scored.mae[baseline], (baseline, scored.mae)
            assert scored.mse["clinicall"] < scored.mse[baseline], (baseline, scored.mse)


def test_comparison_table_names_the_sets() -> None:
    text = run_comparison(["small"], seed=5, train_days=1, days=1, progress=False)
    assert "clinicall MAE" in text and "QL MSE" in text and "LES MAE" in text
    assert "small" in text and "tuned" in text
