"""Open websockets whose access may have ended. A socket is authenticated once, when it opens; a password
reset, a user disabled or stripped of a role, a token revoked or a logout (each publishes `auth.changed`)
must not leave it streaming patients' names to whoever held the session. On every such change each open
socket's own request is authenticated again, afresh, and the socket is closed (4401) when that no longer
admits its user. Every few minutes too: a session that expired, or a user disabled from the command line
(which publishes nothing), ends its sockets within that time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from clinicall.auth.middleware import BadDisplayToken, authenticate
from clinicall.auth.service import Principal
from clinicall.auth.token_cache import AUTH_CHANGED, TOKEN_CACHE_KEY
from clinicall.bus import Event
from clinicall.keys import BUS_KEY, TASKS_KEY
from clinicall.problem import Problem

log = logging.getLogger(__name__)
ACCESS_ENDED = 4401  # websocket close code: log in again
RECHECK_SECONDS = 300.0
Allowed = Callable[[Principal], bool]


class LiveSockets:
    def __init__(self) -> None:
        self._open: dict[web.WebSocketResponse, tuple[web.Request, Allowed]] = {}
        self.closed = 0

    def watch(self, request: web.Request, ws: web.WebSocketResponse, allowed: Allowed) -> Callable[[], None]:
        """Checks `ws` again on every access change; call the returned function when the socket ends."""
        self._open[ws] = (request, allowed)

        def forget() -> None:
            self._open.pop(ws, None)
        return forget

    async def recheck(self) -> None:
        for ws, (request, allowed) in list(self._open.items()):
            if ws.closed:
                self._open.pop(ws, None)
                continue
            try:
                who = await authenticate(request)
            except (Problem, BadDisplayToken):
                who = None
            if who is None or not allowed(who):
                self._open.pop(ws, None)
                self.closed += 1
                await ws.close(code=ACCESS_ENDED, message=b"access_changed")


LIVE_SOCKETS_KEY = web.AppKey("live_sockets", LiveSockets)


def watch_socket(request: web.Request, ws: web.WebSocketResponse, allowed: Allowed) -> Callable[[], None]:
    return request.app[LIVE_SOCKETS_KEY].watch(request, ws, allowed)


async def live_sockets_ctx(app: web.Application) -> AsyncIterator[None]:
    sockets = LiveSockets()
    app[LIVE_SOCKETS_KEY] = sockets

    async def on_change(_event: Event) -> None:
        app[TOKEN_CACHE_KEY].clear()  # whichever subscriber runs first: no remembered token answers the check
        app[TASKS_KEY].spawn(sockets.recheck(), name="recheck-sockets")  # database reads: off the dispatcher

    async def every_few_minutes() -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            try:
                await sockets.recheck()
            except Exception:
                log.exception("could not check the open websockets' access again; next try in %.0f s", RECHECK_SECONDS)

    unsubscribe = app[BUS_KEY].subscribe(AUTH_CHANGED, on_change)
    app[TASKS_KEY].spawn(every_few_minutes(), name="recheck-sockets-periodically")
    yield
    unsubscribe()
