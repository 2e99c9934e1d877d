"""Failed-login throttling per account and per address. Failures are counted in a fixed window; once
either count reaches its limit, logins for that account (or from that address) wait until the window
ends, even with the right password. Counters live in Redis when one is configured (shared by every
instance), in this process otherwise (and when Redis cannot be reached)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from clinicall.keys import SETTINGS_KEY

log = logging.getLogger(__name__)
PREFIX = "clinicall:login-failures:"


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_address: int
    window_seconds: int


class LocalCounters:
    """In-process fixed-window counters: key -> (count, window end on the monotonic clock)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    async def incr(self, key: str, window: int) -> tuple[int, float]:
        """Adds one; (the count, seconds until the window ends)."""
        now = time.monotonic()
        if len(self._counts) > 100_000:  # bounded memory under a spray of addresses
            for stale in [k for k, (_, end) in self._counts.items() if end <= now]:
                del self._counts[stale]
        count, end = self._counts.get(key) or (0, now + window)
        if end <= now:
            count, end = 0, now + window
        self._counts[key] = (count + 1, end)
        return count + 1, end - now

    async def decr(self, key: str) -> None:
        if key in self._counts:
            count, end = self._counts[key]
            self._counts[key] = (max(count - 1, 0), end)

    async def reset(self, key: str) -> None:
        self._counts.pop(key, None)


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)

    async def incr(self, key: str, window: int) -> tuple[int, float]:
        async with self._redis.pipeline(transaction=True) as pipe:
            _, count, ttl = await pipe.set(PREFIX + key, 0, ex=window, nx=True).incr(PREFIX + key) \
                .pttl(PREFIX + key).execute()
        return int(count), max(int(ttl), 0) / 1000

    async def decr(self, key: str) -> None:
        await self._redis.decr(PREFIX + key)

    async def reset(self, key: str) -> None:
        await self._redis.delete(PREFIX + key)

    async def close(self) -> None:
        await self._redis.aclose()


class LoginThrottle:
    """Every login attempt is counted before the password is checked (so a burst of parallel guesses
    cannot slip past the limit); a successful one is taken back (the account's count starts again)."""

    def __init__(self, limits: Limits, redis_url: str | None = None) -> None:
        self.limits = limits
        self.local = LocalCounters()
        self.shared = RedisCounters(redis_url) if redis_url else None

    async def _call(self, method: str, *args: object) -> object:
        if self.shared is not None:
            try:
                return await getattr(self.shared, method)(*args)
            except Exception as exc:  # Redis away: throttle in this process rather than not at all
                log.warning("login throttle: Redis unavailable (%s); counting in this process", exc)
        return await getattr(self.local, method)(*args)

    @staticmethod
    def keys(username: str, address: str) -> tuple[str, str]:
        return f"user:{username.strip().lower()[:64]}", f"addr:{address[:64]}"

    async def attempt(self, username: str, address: str) -> int:
        """Counts an attempt; the seconds to wait when it is over a limit, else 0 (go ahead)."""
        account, origin = self.keys(username, address)
        waits = []
        for key, limit in ((account, self.limits.per_account), (origin, self.limits.per_address)):
            count, remaining = await self._call("incr", key, self.limits.window_seconds)  # type: ignore[misc]
            if count > limit:
                waits.append(max(1, math.ceil(remaining)))
        return max(waits, default=0)

    async def succeeded(self, username: str, address: str) -> None:
        account, origin = self.keys(username, address)
        await self._call("reset", account)
        await self._call("decr", origin)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


LOGIN_THROTTLE_KEY = web.AppKey("login_throttle", LoginThrottle)


async def throttle_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    auth = settings.auth
    app[LOGIN_THROTTLE_KEY] = LoginThrottle(
        Limits(auth.login_failures_per_account, auth.login_failures_per_address, auth.login_window_seconds),
        settings.bus.redis_url)
    yield
    await app[LOGIN_THROTTLE_KEY].close()


def wait_text(seconds: int) -> str:
    """'45 giây' or '3 phút' (rounded up): the wait as people read it."""
    return f"{seconds} giây" if seconds < 60 else f"{math.ceil(seconds / 60)} phút"
