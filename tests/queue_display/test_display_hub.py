"""The websocket hub /ws/display: who may connect, what each screen gets, and that no payload carries a
patient's full name. Real app, real websockets (aiohttp client), real Redis for the two-instance test."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.auth.token_cache import forget_tokens
from clinicall.hub import encode
from clinicall.keys import BUS_KEY, DB_KEY, HUB_KEY, SETTINGS_KEY
from clinicall.settings import Settings
from queue_display.display import DISPLAY_HUB_KEY, ScreenFilter, mask_initials, scrub
from tests.conftest import PASSWORD

FULL_NAME = "Nguyễn Văn An"


def test_scrub_drops_identity_and_masks_names() -> None:
    payload = {"ticket": {"id": 1, "number": "A001", "masked_name": FULL_NAME, "patient_id": 7,
                          "full_name": FULL_NAME, "token": "secret", "room": {"id": 1, "name": "Phòng khám số 1"}},
               "waiting": [{"id": 2, "masked_name": "Trần T. B.", "patient": {"full_name": FULL_NAME}}]}
    hidden = scrub(payload, keep_masked=False)
    assert hidden["ticket"] == {"id": 1, "number": "A001", "masked_name": None,
                                "room": {"id": 1, "name": "Phòng khám số 1"}}
    assert hidden["waiting"] == [{"id": 2, "masked_name": None}]
    shown = scrub(payload, keep_masked=True)
    assert shown["ticket"]["masked_name"] == "Nguyễn V. A."  # a full name that slipped through is masked here
    assert shown["waiting"][0]["masked_name"] == "Trần T. B."
    assert FULL_NAME not in json.dumps(shown, ensure_ascii=False)
    assert mask_initials("An") == "A."


def test_filter_matching() -> None:
    rooms = ScreenFilter(room_ids=frozenset({1}))
    served = {1: frozenset({10}), 2: frozenset({20})}
    assert rooms.matches(1, 20, served)           # called to my room
    assert not rooms.matches(2, 10, served)       # called to another room
    assert rooms.matches(None, 10, served)        # my room's waiting line changed
    assert not rooms.matches(None, 20, served)
    services = ScreenFilter(service_ids=frozenset({20}))
    assert services.matches(2, None, served) and not services.matches(1, None, served)  # announcements by room
    assert ScreenFilter().matches(5, 5, {})


@pytest.fixture
async def hub_client(aiohttp_client: Callable[..., Any], sqlite_url: str,
                     make_settings: Callable[..., Settings]) -> TestClient:
    return await aiohttp_client(create_app(make_settings(sqlite_url)))  # type: ignore[no-any-return]


async def display_token(client: TestClient, **limits: list[int]) -> tuple[int, str]:
    return await auth_service.create_display_token(client.app[DB_KEY], "tv", **limits)


async def refused(client: TestClient, url: str, **kwargs: Any) -> int:
    with pytest.raises(WSServerHandshakeError) as caught:
        await client.ws_connect(url, **kwargs)
    return caught.value.status


async def test_handshakes_refused(hub_client: TestClient) -> None:
    token_id, token = await display_token(hub_client, room_ids=[1, 2])
    own = f"http://{hub_client.host}:{hub_client.port}"
    assert await refused(hub_client, "/ws/display") == 401
    assert await refused(hub_client, "/ws/display?token=not-a-token") == 401
    assert await refused(hub_client, f"/ws/display?token={token}", headers={"Origin": "https://evil.example"}) == 403
    assert await refused(hub_client, f"/ws/display?token={token}&rooms=1,x", headers={"Origin": own}) == 400
    assert await refused(hub_client, f"/ws/display?token={token}&rooms=3", headers={"Origin": own}) == 403
    # a logged-in user's browser always sends Origin; a cookie without one is not a page of ours
    user = await auth_service.create_user(hub_client.app[DB_KEY], "doctor", PASSWORD, ["doctor"])
    assert user.id
    assert (await hub_client.post("/api/login", json={"username": "doctor", "password": PASSWORD})).status == 200
    assert await refused(hub_client, "/ws/display") == 403
    assert await refused(hub_client, "/ws/display", headers={"Origin": "https://evil.example"}) == 403
    await auth_service.revoke_display_token(hub_client.app[DB_KEY], token_id)
    await forget_tokens(hub_client.app)  # as DELETE /api/display-tokens/{id} does: the remembered token is gone
    hub_client.session.cookie_jar.clear()
    assert await refused(hub_client, f"/ws/display?token={token}") == 401
    # a display token reads the feed, nothing else
    _, other = await display_token(hub_client)
    response = await hub_client.post("/api/tickets", json={}, headers={"Authorization": f"Bearer {other}"})
    assert response.status in (403, 404)




def runtime_of(app: Any) -> Any:
    """The queue room's runtime: it publishes the ticket events of an operation."""
    from queue_display.runtime import RUNTIME_KEY

    return app[RUNTIME_KEY]


async def make_clinic(app: Any) -> dict[str, int]:
    from queue_display import service

    db = app[DB_KEY]
    a = await service.create_service(db, service.ServiceIn(prefix="A", names={"vi": "Khám tổng quát", "en": "General"}))
    c = await service.create_service(db, service.ServiceIn(prefix="C", names={"vi": "Khám nhi", "en": "Paediatrics"}))
    r1 = await service.create_room(db, service.RoomIn(kind="consult", number=1, service_ids=[a.id]))
    r3 = await service.create_room(db, service.RoomIn(kind="consult", number=3, service_ids=[c.id]))
    return {"A": a.id, "C": c.id, "room1": r1.id, "room3": r3.id}


async def new_patient(app: Any, full_name: str) -> int:
    from crm_bridge.patients import PatientIn, create_patient

    return await create_patient(app[DB_KEY], PatientIn(full_name=full_name), None)


async def issue(app: Any, service_id: int, patient_id: int | None = None) -> dict[str, Any]:
    from queue_display import service

    outcome = await service.issue(app[DB_KEY], app[SETTINGS_KEY], service_id=service_id, source="reception",
                                  patient_id=patient_id)
    return await runtime_of(app).apply(outcome)  # type: ignore[no-any-return]


async def call_next(app: Any, room_id: int) -> dict[str, Any]:
    from queue_display import service

    outcome = await service.call_next(app[DB_KEY], app[SETTINGS_KEY], room_id)
    return await runtime_of(app).apply(outcome)  # type: ignore[no-any-return]


class Recorder:
    """Reads a screen's socket all the time (so protocol pings are answered) and keeps every text frame,
    raw, for the no-full-name check."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.raw: list[str] = []
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.raw.append(message.data)
                frame = json.loads(message.data)
                for event in frame["events"] if frame["type"] == "batch" else [frame]:
                    self.frames.put_nowait(event)
        self.frames.put_nowait({"type": "closed", "data": {}})

    async def next(self, wanted: str, within: float = 30.0, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                frame = await self.frames.get()
                assert frame["type"] != "closed", "the server closed the screen"
                ticket = frame.get("data", {}).get("ticket") or {}
                if frame["type"] == wanted and all(ticket.get(k) == v for k, v in match.items()):
                    return frame

    async def collect(self, *wanted: str, within: float = 30.0) -> dict[str, dict[str, Any]]:
        """The first frame of each wanted type, waiting for all of them (never for a fixed time)."""
        seen: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(within):
            while len(seen) < len(wanted):
                frame = await self.frames.get()
                assert frame["type"] != "closed", "the server closed the screen"
                if frame["type"] in wanted:
                    seen.setdefault(frame["type"], frame["data"])
        return seen

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Frames that arrive within `seconds` (pings excluded)."""
        frames = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    frame = await self.frames.get()
                    assert frame["type"] != "closed", "the server closed the screen"
                    if frame["type"] != "ping":
                        frames.append(frame)
        return frames

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


@pytest.fixture(params=["initials", "none"])
async def masked_client(request: pytest.FixtureRequest, aiohttp_client: Callable[..., Any], sqlite_url: str,
                        make_settings: Callable[..., Settings]) -> TestClient:
    settings = make_settings(sqlite_url, display={"name_mask": request.param, "heartbeat_seconds": 3.0})
    return await aiohttp_client(create_app(settings))  # type: ignore[no-any-return]


async def test_snapshot_then_changes_filtered_and_never_full_names(masked_client: TestClient) -> None:
    app = masked_client.app
    clinic = await make_clinic(app)
    patient = await new_patient(app, FULL_NAME)
    first = await issue(app, clinic["A"], patient)
    _, token = await display_token(masked_client)
    room_screen = Recorder(await masked_client.ws_connect(f"/ws/display?token={token}&rooms={clinic['room1']}"))
    kids_screen = Recorder(await masked_client.ws_connect(f"/ws/display?token={token}&services={clinic['C']}"))

    snapshot = (await room_screen.next("snapshot"))["data"]
    assert [r["id"] for r in snapshot["rooms"]] == [clinic["room1"]]
    assert [s["prefix"] for s in snapshot["services"]] == ["A"]
    waiting = snapshot["services"][0]["waiting"]
    assert [t["number"] for t in waiting] == [first["number"]]
    initials = app[SETTINGS_KEY].display.name_mask == "initials"
    assert waiting[0]["masked_name"] == ("Nguyễn V. A." if initials else None)
    assert snapshot["filter"] == {"rooms": [clinic["room1"]], "services": None}
    kids = (await kids_screen.next("snapshot"))["data"]
    assert [s["prefix"] for s in kids["services"]] == ["C"] and kids["services"][0]["waiting"] == []

    called = await call_next(app, clinic["room1"])
    frame = await room_screen.next("ticket.called", id=first["id"])
    shown = frame["data"]["ticket"]
    assert shown["number"] == first["number"] and shown["room"]["id"] == clinic["room1"]
    assert shown["room"]["number"] == 1 and called["id"] == first["id"]
    assert shown["masked_name"] == ("Nguyễn V. A." if initials else None)
    assert not [f for f in await kids_screen.quiet() if f["type"].startswith("ticket.")]  # not its service
    await runtime_of(app).settled()  # the waiting line's estimates follow the call
    assert (await room_screen.next("queue.changed"))["data"]["line"] == []

    child = await issue(app, clinic["C"])
    frames = await kids_screen.collect("ticket.issued", "queue.changed")
    assert frames["ticket.issued"]["ticket"]["number"] == child["number"]
    assert frames["queue.changed"]["service_id"] == clinic["C"]
    assert [t["id"] for t in frames["queue.changed"]["line"]] == [child["id"]]  # new to the line: in full
    assert not [f for f in await room_screen.quiet() if f["type"] in ("ticket.issued", "queue.changed")]
    second = await issue(app, clinic["C"])
    line: list[Any] = []
    while len(line) < 2:  # an estimate refresh for the first ticket alone may come first
        line = (await kids_screen.next("queue.changed"))["data"]["line"]
    assert line[0] == child["id"] or line[0][0] == child["id"]  # sent before: its id (and a new estimate)
    assert line[1]["number"] == second["number"]

    # a screen asking to resynchronise gets a fresh snapshot (after junk nested too deep to parse); heartbeats
    await room_screen.ws.send_str("[" * 1000)
    await room_screen.ws.send_str(json.dumps({"type": "resync"}))
    fresh = (await room_screen.next("snapshot"))["data"]
    assert fresh["rooms"][0]["current"]["number"] == first["number"]
    await room_screen.next("ping", within=8)

    for text in room_screen.raw + kids_screen.raw:
        assert FULL_NAME not in text and "Văn An" not in text and "patient_id" not in text
        assert '"arrival"' not in text and '"served"' not in text  # the estimator's, not the screens'
    await room_screen.close()
    await kids_screen.close()


async def test_call_on_one_instance_reaches_a_screen_on_another(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                                make_settings: Callable[..., Settings],
                                                                redis_url: str) -> None:
    settings = make_settings(sqlite_url, bus={"redis_url": redis_url, "channel": f"display-test-{id(object())}"})
    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))
    for client in (one, two):
        await asyncio.wait_for(client.app[BUS_KEY].subscribed.wait(), 5)
    clinic = await make_clinic(one.app)
    ticket = await issue(one.app, clinic["A"], await new_patient(one.app, FULL_NAME))
    _, token = await display_token(one)
    screen = Recorder(await two.ws_connect(f"/ws/display?token={token}"))
    assert (await screen.next("snapshot"))["data"]["services"][0]["waiting"][0]["id"] == ticket["id"]

    doctor = await auth_service.create_user(one.app[DB_KEY], "doctor", PASSWORD, ["doctor"])
    bearer = {"Authorization": f"Bearer {await auth_service.create_api_token(one.app[DB_KEY], doctor.id, 't')}"}
    response = await one.post(f"/api/rooms/{clinic['room1']}/call-next", headers=bearer)  # through instance one
    assert response.status == 200, await response.text()
    called = (await screen.next("ticket.called", id=ticket["id"]))["data"]["ticket"]  # seen on instance two
    assert called["number"] == ticket["number"] and called["room"]["id"] == clinic["room1"]
    assert all(FULL_NAME not in text for text in screen.raw)
    await screen.close()


async def test_a_screen_that_falls_behind_is_resynchronised_and_others_get_everything(hub_client: TestClient) -> None:
    app = hub_client.app
    await make_clinic(app)
    _, token = await display_token(hub_client)
    hub, display = app[HUB_KEY], app[DISPLAY_HUB_KEY]
    behind = Recorder(await hub_client.ws_connect(f"/ws/display?token={token}&rooms=1"))
    await behind.next("snapshot")
    keeping_up = Recorder(await hub_client.ws_connect(f"/ws/display?token={token}"))
    await keeping_up.next("snapshot")
    slow = next(c for c in display.screens if c.key == ScreenFilter(room_ids=frozenset({1})))
    hub.queue_limit, slow.transport = 4, None  # this one cannot be written to directly: every frame queues
    for n in range(30):  # one burst: the frames are handed over before any sender runs
        for screen in display.screens:
            hub.send(screen, encode({"type": "ticket.started", "data": {"ticket": {"id": 1000 + n}}}))
    got = [f["data"]["ticket"]["id"] for f in await keeping_up.quiet(1.0) if f["type"] == "ticket.started"]
    assert got == [1000 + n for n in range(30)]
    frames = await behind.quiet(1.0)
    assert [f["type"] for f in frames if f["type"] != "ticket.started"] == ["snapshot"]
    assert len([f for f in frames if f["type"] == "ticket.started"]) <= 4
    assert slow.dropped > 0


async def test_one_frame_per_call_next_with_the_call_first(hub_client: TestClient) -> None:
    app = hub_client.app
    display = app[DISPLAY_HUB_KEY]
    display.ride_seconds = 600  # the estimates are gathered until sent, however slow the machine
    clinic = await make_clinic(app)
    first, second, third = [await issue(app, clinic["A"]) for _ in range(3)]
    await call_next(app, clinic["room1"])
    await runtime_of(app).settled()  # the line's new estimates (second, third) are gathered, not sent
    _, token = await display_token(hub_client)
    screen = Recorder(await hub_client.ws_connect(f"/ws/display?token={token}&rooms={clinic['room1']}"))
    await screen.next("snapshot")
    before = len(screen.raw)
    await call_next(app, clinic["room1"])
    # frames without a ticket (the first call's late clip, its estimates' refresh) may come before it
    frame = await first_frame_after(screen, before, with_a_ticket)
    assert frame["type"] == "batch"
    events = [e for e in frame["events"] if e["type"] != "announcement.ready"]  # a burst may carry the clip
    assert events[0]["type"] == "ticket.called"
    assert [(e["type"], e["data"]["ticket"]["id"]) for e in events] == [
        ("ticket.called", second["id"]), ("ticket.done", first["id"])]  # the call's frame carries no estimates
    await runtime_of(app).settled()
    before = len(screen.raw)
    display.send_estimates()  # what RIDE_SECONDS brings: the estimates in a frame of their own
    frame = await first_frame_after(screen, before, lambda f: f["type"] == "queue.changed")
    line = frame["data"]["line"]  # a delta, without the ticket just called
    assert [entry if isinstance(entry, int) else entry[0] for entry in line] == [third["id"]]
    await screen.close()


def with_a_ticket(frame: dict[str, Any]) -> bool:
    return any("ticket" in e.get("data", {}) for e in (frame["events"] if frame["type"] == "batch" else [frame]))


async def first_frame_after(screen: Recorder, before: int, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    count = before + 1
    while True:
        frame = json.loads((await screen_frames(screen, count))[count - 1])
        if wanted(frame):
            return frame  # type: ignore[no-any-return]
        count += 1


async def screen_frames(screen: Recorder, count: int) -> list[str]:
    async with asyncio.timeout(30):
        while len(screen.raw) < count:
            await screen.frames.get()
    return screen.raw


async def test_handshakes_accepted_from_own_and_allowed_origins(aiohttp_client: Callable[..., Any], sqlite_url: str,
                                                                make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sqlite_url, http={"cookie_secure": False, "allowed_origins": ["https://tv.example"]})
    client = await aiohttp_client(create_app(settings))
    _, token = await display_token(client)
    own = f"http://{client.host}:{client.port}"
    for origin in (own, "https://tv.example"):
        screen = Recorder(await client.ws_connect(f"/ws/display?token={token}", headers={"Origin": origin}))
        assert (await screen.next("snapshot"))["data"]["filter"] == {"rooms": None, "services": None}
        await screen.close()
    await auth_service.create_user(client.app[DB_KEY], "reception", PASSWORD, ["reception"])
    assert (await client.post("/api/login", json={"username": "reception", "password": PASSWORD})).status == 200
    screen = Recorder(await client.ws_connect("/ws/display?services=1", headers={"Origin": own}))  # the room page
    assert (await screen.next("snapshot"))["data"]["filter"] == {"rooms": None, "services": [1]}
    await screen.close()


async def test_page_access_and_the_public_kiosk_list(hub_client: TestClient) -> None:
    app = hub_client.app
    clinic = await make_clinic(app)
    await issue(app, clinic["A"], await new_patient(app, FULL_NAME))
    html = {"Accept": "text/html"}
    assert (await hub_client.get("/kiosk", headers=html)).status == 200  # public
    listed = await (await hub_client.get("/kiosk/services")).json()
    assert [(s["prefix"], s["waiting_count"]) for s in listed["services"]] == [("A", 1), ("C", 0)]
    assert all("waiting" not in s for s in listed["services"])  # counts only, never who waits
    for path in ("/tv", "/door?room=1", "/room"):
        response = await hub_client.get(path, headers=html, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"].startswith("/login?next=")
    _, token = await display_token(hub_client)
    assert (await hub_client.get(f"/tv?token={token}", headers=html)).status == 200
    assert (await hub_client.get(f"/room?token={token}", headers=html, allow_redirects=False)).status == 302
    await auth_service.create_user(app[DB_KEY], "agent", PASSWORD, ["agent"])
    assert (await hub_client.post("/api/login", json={"username": "agent", "password": PASSWORD})).status == 200
    assert (await hub_client.get("/room", headers=html)).status == 403  # doctors and reception only
