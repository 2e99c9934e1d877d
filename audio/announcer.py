"""Turns ticket.called / ticket.recalled into announcement.ready: one serial queue per room (each
room's speaker), so a room's announcements are rendered and published in the order they were called,
never two at once; rendering runs in worker threads, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from audio.announcement import AnnouncementBuilder
from audio.events import ANNOUNCEMENT_READY, announcement_ready
from audio.paging import Pager
from clinicall.bus import Event, InProcessBus, RedisBus
from clinicall.tasks import BackgroundTasks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    reason: str
    ticket: dict[str, Any]
    room: dict[str, Any]


class Announcer:
    def __init__(self, builder: AnnouncementBuilder, bus: InProcessBus | RedisBus, tasks: BackgroundTasks,
                 executor: Executor, pager: Pager | None = None) -> None:
        self.builder = builder
        self.pager = pager
        self.bus = bus
        self.tasks = tasks
        self.executor = executor
        self.queues: dict[int, asyncio.Queue[Job]] = {}
        self.published = 0
        self.failed = 0

    async def on_ticket(self, event: Event) -> None:
        if event.origin and event.origin != self.bus.instance_id:
            return  # the instance where the call was made announces it (once, for every screen and speaker)
        ticket = event.data.get("ticket")
        if not isinstance(ticket, dict):
            return
        room = ticket.get("room")
        if not isinstance(room, dict) or not isinstance(room.get("id"), int) or not ticket.get("number"):
            return  # nothing to announce without a room and a number
        reason = event.type.rsplit(".", 1)[-1]
        self.queue_for(room["id"]).put_nowait(Job(reason, ticket, room))

    def queue_for(self, room_id: int) -> asyncio.Queue[Job]:
        queue = self.queues.get(room_id)
        if queue is None:
            queue = asyncio.Queue()
            self.queues[room_id] = queue
            self.tasks.spawn(self._serve(queue), name=f"audio-room-{room_id}")
        return queue

    async def _serve(self, queue: asyncio.Queue[Job]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await queue.get()
            try:
                announcement = await loop.run_in_executor(
                    self.executor, self.builder.build, str(job.ticket["number"]), job.room)
                await self.bus.publish(ANNOUNCEMENT_READY, announcement_ready(
                    job.ticket, job.room, announcement, self.builder.sound.repeat, job.reason, announcement.seconds))
                self.published += 1
                if self.pager is not None and self.pager.enabled:
                    await self.pager.page(announcement.name, announcement.path)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failed += 1
                log.exception("could not announce ticket %s for room %s", job.ticket.get("number"), job.room.get("id"))
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued announcement is published (tests and benchmarks)."""
        for queue in list(self.queues.values()):
            await queue.join()
