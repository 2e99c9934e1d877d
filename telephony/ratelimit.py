"""Per-agent click-to-call rate limit (a sliding one-minute window, per service instance)."""

from __future__ import annotations

import time
from collections import deque

from clinicall.problem import Problem


class RateLimiter:
    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._calls: dict[int, deque[float]] = {}

    def check(self, agent_id: int, now: float | None = None) -> None:
        """Counts one call for the agent, or raises 429 when the last minute already has `per_minute`."""
        now = time.monotonic() if now is None else now
        recent = self._calls.setdefault(agent_id, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.per_minute:
            wait = int(recent[0] + self.window - now) + 1
            raise Problem(429, "Too many calls", code="rate_limited", detail=f"You started {self.per_minute} calls in the last minute; "
                          f"wait {wait} s before the next one.", retry_after=wait)
        recent.append(now)
