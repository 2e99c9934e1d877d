import asyncio
import logging
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.bus import Backoff, Event, InProcessBus, RedisBus, matches
from clinicall.keys import BUS_KEY
from clinicall.settings import Settings
from tests.conftest import health_details
from tests.servers import start_redis


def test_patterns() -> None:
    assert matches("*", "ticket.called")
    assert matches("ticket.*", "ticket.called")
    assert not matches("ticket.*", "tickets.called")
    assert matches("call.updated", "call.updated")
    assert not matches("call.updated", "call.updated.x")


async def collect(bus: InProcessBus | RedisBus, pattern: str) -> list[Event]:
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    bus.subscribe(pattern, handler)
    return seen


async def wait_for(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_in_process_delivers_in_order_and_survives_a_bad_handler() -> None:
    bus = InProcessBus()
    await bus.start()

    async def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    bus.subscribe("ticket.*", broken)
    seen = await collect(bus, "ticket.*")
    for n in range(5):
        await bus.publish("ticket.called", {"n": n})
    await bus.publish("call.updated", {})
    await bus.drain()
    assert [e.data["n"] for e in seen] == [0, 1, 2, 3, 4]
    await bus.close()


async def test_two_instances_share_events_over_real_redis(redis_url: str) -> None:
    a, b = RedisBus(redis_url, "test:two"), RedisBus(redis_url, "test:two")
    await a.start()
    await b.start()
    await asyncio.wait_for(asyncio.gather(a.subscribed.wait(), b.subscribed.wait()), 30)
    seen_a, seen_b = await collect(a, "*"), await collect(b, "*")
    await a.publish("ticket.called", {"number": "A001"})
    await b.publish("call.updated", {"id": 7})
    await wait_for(lambda: len(seen_a) == 2 and len(seen_b) == 2)
    assert sorted(e.type for e in seen_a) == sorted(e.type for e in seen_b) == ["call.updated", "ticket.called"]
    await a.close()
    await b.close()


async def test_two_app_instances_on_one_redis(aiohttp_client: Callable[..., object],
                                              make_settings: Callable[..., Settings], sqlite_url: str,
                                              redis_url: str) -> None:
    settings = make_settings(sqlite_url, bus={"redis_url": redis_url, "channel": "test:apps"})
    one: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    two: TestClient = await aiohttp_client(create_app(settings))  # type: ignore[operator]
    bus_one, bus_two = one.app[BUS_KEY], two.app[BUS_KEY]
    assert isinstance(bus_one, RedisBus) and isinstance(bus_two, RedisBus)
    await asyncio.wait_for(asyncio.gather(bus_one.subscribed.wait(), bus_two.subscribed.wait()), 30)
    seen = await collect(bus_two, "queue.changed")
    await bus_one.publish("queue.changed", {"service_id": 1})
    await wait_for(lambda: len(seen) == 1)
    health = await health_details(two)
    assert health["checks"]["bus"] == {"ok": True, "kind": "redis", "pending": 0, "dropped": 0, "error": None}


async def test_lost_redis_is_retried_and_reported() -> None:
    server = start_redis(own=True)
    try:
        a, b = RedisBus(server.url, "test:lost"), RedisBus(server.url, "test:lost")
        await a.start()
        await b.start()
        await asyncio.wait_for(asyncio.gather(a.subscribed.wait(), b.subscribed.wait()), 30)
        seen = await collect(b, "*")
        server.stop()
        await wait_for(lambda: not a.health()["ok"])
        assert "error" in a.health() and a.health()["error"]
        await a.publish("ticket.called", {"while": "down"})  # kept, not lost, not raised
        server.restart()
        await asyncio.wait_for(asyncio.gather(a.subscribed.wait(), b.subscribed.wait()), 15)
        await wait_for(lambda: any(e.data.get("while") == "down" for e in seen), 15)
        assert a.health()["ok"] is True
        await a.close()
        await b.close()
    finally:
        server.cleanup()


def test_backoff_doubles_up_to_its_ceiling() -> None:
    backoff = Backoff(first=0.2, most=1.0)
    assert [backoff.next() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.2


async def test_health_follows_the_events_through_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    """The issue's case: a write fails while Redis is away; once Redis is back and events flow in
    both directions, health is ok again on both instances, and the outage logged a bounded number of lines."""
    caplog.set_level(logging.WARNING, logger="clinicall.bus")
    server = start_redis(own=True)
    try:
        a, b = RedisBus(server.url, "test:outage", backoff_max=1.0), RedisBus(server.url, "test:outage", backoff_max=1.0)
        await a.start()
        await b.start()
        await asyncio.wait_for(asyncio.gather(a.subscribed.wait(), b.subscribed.wait()), 30)
        seen_by_b = await collect(b, "*")
        seen_by_a = await collect(a, "*")
        server.stop()
        await wait_for(lambda: not a.health()["ok"] and not b.health()["ok"], 15)
        await b.publish("ticket.called", {"n": "during"})  # a failed write
        await asyncio.sleep(3)  # several retries while Redis is away
        server.restart()
        await wait_for(lambda: any(e.data.get("n") == "during" for e in seen_by_a), 20)
        await wait_for(lambda: a.health()["ok"] and b.health()["ok"], 10)
        await a.publish("ticket.called", {"n": "after"})
        await wait_for(lambda: any(e.data.get("n") == "after" for e in seen_by_b), 10)
        assert b.health() == {"ok": True, "kind": "redis", "pending": 0, "dropped": 0, "error": None}
        await a.close()
        await b.close()
    finally:
        server.cleanup()
    lines = [r for r in caplog.records if r.name == "clinicall.bus"]
    # per instance: lost once, back once (a reconnect that fails at once may add a pair); never one per retry
    assert 2 <= len(lines) <= 8, [r.getMessage() for r in lines]
    assert not any("did not stop" in r.getMessage() for r in lines)


async def test_health_recovers_with_nothing_to_send() -> None:
    server = start_redis(own=True)
    try:
        bus = RedisBus(server.url, "test:idle", backoff_max=1.0)
        await bus.start()
        await asyncio.wait_for(bus.subscribed.wait(), 5)
        server.stop()
        await bus.publish("x.y", {})
        await wait_for(lambda: not bus.health()["ok"], 15)
        server.restart()
        await wait_for(lambda: bus.health()["ok"], 15)
        await bus.close()
    finally:
        server.cleanup()
