"""ticket.called / ticket.recalled -> announcement.ready with a playable clip, in call order per room."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from audio.keys import ANNOUNCER_KEY
from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.bus import Event
from clinicall.keys import BUS_KEY, DB_KEY
from clinicall.settings import Settings


def ticket(ticket_id: int, number: str, room_id: int | None, room_number: int = 1) -> dict[str, Any]:
    room = None if room_id is None else {"id": room_id, "kind": "consult", "number": room_number,
                                         "name": f"Phòng khám {room_number}", "names": {}}
    return {"ticket": {"id": ticket_id, "number": number, "service_id": 1, "service_name": "Khám",
                       "service_prefix": number[0], "status": "called", "priority": "normal", "room": room,
                       "masked_name": None, "estimated_wait_seconds": None, "position": None},
            "at": "2026-11-22T07:00:00+00:00"}


async def test_calls_become_announcements_in_order_per_room(
        aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sqlite_url, audio={"languages": ["vi"], "chime": False})
    client: TestClient = await aiohttp_client(create_app(settings))
    app = client.app
    ready: list[Event] = []
    done = asyncio.Event()

    async def collect(event: Event) -> None:
        ready.append(event)
        if len(ready) == 5:
            done.set()

    app[BUS_KEY].subscribe("announcement.ready", collect)
    bus = app[BUS_KEY]
    await bus.publish("ticket.called", ticket(1, "A001", 1))
    await bus.publish("ticket.called", ticket(2, "A002", 2, 2))
    await bus.publish("ticket.called", ticket(3, "B003", 1))
    await bus.publish("ticket.issued", ticket(9, "A009", None))
    await bus.publish("ticket.called", ticket(8, "A008", None))  # no room: nothing to announce
    await bus.publish("ticket.recalled", ticket(1, "A001", 1))
    await bus.publish("ticket.called", ticket(4, "A004", 2, 2))
    await asyncio.wait_for(done.wait(), 60)
    await app[ANNOUNCER_KEY].drain()

    per_room: dict[int, list[tuple[str, str]]] = {}
    for event in ready:
        per_room.setdefault(event.data["room_id"], []).append((event.data["number"], event.data["reason"]))
    assert per_room == {1: [("A001", "called"), ("B003", "called"), ("A001", "recalled")],
                        2: [("A002", "called"), ("A004", "called")]}
    first = next(e.data for e in ready if e.data["room_id"] == 1)
    assert set(first) >= {"ticket_id", "number", "room_id", "audio_url", "texts", "languages", "repeat", "at"}
    assert first["languages"] == ["vi"] and first["repeat"] == 1
    assert first["texts"]["vi"].startswith("Mời số a một vào phòng khám số")

    # the recall of A001 in room 1 is the same clip as the call
    room1 = [e.data for e in ready if e.data["room_id"] == 1]
    assert room1[0]["audio_url"] == room1[2]["audio_url"]

    # a display token may fetch clips (token in the query is allowed on /audio/), strangers may not
    _id, token = await auth_service.create_display_token(app[DB_KEY], "tv-hall")
    response = await client.get(first["audio_url"], params={"token": token})
    assert response.status == 200 and response.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(await response.read()), "rb") as clip:
        assert clip.getframerate() == 22050
        assert abs(clip.getnframes() / 22050 - first["duration_seconds"]) < 0.01
    assert (await client.get(first["audio_url"])).status == 401


async def test_clip_route_refuses_strange_names(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                make_settings: Callable[..., Settings]) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings(sqlite_url)))
    _id, token = await auth_service.create_display_token(client.app[DB_KEY], "tv")
    for name in ("..%2F..%2Fsettings", "%2e%2e", "0" * 64, "zz", "0" * 65):
        response = await client.get(f"/audio/clips/{name}.wav", params={"token": token})
        assert response.status == 404, name
        assert response.headers["Content-Type"].startswith("application/problem+json")
    response = await client.get("/audio/clips/../../README.md", params={"token": token})
    assert response.status == 404


async def test_events_from_another_instance_are_left_to_it(
        aiohttp_client: Callable[..., Any], sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    client: TestClient = await aiohttp_client(create_app(make_settings(sqlite_url)))
    announcer = client.app[ANNOUNCER_KEY]
    await announcer.on_ticket(Event("ticket.called", ticket(1, "A001", 1), origin="other-instance"))
    assert announcer.queues == {}
    await announcer.on_ticket(Event("ticket.called", ticket(1, "A001", 1), origin=client.app[BUS_KEY].instance_id))
    assert list(announcer.queues) == [1]
    await announcer.drain()
    assert announcer.published == 1


async def test_warm_reads_services_and_rooms_from_the_database(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audio.engines.espeak import EspeakEngine
    from audio.tts import Renderer, TtsCache
    from audio.wording import announcement_segments
    from clinicall.cli import main
    from clinicall.db import Database
    from queue_display import service as queue_service

    db = Database(sqlite_url)
    created = await queue_service.create_service(db, queue_service.ServiceIn(prefix="K", names={"vi": "Khám"}))
    await queue_service.create_room(db, queue_service.RoomIn(kind="counter", number=2, service_ids=[created.id]))
    await db.dispose()
    monkeypatch.setenv("CLINICALL_DATABASE__URL", sqlite_url)
    monkeypatch.setenv("CLINICALL_AUDIO__CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CLINICALL_AUDIO__ENGINES", '["espeak"]')
    assert await asyncio.to_thread(main, ["audio", "warm", "--numbers", "3", "--languages", "vi"]) == 0
    renderer = Renderer([EspeakEngine({"vi": "vi"}, binary="/nonexistent")], TtsCache(tmp_path / "cache"), 1)
    for segment in announcement_segments("K003", {"id": 1, "kind": "counter", "number": 2}, "vi"):
        assert renderer.cached(segment, "vi") is not None, segment
