import asyncio
from collections.abc import Callable

from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.bus import Event, InProcessBus, RedisBus, matches
from clinicall.keys import BUS_KEY
from clinicall.settings import Settings
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
    await asyncio.wait_for(asyncio.gather(a.subscribed.wait(), b.subscribed.wait()), 5)
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
    await asyncio.wait_for(asyncio.gather(bus_one.subscribed.wait(), bus_two.subscribed.wait()), 5)
    seen = await collect(bus_two, "queue.changed")
    await bus_one.publish("queue.changed", {"service_id": 1})
    await wait_for(lambda: len(seen) == 1)
    health = await (await two.get("/healthz")).json()
    assert health["checks"]["bus"] == {"ok": True, "kind": "redis", "pending": 0, "dropped": 0, "error": None}


async def test_lost_redis_is_retried_and_reported() -> None:
    server = start_redis(own=True)
    try:
        a, b = RedisBus(server.url, "test:lost"), RedisBus(server.url, "test:lost")
        await a.start()
        await b.start()
        await asyncio.wait_for(asyncio.gather(a.subscribed.wait(), b.subscribed.wait()), 5)
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
