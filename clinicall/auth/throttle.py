"""Failed-login throttling per account and per address. Failures are counted in a fixed window; once
either count reaches its limit, logins for that account (or from that address) wait until the window
ends, even with the right password. Counters live in Redis when one is configured (shared by every
instance), in this process otherwise (and when Redis cannot be reached): clinicall/counters.py."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from clinicall.counters import WindowCounters
from clinicall.keys import SETTINGS_KEY

PREFIX = "clinicall:login-failures:"


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_address: int
    window_seconds: int


class LoginThrottle:
    """Every login attempt is counted before the password is checked (so a burst of parallel guesses
    cannot slip past the limit); a successful one is taken back (the account's count starts again)."""

    def __init__(self, limits: Limits, redis_url: str | None = None) -> None:
        self.limits = limits
        self.counters = WindowCounters(PREFIX, redis_url)

    @staticmethod
    def keys(username: str, address: str) -> tuple[str, str]:
        return f"user:{username.strip().lower()[:64]}", f"addr:{address[:64]}"

    async def attempt(self, username: str, address: str) -> int:
        """Counts an attempt; the seconds to wait when it is over a limit, else 0 (go ahead)."""
        account, origin = self.keys(username, address)
        waits = []
        for key, limit in ((account, self.limits.per_account), (origin, self.limits.per_address)):
            count, remaining = await self.counters.incr(key, self.limits.window_seconds)
            if count > limit:
                waits.append(max(1, math.ceil(remaining)))
        return max(waits, default=0)

    async def succeeded(self, username: str, address: str) -> None:
        account, origin = self.keys(username, address)
        await self.counters.reset(account)
        await self.counters.decr(origin)

    async def close(self) -> None:
        await self.counters.close()


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
