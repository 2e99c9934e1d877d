"""Per-agent click-to-call rate limit: a one-minute window per agent, counted by every instance together
when Redis is configured (clinicall/counters.py), in this process otherwise."""

from __future__ import annotations

import math

from clinicall.counters import WindowCounters
from clinicall.problem import Problem

WINDOW_SECONDS = 60


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None = None) -> None:
        self.per_minute = per_minute
        self.counters = WindowCounters("clinicall:click-to-call:", redis_url)

    async def check(self, agent_id: int) -> None:
        """Counts one call for the agent, or raises 429 when this minute already has `per_minute`."""
        count, remaining = await self.counters.incr(str(agent_id), WINDOW_SECONDS)
        if count > self.per_minute:
            wait = max(1, math.ceil(remaining))
            raise Problem(429, "Too many calls", code="rate_limited", detail=f"You started {self.per_minute} calls in "
                          f"the last minute; wait {wait} s before the next one.", retry_after=wait,
                          headers={"Retry-After": str(wait)})

    async def release(self, agent_id: int) -> None:
        """Gives back the call `check` counted (the click was refused for another reason)."""
        await self.counters.decr(str(agent_id))

    async def close(self) -> None:
        await self.counters.close()
