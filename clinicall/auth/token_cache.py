"""Bearer tokens (`Authorization: Bearer`) looked up in the database at most once every few seconds.

An API client (a reception desk's script, a speaker, the benches) sends its token with every request; the
lookup joins users and tokens, which costs more than many of the requests it guards. A token found valid
is remembered for `auth.token_cache_seconds` (default 5; 0: never). Unknown tokens are never remembered, so
a new token works at once. A change that can take access away (a user's roles, password or active flag, a
display token revoked) forgets every remembered token in this instance at once and, through the bus event
`auth.changed`, in every other instance; a change made outside the service (`clinicall user disable` in a
shell) takes effect within the cache's seconds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from clinicall.auth.service import Principal
from clinicall.bus import Event
from clinicall.keys import BUS_KEY, SETTINGS_KEY

AUTH_CHANGED = "auth.changed"
MOST_ENTRIES = 10_000


class TokenCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, Principal]] = {}  # sha256 of the token -> (valid until, who)
        self._generation = 0  # bumped by clear(): a lookup that began before it is not remembered
        self.hits = 0

    async def principal(self, token: str, lookup: Callable[[str], Awaitable[Principal | None]]) -> Principal | None:
        if self.seconds <= 0:
            return await lookup(token)
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            self.hits += 1
            return entry[1]
        generation = self._generation
        who = await lookup(token)
        if who is None or generation != self._generation:
            return who
        if len(self._entries) >= MOST_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= MOST_ENTRIES:
                self._entries.clear()
        self._entries[key] = (now + self.seconds, who)
        return who

    def clear(self) -> None:
        self._entries.clear()
        self._generation += 1


TOKEN_CACHE_KEY = web.AppKey("token_cache", TokenCache)


async def forget_tokens(app: web.Application) -> None:
    """After a change that may take access away: here at once, in the other instances through the bus."""
    app[TOKEN_CACHE_KEY].clear()
    await app[BUS_KEY].publish(AUTH_CHANGED, {})


async def token_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    cache = TokenCache(app[SETTINGS_KEY].auth.token_cache_seconds)
    app[TOKEN_CACHE_KEY] = cache

    async def on_change(_event: Event) -> None:
        cache.clear()

    unsubscribe = app[BUS_KEY].subscribe(AUTH_CHANGED, on_change)
    yield
    unsubscribe()
