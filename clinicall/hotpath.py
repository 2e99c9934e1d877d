"""The news path: from a call's request until its frames are in every screen's socket (and a short while
after, while the screens read them). Background rounds that are not news (the estimates' refresh, the
periodic re-estimate, the reminders dialler's round) wait for it to be clear before they start, so none
of them lands inside it. A round already running is not stopped: they are short, and start rarely."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

SETTLE_SECONDS = 0.2  # after a call's frames went out: the screens (and the caller's page) are reading them


class HotPath:
    def __init__(self, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self.running = 0  # calls between their request and their frames
        self.news_at = float("-inf")  # loop time the last call's frames went out
        self.waited = 0  # rounds that waited for a call to clear

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Around a call's handling (a call-next, a call, a recall)."""
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1

    def wrote(self) -> None:
        """A call's frames are in the screens' sockets."""
        self.news_at = asyncio.get_running_loop().time()

    def quiet_in(self) -> float:
        """Seconds until the path is clear (0: clear now)."""
        if self.running:
            return self.settle_seconds
        return max(0.0, self.news_at + self.settle_seconds - asyncio.get_running_loop().time())

    async def clear(self, most_seconds: float = 2.0) -> None:
        """Until no call is on its way to the screens nor just went out; `most_seconds` at most (a stream of
        calls never starves a round)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + most_seconds
        waited = False
        while (wait := self.quiet_in()) > 0 and loop.time() < until:
            waited = True
            await asyncio.sleep(min(wait, until - loop.time()))
        self.waited += waited
