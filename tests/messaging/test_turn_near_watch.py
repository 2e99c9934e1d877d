"""The turn-near check runs off the bus dispatcher: while the database does not answer it (a PostgreSQL lock
held by another session here), every later event still reaches its subscribers, and once the database
answers the newest line of the service is checked. Then (redteam4, on PostgreSQL) sign-ups racing for one
ticket's first opt-in: the loser of the insert was a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from clinicall.app import create_app
from clinicall.bus import Event
from clinicall.keys import BUS_KEY
from clinicall.settings import Settings
from messaging.keys import MESSAGING_KEY, TURN_NEAR_WATCH_KEY


async def test_a_stuck_turn_near_check_holds_up_no_other_subscriber(
        aiohttp_client: Callable[..., Any], pg_url: str, make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(pg_url, messaging={"turn_near_positions": 2}))
    await aiohttp_client(app)
    bus, watch = app[BUS_KEY], app[TURN_NEAR_WATCH_KEY]
    later = asyncio.Event()

    async def after(event: Event) -> None:
        later.set()

    bus.subscribe("probe.after", after)
    locker = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    held = locker.transaction()
    await held.start()
    await locker.execute("LOCK TABLE turn_near_optins IN ACCESS EXCLUSIVE MODE")
    try:
        near = {"id": 1, "number": "A001", "status": "waiting", "position": 1}
        await bus.publish("queue.changed", {"service_id": 1, "waiting": [near]})
        await bus.publish("probe.after", {})
        async with asyncio.timeout(60):
            await later.wait()
        assert not watch.idle.is_set()  # the check still waits for the lock
    finally:
        await held.rollback()
        await locker.close()
    async with asyncio.timeout(60):
        await watch.settled()

    service = app[MESSAGING_KEY]
    signed = await asyncio.gather(*(service.opt_in(ticket_id=77, phone=f"09120008{i:02d}", patient_id=None, created_by=None,
                                                   current=None) for i in range(4)), return_exceptions=True)
    assert [s["ticket_id"] for s in signed if isinstance(s, dict)] == [77] * 4, signed
