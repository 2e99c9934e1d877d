"""Two instances on one PostgreSQL and one Redis: what one instance serves, the other's wait
estimator learns (through the bus events' `served` field), and both show the same waits."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import BUS_KEY, DB_KEY
from queue_display import state as qstate
from queue_display import tickets
from queue_display.estimates import make_estimator
from queue_display.runtime import RUNTIME_KEY
from tests.conftest import Staff
from tests.queue_display.conftest import build_clinic


async def test_other_instance_learns_service_times(pg_url: str, redis_url: str, make_settings: Any,
                                                   aiohttp_client: Any) -> None:
    settings = make_settings(pg_url, bus={"redis_url": redis_url, "channel": f"test-{uuid.uuid4().hex}"})
    first: TestClient = await aiohttp_client(create_app(settings))
    second: TestClient = await aiohttp_client(create_app(settings))
    for client in (first, second):
        await asyncio.wait_for(client.app[BUS_KEY].subscribed.wait(), 10)  # type: ignore[index,union-attr]
    db = first.app[DB_KEY]  # type: ignore[index]
    tokens, ids = {}, {}
    for name, roles in (("admin", ["admin"]), ("reception", ["reception"]), ("doctor", ["doctor"])):
        user = await auth_service.create_user(db, name, "correct-horse-battery", roles)
        ids[name], tokens[name] = user.id, await auth_service.create_api_token(db, user.id, "t")
    clinic = await build_clinic(first, Staff(tokens, ids))
    for _ in range(4):
        await clinic.issue("B")
    runtime_b = second.app[RUNTIME_KEY]  # type: ignore[index]
    untaught = make_estimator(settings.clinic.zone(), settings.queue.priority_weights,
                              float(settings.queue.anti_starvation_minutes))

    # instance one serves three lab tickets of 40 s each (far below the 10-minute prior): each call-next
    # finishes the previous ticket, and its ticket.done carries the service time to every instance
    runtime_a = first.app[RUNTIME_KEY]  # type: ignore[index]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    for index in range(4):
        outcome = await tickets.call_next(db, settings, clinic.rooms["lab1"], now=start + dt.timedelta(seconds=40 * index))
        assert outcome is not None
        await runtime_a.apply(outcome)
    for _ in range(3):
        await clinic.issue("B")
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        state = await qstate.load_state(second.app[DB_KEY], settings)  # type: ignore[index]
        learned = await runtime_b.on_worker(runtime_b.estimator.estimate, state.now, state.items(),
                                            state.room_states())
        prior = untaught.estimate(state.now, state.items(), state.room_states())
        last = state.waiting[clinic.services["B"]][-1].id
        if learned[last] < prior[last] * 0.8 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert learned[last] < prior[last] * 0.8, (learned, prior)
