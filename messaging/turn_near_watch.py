"""The turn-near check, off the bus dispatcher: queue.changed hands over each service's latest waiting line
and returns at once; one task checks them, newest line per service, so a slow or lost database delays the
texts, never the other subscribers (the agents' live calls, the announcer)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from clinicall.bus import Event
from clinicall.tasks import BackgroundTasks
from messaging.service import MessagingService

log = logging.getLogger(__name__)


class TurnNearWatch:
    def __init__(self, service: MessagingService) -> None:
        self.service = service
        self.pending: dict[Any, list[dict[str, Any]]] = {}
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.tasks = BackgroundTasks()

    def start(self) -> None:
        self.tasks.spawn(self._run(), name="messaging-turn-near")

    async def close(self) -> None:
        await self.tasks.close()

    async def offer(self, event: Event) -> None:
        """A queue.changed: its line replaces any of the same service not yet checked (only the newest counts)."""
        self.pending[event.data.get("service_id")] = list(event.data.get("waiting") or [])
        self.idle.clear()
        self.wake.set()

    async def settled(self) -> None:
        """Wait until every line handed over so far has been checked."""
        await self.idle.wait()

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                _, waiting = self.pending.popitem()
                try:
                    await self.service.turn_near(waiting)
                except Exception:
                    log.exception("messaging: turn-near check failed")
            if not self.pending:
                self.idle.set()
