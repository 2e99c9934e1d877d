"""The demo clinic loads services, rooms and past days; the app warms its estimator from them at
start-up; statistics report waits, service times and the no-show rate per room, service and day."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.db import Database
from queue_display import demo
from queue_display.runtime import RUNTIME_KEY
from tests.conftest import db_url_on_both_for

db_url = db_url_on_both_for()


async def test_demo_history_warms_estimator_and_feeds_stats(db_url: str, make_settings: Any, aiohttp_client: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(db_url)
    db = Database(db_url)
    await demo.load(db, settings)
    await demo.load(db, settings)  # a second load changes nothing
    supervisor = await auth_service.create_user(db, "sup", "correct-horse-battery", ["supervisor"])
    doctor = await auth_service.create_user(db, "doc", "correct-horse-battery", ["doctor"])
    headers = {"Authorization": f"Bearer {await auth_service.create_api_token(db, supervisor.id, 't')}"}
    doctor_headers = {"Authorization": f"Bearer {await auth_service.create_api_token(db, doctor.id, 't')}"}
    await db.dispose()

    caplog.set_level(logging.INFO, logger="queue_display")
    client: TestClient = await aiohttp_client(create_app(settings))
    runtime = client.app[RUNTIME_KEY]  # type: ignore[index]
    assert runtime.warmed
    assert any("warm" in r.getMessage() and "%" in r.getMessage() for r in caplog.records)

    services = (await (await client.get("/api/services", headers=headers)).json())["services"]
    rooms = (await (await client.get("/api/rooms", headers=headers)).json())["rooms"]
    assert [s["prefix"] for s in services] == ["A", "B", "C"]
    assert len(rooms) == 4 and all(r["doctor_name"] for r in rooms)
    assert rooms[0]["name"] == "Phòng khám số 1"

    today = dt.datetime.now(dt.UTC).astimezone(settings.clinic.zone()).date()
    query = f"from={(today - dt.timedelta(days=20)).isoformat()}&to={today.isoformat()}"
    response = await client.get(f"/api/stats/queue?{query}", headers=headers)
    stats = await response.json()
    assert response.status == 200, stats
    assert stats["totals"]["served"] > 500
    assert 0 < stats["totals"]["noshow_rate"] < 0.15
    by_service = {row["service_prefix"]: row for row in stats["by_service"]}
    assert by_service["C"]["mean_service_seconds"] > by_service["B"]["mean_service_seconds"]
    assert len(stats["by_room"]) == 4 and stats["by_room_day"] and stats["by_service_day"]
    assert (await client.get(f"/api/stats/queue?{query}", headers=doctor_headers)).status == 403
    assert (await client.get("/api/stats/queue?from=yesterday", headers=headers)).status == 422
    assert (await client.get("/api/stats/queue?from=2026-02-01&to=2026-01-01", headers=headers)).status == 422

    # estimates learned from this clinic: a lab ticket (4 min service) waits less than an ultrasound one
    for prefix in ("B", "B", "C", "C"):
        service_id = next(s["id"] for s in services if s["prefix"] == prefix)
        assert (await client.post("/api/kiosk/tickets", json={"service_id": service_id})).status == 201
    queue = await (await client.get("/api/queue", headers=doctor_headers)).json()
    waits = {s["prefix"]: [t["estimated_wait_seconds"] for t in s["waiting"]] for s in queue["services"]}
    assert all(w is not None for w in waits["B"] + waits["C"])
    assert waits["B"][1] < waits["C"][1]
