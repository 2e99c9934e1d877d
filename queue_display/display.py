"""The screens: the websocket hub `/ws/display` and the pages `/tv`, `/door`, `/kiosk`, `/room`.

Hub protocol (server -> screen, JSON text frames; see docs/display.md):
  {"type": "snapshot", "data": {...display_snapshot..., "filter": {...}, "name_mask": ..., "heartbeat_seconds": ...}}
  {"type": "ticket.called" | ... | "queue.changed" | "queue.room_state" | "announcement.ready", "id", "at", "data": {...}}
  {"type": "batch", "events": [event, ...]}  (the events the bus handed over together, e.g. one call-next's)
  {"type": "ping", "at": ...}
Screen -> server: {"type": "resync"} asks for a fresh snapshot; anything else is ignored.

Every payload is scrubbed before it leaves: keys that could carry a patient's identity are dropped and
`masked_name` is kept only when settings.display.name_mask == "initials" (and re-masked if it is not masked).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from clinicall.auth.access import display_feed, principal, public, require
from clinicall.auth.live import watch_socket
from clinicall.auth.middleware import check_socket_origin
from clinicall.auth.models import STAFF_ROLES
from clinicall.auth.service import Principal
from clinicall.bus import Event
from clinicall.hub import Client, Frame, Hub, encode
from clinicall.keys import BUS_KEY, DB_KEY, HOT_PATH_KEY, HUB_KEY, SETTINGS_KEY, WEBSOCKETS_KEY
from clinicall.nav import NAV_KEY, NavLink
from clinicall.problem import Problem
from queue_display.lines import Sent, line_delta

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
STATIC_DIR = WEB_DIR / "static"
FOR_THE_ESTIMATOR = frozenset(("served", "arrival", "round_trip", "hold"))  # in ticket events; no screen reads them
FORWARDED_PATTERNS = ("ticket.*", "queue.changed", "queue.room_state", "queue.catalog", "announcement.ready")
CATALOG_CHANGED = "queue.catalog"
SNAPSHOT_CACHE_SECONDS = 2.0
QUEUE_CHANGED = "queue.changed"
TICKET_DONE = "ticket.done"
DONE_TICKET_KEYS = ("id", "number", "service_id", "status", "room")  # what a screen needs of a finished ticket
RIDE_SECONDS = 2.0  # lines of new estimates only are gathered this long, then go in one frame of their own
CALLS = frozenset(("ticket.called", "ticket.recalled"))

# Keys that may carry who the patient is; they never reach a screen, wherever they appear.
IDENTIFYING_KEYS = frozenset({
    "full_name", "patient_name", "patient", "patient_id", "phone", "phones", "phone_e164", "number_e164",
    "date_of_birth", "dob", "address", "note", "notes", "token", "status_token", "status_url", "email",
})


# ---------------------------------------------------------------------------------------------- scrubbing

def mask_initials(name: str) -> str:
    """'Nguyễn Văn An' -> 'Nguyễn V. A.'; an already masked name stays as it is."""
    words = name.split()
    if not words:
        return ""
    if len(words) == 1:
        return words[0][0].upper() + "."
    return " ".join([words[0], *(w[0].upper() + "." for w in words[1:])])


def looks_masked(name: str) -> bool:
    words = name.split()
    rest = words if len(words) == 1 else words[1:]
    return bool(words) and all(len(w) == 2 and w.endswith(".") for w in rest)


def scrub(value: Any, keep_masked: bool) -> Any:
    """A copy of `value` with no identifying key and masked names only when allowed."""
    if isinstance(value, dict):
        clean: dict[str, Any] = {}
        for key, item in value.items():
            if key in IDENTIFYING_KEYS:
                continue
            if key == "masked_name":
                clean[key] = _masked(item) if keep_masked else None
            else:
                clean[key] = scrub(item, keep_masked)
        return clean
    if isinstance(value, list | tuple):
        return [scrub(item, keep_masked) for item in value]
    return value


def _masked(name: Any) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return None
    return name if looks_masked(name) else mask_initials(name)


# ---------------------------------------------------------------------------------------------- filters

@dataclass(frozen=True)
class ScreenFilter:
    """What one screen shows. None means every room (or service)."""

    room_ids: frozenset[int] | None = None
    service_ids: frozenset[int] | None = None

    @property
    def key(self) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
        return (tuple(sorted(self.room_ids)) if self.room_ids is not None else None,
                tuple(sorted(self.service_ids)) if self.service_ids is not None else None)

    def as_json(self) -> dict[str, list[int] | None]:
        rooms, services = self.key
        return {"rooms": list(rooms) if rooms is not None else None,
                "services": list(services) if services is not None else None}

    def matches(self, room_id: int | None, service_id: int | None, room_services: Mapping[int, frozenset[int]]) -> bool:
        """A room filter takes what happens in its rooms (and the waiting lines of the services those rooms
        serve); a service filter takes its services; both together take the union."""
        if self.room_ids is None and self.service_ids is None:
            return True
        if room_id is not None and self.room_ids is not None and room_id in self.room_ids:
            return True
        if service_id is not None and self.service_ids is not None and service_id in self.service_ids:
            return True
        if room_id is None and service_id is not None and self.room_ids is not None:
            return any(service_id in room_services.get(r, frozenset()) for r in self.room_ids)
        if room_id is not None and service_id is None and self.service_ids is not None:
            return bool(room_services.get(room_id, frozenset()) & self.service_ids)
        return False


def parse_ids(raw: str | None, name: str) -> frozenset[int] | None:
    if raw is None or not raw.strip():
        return None
    try:
        ids = frozenset(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise Problem(400, f"Invalid {name}", f"Give {name} as comma-separated numbers, e.g. ?{name}=1,3.") from None
    if any(i <= 0 for i in ids) or len(ids) > 200:
        raise Problem(400, f"Invalid {name}", f"Give {name} as up to 200 positive numbers, e.g. ?{name}=1,3.")
    return ids or None


def _intersect(asked: frozenset[int] | None, allowed: tuple[int, ...], name: str) -> frozenset[int] | None:
    if not allowed:
        return asked
    if asked is None:
        return frozenset(allowed)
    kept = asked & frozenset(allowed)
    if not kept:
        raise Problem(403, "Not on this display token",
                      f"This display token may show {name} {', '.join(map(str, sorted(allowed)))} only; "
                      "ask an admin for a token that covers the others.", code="not_on_display_token")
    return kept


def check_token_scope(who: Principal, rooms: Collection[int] | None, services: Collection[int] | None) -> None:
    """A display token limited to some rooms (or services) shows those only: asking for the other kind would add
    lines it does not cover (a door token for room 1 with ?services=2 saw service 2's line)."""
    if who.kind != "display" or not (who.room_ids or who.service_ids):
        return
    for name, asked, allowed in (("rooms", rooms, who.room_ids), ("services", services, who.service_ids)):
        if asked and not allowed:
            raise Problem(403, "Not on this display token", f"This display token is limited to its own "
                          f"{'services' if name == 'rooms' else 'rooms'}; it may not choose {name}.",
                          code="not_on_display_token")


def screen_filter(query: Mapping[str, str], who: Principal) -> ScreenFilter:
    rooms = parse_ids(query.get("rooms") or query.get("room"), "rooms")
    services = parse_ids(query.get("services"), "services")
    check_token_scope(who, rooms, services)
    return ScreenFilter(_intersect(rooms, who.room_ids, "rooms"), _intersect(services, who.service_ids, "services"))


def event_scope(event: Event) -> tuple[int | None, int | None]:
    """(room_id, service_id) an event is about."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type in ("announcement.ready", "queue.room_state"):
        return _int_or_none(data.get("room_id")), None
    if event.type == "queue.changed":
        return None, _int_or_none(data.get("service_id"))
    ticket = data.get("ticket")
    ticket = ticket if isinstance(ticket, dict) else {}
    room = ticket.get("room")
    room_id = _int_or_none(room.get("id")) if isinstance(room, dict) else None
    return room_id, _int_or_none(ticket.get("service_id"))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def room_services_of(snapshot: Mapping[str, Any]) -> dict[int, frozenset[int]]:
    rooms = snapshot.get("rooms") or []
    found: dict[int, frozenset[int]] = {}
    for room in rooms if isinstance(rooms, list) else []:
        if isinstance(room, dict) and isinstance(room.get("id"), int):
            found[room["id"]] = frozenset(i for i in room.get("service_ids") or () if isinstance(i, int))
    return found


# ---------------------------------------------------------------------------------------------- the hub

def batch_body(events: list[dict[str, Any]]) -> dict[str, Any]:
    """One event as its own frame; several (one operation's, or a burst) as one "batch" frame, in order."""
    return events[0] if len(events) == 1 else {"type": "batch", "events": events}


class DisplayHub:
    """The screens' feed on the app's websocket hub (clinicall/hub.py): every batch of bus events becomes at
    most one frame per screen, scrubbed once and encoded once per distinct filter."""

    def __init__(self, app: web.Application, hub: Hub) -> None:
        self.app = app
        self.hub = hub
        self.feed = hub.feed("display", self._resync)
        self.version = 0  # bumped by every batch; cached snapshots of an older version are stale
        self.room_services: dict[int, frozenset[int]] = {}
        self._snapshots: dict[Any, tuple[int, float, asyncio.Task[dict[str, Any]]]] = {}
        self._frames: dict[Any, tuple[int, float, Frame]] = {}  # encoded snapshots, shared by screens
        self._pending: list[Event] = []
        self._riding: dict[Any, tuple[Event, dict[str, Any]]] = {}  # service id -> a line of new estimates only
        self._ride_timer: asyncio.TimerHandle | None = None
        self.ride_seconds = RIDE_SECONDS
        self.lines: dict[Any, dict[Any, Sent]] = {}  # service id -> the waiting line as last sent
        self.forwarded = 0
        self.frames = 0  # frames encoded for batches

    @property
    def keep_masked(self) -> bool:
        return self.app[SETTINGS_KEY].display.name_mask == "initials"

    # events ------------------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """A bus tap: the events published together (one operation's) go out in one flush, as soon as their
        publisher yields, before any bus subscriber (the announcer, messaging) has them. A service or room
        made or changed sends every screen a fresh snapshot instead (names and rooms are in snapshots only)."""
        if event.type == CATALOG_CHANGED:
            self.version += 1  # no cached snapshot of before the change is handed out
            for client in list(self.feed.clients()):
                self.hub.resync(client)
            return
        self._pending.append(event)
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """One frame per screen with the pending events its filter takes, in the order they were published
        (an operation publishes its call first); a service's waiting line only in its latest version. The lines
        whose only news is their estimates are gathered for RIDE_SECONDS and go in a frame of their own, never
        in a call's: the call is the news, its frame stays small and no screen reads estimates before it."""
        events, self._pending = self._pending, []
        if not events:
            return
        self.forwarded += len(events)
        keep_masked = self.keep_masked
        latest_line = {event.data.get("service_id"): event for event in events if event.type == QUEUE_CHANGED}
        now: list[tuple[Event, dict[str, Any]]] = []
        self.version += 1  # a snapshot read from now on has this batch's changes (cached ones are stale)
        for event in events:
            if event.type != QUEUE_CHANGED:
                data = scrub(event.data, keep_masked)
                self._left_line(data)
                now.append((event, data))
                continue
            service_id = event.data.get("service_id")
            if latest_line.get(service_id) is not event:
                continue
            data = scrub(event.data, keep_masked)
            self._riding.pop(service_id, None)  # a newer line replaces one waiting to ride
            if self._only_estimates(service_id, data):
                self._riding[service_id] = (event, data)
            else:
                now.append((event, data))
        if self._riding:
            self._ride_later()
        if now:
            self._send(now)

    def _send(self, events: list[tuple[Event, dict[str, Any]]]) -> None:
        if any(event.type in CALLS for event, _data in events):
            self.app[HOT_PATH_KEY].wrote()
        bodies = [{"type": e.type, "id": e.id, "at": e.at, "data": self._as_sent(e, data)} for e, data in events]
        scopes = [event_scope(e) for e, _data in events]
        encoded: dict[tuple[int, ...], Frame] = {}
        for key in self.feed.keys():
            assert isinstance(key, ScreenFilter)
            chosen = tuple(i for i, (room_id, service_id) in enumerate(scopes)
                           if key.matches(room_id, service_id, self.room_services))
            if not chosen:
                continue
            frame = encoded.get(chosen)
            if frame is None:
                frame = encoded[chosen] = encode(batch_body([bodies[i] for i in chosen]))
                self.frames += 1
            self.hub.publish(self.feed, key, frame)

    def _only_estimates(self, service_id: Any, data: dict[str, Any]) -> bool:
        """The line holds the tickets last sent, in the same places, changed in their estimates at most."""
        waiting, sent = data.get("waiting"), self.lines.get(service_id)
        if not isinstance(waiting, list) or sent is None \
                or list(sent) != [t.get("id") if isinstance(t, dict) else None for t in waiting]:
            return False
        entries, _ = line_delta(sent, waiting)
        return all(not isinstance(entry, dict) for entry in entries)

    def _left_line(self, data: dict[str, Any]) -> None:
        """A ticket that is no longer waiting leaves the lines as sent, as screens drop it themselves (state.js);
        a line waiting to ride loses it too, its places closed up as the screens close them."""
        ticket = data.get("ticket")
        if not isinstance(ticket, dict) or ticket.get("status") == "waiting":
            return
        gone = ticket.get("id")
        for line in self.lines.values():
            line.pop(gone, None)
        for _event, riding in self._riding.values():
            waiting = riding.get("waiting")
            if isinstance(waiting, list) and any(isinstance(t, dict) and t.get("id") == gone for t in waiting):
                kept = [t for t in waiting if not (isinstance(t, dict) and t.get("id") == gone)]
                riding["waiting"] = [{**t, "position": place} if isinstance(t, dict) else t
                                     for place, t in enumerate(kept, start=1)]

    def _ride_later(self) -> None:
        if self._ride_timer is None:
            self._ride_timer = asyncio.get_running_loop().call_later(self.ride_seconds, self._ride_now)

    def _ride_now(self, deferred: bool = False) -> None:
        """Not while a call is on its way to the screens or just went (clinicall/hotpath.py): put off once."""
        self._ride_timer = None
        wait = self.app[HOT_PATH_KEY].quiet_in()
        if wait > 0 and not deferred:
            self._ride_timer = asyncio.get_running_loop().call_later(wait, self._ride_now, True)
            return
        self.send_estimates()

    def send_estimates(self) -> None:
        """The lines of new estimates gathered so far, in one frame of their own."""
        if self._ride_timer is not None:
            self._ride_timer.cancel()
            self._ride_timer = None
        riding, self._riding = list(self._riding.values()), {}
        if riding:
            self._send(riding)

    def _as_sent(self, event: Event, data: dict[str, Any]) -> dict[str, Any]:
        """A waiting line goes out as a delta against the one sent before (queue_display/lines.py)."""
        waiting = data.get("waiting")
        if event.type != QUEUE_CHANGED or not isinstance(waiting, list):
            sent = {k: v for k, v in data.items() if k not in FOR_THE_ESTIMATOR}
            ticket = sent.get("ticket")
            if event.type == TICKET_DONE and isinstance(ticket, dict):  # screens only drop it from where it was
                sent["ticket"] = {k: ticket[k] for k in DONE_TICKET_KEYS if k in ticket}
            return sent
        service_id = data.get("service_id")
        entries, self.lines[service_id] = line_delta(self.lines.get(service_id, {}), waiting)
        return {**{k: v for k, v in data.items() if k != "waiting"}, "line": entries}

    # snapshots ---------------------------------------------------------------------------------------
    async def snapshot(self, screen_filter: ScreenFilter) -> dict[str, Any]:
        """display_snapshot for a filter; screens that (re)connect together share one database read."""
        loop = asyncio.get_running_loop()
        cached = self._snapshots.get(screen_filter.key)
        if cached and cached[0] == self.version and loop.time() - cached[1] < SNAPSHOT_CACHE_SECONDS:
            return await asyncio.shield(cached[2])
        task = asyncio.ensure_future(self._load_snapshot(screen_filter))
        self._snapshots[screen_filter.key] = (self.version, loop.time(), task)
        try:
            return await asyncio.shield(task)
        except Exception:
            self._snapshots.pop(screen_filter.key, None)
            raise

    async def _load_snapshot(self, screen_filter: ScreenFilter) -> dict[str, Any]:
        from queue_display import service

        settings = self.app[SETTINGS_KEY]
        rooms = sorted(screen_filter.room_ids) if screen_filter.room_ids is not None else None
        services = sorted(screen_filter.service_ids) if screen_filter.service_ids is not None else None
        data = await service.display_snapshot(self.app[DB_KEY], settings, rooms, services)
        self.room_services.update(room_services_of(data))
        return dict(data)

    async def snapshot_frame(self, screen_filter: ScreenFilter) -> Frame:
        """The scrubbed, encoded snapshot; screens with the same filter share it until the next event."""
        loop = asyncio.get_running_loop()
        version = self.version
        cached = self._frames.get(screen_filter.key)
        if cached and cached[0] == version and loop.time() - cached[1] < SNAPSHOT_CACHE_SECONDS:
            return cached[2]
        data = scrub(await self.snapshot(screen_filter), self.keep_masked)
        settings = self.app[SETTINGS_KEY]
        data.update({"filter": screen_filter.as_json(), "name_mask": settings.display.name_mask,
                     "heartbeat_seconds": settings.display.heartbeat_seconds,
                     "timezone": settings.clinic.timezone})
        frame = encode({"type": "snapshot", "data": data})
        if version == self.version:
            self._frames[screen_filter.key] = (version, loop.time(), frame)
        return frame

    async def _resync(self, client: Client) -> Frame:
        assert isinstance(client.key, ScreenFilter)
        return await self.snapshot_frame(client.key)

    @property
    def screens(self) -> list[Client]:
        return list(self.feed.clients())

    def close(self) -> None:
        if self._ride_timer is not None:
            self._ride_timer.cancel()
            self._ride_timer = None
        for _version, _at, task in self._snapshots.values():
            task.cancel()
        self._snapshots.clear()
        self._frames.clear()


DISPLAY_HUB_KEY = web.AppKey("display_hub", DisplayHub)


routes = web.RouteTableDef()


@routes.get("/ws/display")
@display_feed
async def display_socket(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    if who is None:  # the access middleware already refused; kept for type narrowing
        raise Problem(401, "Display token required", "Open the screen with ?token=... from the admin page.")
    check_socket_origin(request, who)
    chosen = screen_filter(request.query, who)
    settings = request.app[SETTINGS_KEY]
    # no per-message deflate: frames are small, and compressing each one once per screen costs CPU per screen
    ws = web.WebSocketResponse(heartbeat=settings.display.heartbeat_seconds, max_msg_size=64 * 1024, compress=False)
    if not ws.can_prepare(request).ok:
        raise Problem(400, "Websocket expected", "Connect to /ws/display with a websocket client.")
    await ws.prepare(request)
    request.app[WEBSOCKETS_KEY].add(ws)
    unwatch = watch_socket(request, ws, lambda now: now.kind == "display" or now.has_any(*STAFF_ROLES))
    hub = request.app[HUB_KEY]
    screen = hub.add(ws, request, request.app[DISPLAY_HUB_KEY].feed, chosen, resync_first=True)
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT and _asks_resync(message.data):
                hub.resync(screen)
    finally:
        unwatch()
        await hub.remove(screen)
    return ws


def _asks_resync(raw: str) -> bool:
    if len(raw) > 1024:  # a screen only ever sends {"type": "resync"} (or "ping")
        return False
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and body.get("type") == "resync"


# ---------------------------------------------------------------------------------------------- pages

def _page(name: str) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / name, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                                     "Referrer-Policy": "no-referrer"})


@routes.get("/tv")
@display_feed
async def tv_page(request: web.Request) -> web.StreamResponse:
    return _page("tv.html")


@routes.get("/door")
@display_feed
async def door_page(request: web.Request) -> web.StreamResponse:
    return _page("door.html")


@routes.get("/kiosk")
@public
async def kiosk_page(request: web.Request) -> web.StreamResponse:
    return _page("kiosk.html")


@routes.get("/room")
async def room_page(request: web.Request) -> web.StreamResponse:
    require(request, "doctor", "reception")
    return _page("room.html")


KIOSK_SERVICE_FIELDS = ("id", "name", "names", "prefix", "open", "opens_at", "closes_at", "active", "waiting_count",
                        "estimated_wait_seconds", "estimated_wait_range")


@routes.get("/kiosk/services")
@public
async def kiosk_services(request: web.Request) -> web.Response:
    """The services a patient may choose at the kiosk, with how many wait; nothing about anyone waiting."""
    hub = request.app[DISPLAY_HUB_KEY]
    snapshot = await hub.snapshot(ScreenFilter())
    services = []
    for item in snapshot.get("services") or []:
        if not isinstance(item, dict) or item.get("active") is False:
            continue
        entry = {k: item[k] for k in KIOSK_SERVICE_FIELDS if k in item}
        waiting = item.get("waiting")
        if "waiting_count" not in entry and isinstance(waiting, list):
            entry["waiting_count"] = len(waiting)
        services.append(entry)
    clinic = request.app[SETTINGS_KEY].clinic
    return web.json_response({"services": services, "clinic": clinic.name, "timezone": clinic.timezone},
                             headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------------------------------------- setup

async def display_ctx(app: web.Application) -> AsyncIterator[None]:
    display = DisplayHub(app, app[HUB_KEY])
    app[DISPLAY_HUB_KEY] = display
    bus = app[BUS_KEY]
    unsubscribe = [bus.tap(pattern, display.on_event) for pattern in FORWARDED_PATTERNS]
    yield
    for undo in unsubscribe:
        undo()
    display.close()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_static("/static/queue_display", STATIC_DIR, name="static-queue-display")
    app.cleanup_ctx.append(display_ctx)
    app[NAV_KEY].extend([
        NavLink("/room", "Phòng khám: gọi số", "Room: call numbers", ("doctor", "reception")),
        NavLink("/kiosk", "Ki-ốt lấy số", "Ticket kiosk", ("reception", "doctor", "supervisor")),
        NavLink("/tv", "Màn hình TV (cần mã hiển thị)", "TV screen (needs a display token)", ("admin",)),
    ])
