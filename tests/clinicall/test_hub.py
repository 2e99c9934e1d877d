"""The app's websocket hub (clinicall/hub.py) with real websockets: frames encoded once arrive intact,
whatever their size; an agent that falls behind loses nothing silently (its backlog becomes one
{"type": "resync"} frame), while another agent gets every event."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.hub import Frame, encode
from clinicall.keys import BUS_KEY, DB_KEY, HUB_KEY
from clinicall.settings import Settings
from telephony.events import CALL_UPDATED
from telephony.ws import AGENT_FEED_KEY


async def texts(ws: aiohttp.ClientWebSocketResponse, until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    frames = []
    while True:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        frames.append(json.loads(message.data))
        if until(frames[-1]):
            return frames


def test_frames_are_websocket_text_frames_of_any_length() -> None:
    for size in (0, 125, 126, 65535, 65536):
        frame = Frame("x" * size)
        header = frame.wire[: len(frame.wire) - size]
        assert header[0] == 0x81 and frame.wire[len(header):] == b"x" * size
        assert len(header) == (2 if size < 126 else 4 if size < 65536 else 10)


async def test_an_agent_behind_gets_a_resync_and_the_others_every_event(
        aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings(sqlite_url)))
    app = client.app
    db = app[DB_KEY]
    headers = {}
    for name in ("agent", "agent2"):
        user = await auth_service.create_user(db, name, "a-long-password-1", ["agent"], name.title(), None)
        headers[name] = {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 't')}"}
    slow = await client.ws_connect("/ws/agent", headers=headers["agent"])
    fast = await client.ws_connect("/ws/agent", headers=headers["agent2"])
    assert (await slow.receive_json(timeout=10))["type"] == "hello"
    assert (await fast.receive_json(timeout=10))["type"] == "hello"
    hub, feed = app[HUB_KEY], app[AGENT_FEED_KEY]
    fast_user = await fast_id(app)
    behind = next(c for c in feed.clients() if c.key[0] != fast_user)
    hub.queue_limit, behind.transport = 3, None  # this one cannot be written to directly: every frame queues

    bus = app[BUS_KEY]
    ids = {c.key[0] for c in feed.clients()}
    for n in range(20):  # one burst, for both agents
        for user_id in ids:
            await bus.publish(CALL_UPDATED, {"agent_id": user_id, "call_id": n, "state": "ringing"})
    await bus.drain()

    got = await texts(fast, lambda f: f.get("data", {}).get("call_id") == 19)
    assert [f["data"]["call_id"] for f in got if f["type"] == CALL_UPDATED] == list(range(20))
    frames = await texts(slow, lambda f: f["type"] == "resync")
    assert len([f for f in frames if f["type"] == CALL_UPDATED]) <= 3  # the backlog went, the resync says so
    assert behind.dropped > 0
    hub.send(behind, encode({"type": "pong", "data": {}}))  # and it keeps receiving afterwards
    after = await texts(slow, lambda f: f["type"] == "pong")
    assert len([f for f in frames + after if f["type"] == CALL_UPDATED]) <= 3
    await slow.close()
    await fast.close()


async def fast_id(app: Any) -> int:
    user = await auth_service.user_by_name(app[DB_KEY], "agent2")
    assert user is not None
    return user.id


async def test_background_rounds_wait_for_a_call_on_its_way_to_the_screens() -> None:
    import asyncio

    from clinicall.hotpath import HotPath

    hot = HotPath(settle_seconds=0.05)
    order: list[str] = []

    async def background_round() -> None:
        await hot.clear(most_seconds=60)
        order.append("round")

    with hot.call():
        waiting = asyncio.create_task(background_round())
        for _ in range(5):
            await asyncio.sleep(0)
        order.append("frames written")
        hot.wrote()
    await waiting
    assert order == ["frames written", "round"] and hot.waited == 1
    with hot.call():  # a stream of calls never starves a round
        await hot.clear(most_seconds=0.01)
