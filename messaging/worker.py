"""The dispatcher: takes due messages from the database (leased, so instances never send one twice at
once), sends up to `concurrency` at a time through the sender with a timeout, records each answer, and
applies delivery receipts. Queued messages survive a stop: the next start picks them up."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from clinicall.settings import MessagingSettings
from messaging.senders.base import Outgoing, Receipt, Sender, SendError
from messaging.service import MessagingService, StoredMessage

log = logging.getLogger(__name__)
IDLE_CHECK_SECONDS = 30.0  # another instance may have queued messages: look now and then
STOP_SECONDS = 10  # a stop never waits longer for its tasks
RECEIPT_RETRIES = (1.0, 5.0, 30.0)  # a receipt that overtook its submit's record (maybe on another instance)


class Dispatcher:
    def __init__(self, service: MessagingService, sender: Sender, settings: MessagingSettings) -> None:
        self.service, self.sender, self.settings = service, sender, settings
        self.receipts: asyncio.Queue[Receipt] = asyncio.Queue()
        self._inflight: dict[asyncio.Task[None], int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.sent = 0

    @property
    def lease_seconds(self) -> float:
        return self.settings.timeout_seconds * 2 + 30

    async def start(self) -> None:
        await self.sender.start(self.receipts.put_nowait, self._gateway_ready)
        self._tasks = [asyncio.create_task(self._run(), name="messaging-dispatch"),
                       asyncio.create_task(self._apply_receipts(), name="messaging-receipts")]

    def _gateway_ready(self) -> None:
        self._keep(asyncio.create_task(self._resume(), name="messaging-resume"))

    async def _resume(self) -> None:
        await self.service.resume_waiting()

    async def _run(self) -> None:
        while True:
            try:
                await self._fill()
                # while sends are in flight their ends wake the loop; otherwise sleep until the next is due
                delay = None if self._inflight else await self.service.next_due_in()
            except Exception:
                log.exception("messaging: dispatch failed; trying again")
                delay = self.settings.retry_base_seconds
            self.service.wakeup.clear()
            timeout = IDLE_CHECK_SECONDS if delay is None else min(delay, IDLE_CHECK_SECONDS)
            if timeout > 0:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel of a stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self.service.wakeup.wait()

    async def _fill(self) -> None:
        free = self.settings.concurrency - len(self._inflight)
        if free <= 0 or (self._inflight and free < self.settings.concurrency // 2):
            return  # refill in batches: one lease query for several messages
        for message in await self.service.claim_due(free, self.lease_seconds):
            task = asyncio.create_task(self._send(message), name=f"messaging-send-{message.id}")
            self._inflight[task] = message.id
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self.service.wakeup.set()

    async def _send(self, message: StoredMessage) -> None:
        outgoing = Outgoing(ref=message.id, to_e164=message.to_e164, text=message.outgoing_text)
        try:
            accepted = await asyncio.wait_for(self.sender.send(outgoing), self.settings.timeout_seconds + 1)
        except SendError as exc:
            await self.service.record_failure(message.id, self.sender.name, exc)
        except TimeoutError:
            await self.service.record_failure(message.id, self.sender.name, SendError(
                f"no answer within {self.settings.timeout_seconds:g} s", retry=True))
        except Exception as exc:  # an adapter's bug must not lose the message
            log.exception("messaging: sender %s failed on message %d", self.sender.name, message.id)
            await self.service.record_failure(message.id, self.sender.name, SendError(repr(exc)[:300], retry=True))
        else:
            self.sent += 1
            await self.service.record_accepted(message.id, self.sender.name, accepted)

    async def _apply_receipts(self) -> None:
        while True:
            receipt = await self.receipts.get()
            try:
                if not await self.service.apply_receipt(receipt):
                    self.retry_later(receipt.gateway_id)
            except Exception:
                log.exception("messaging: receipt for %s not applied", receipt.gateway_id)

    def retry_later(self, gateway_id: str) -> None:
        """A receipt that overtook its message's record (or reached another instance) is tried again."""
        self._keep(asyncio.create_task(self._retry_receipt(gateway_id), name="messaging-receipt"))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.append(task)
        task.add_done_callback(lambda t: t in self._tasks and self._tasks.remove(t))

    async def _retry_receipt(self, gateway_id: str) -> None:
        for delay in RECEIPT_RETRIES:
            await asyncio.sleep(delay)
            if await self.service.retry_receipt(gateway_id):
                return
        log.warning("messaging: receipt for %s matches no message we sent; ignored", gateway_id)

    async def stop(self) -> None:
        interrupted = list(self._inflight.values())
        tasks = [*self._tasks, *self._inflight]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=STOP_SECONDS)
            if stuck:
                log.warning("messaging: %d task(s) did not stop in %d s; their messages are released", len(stuck),
                            STOP_SECONDS)
        with contextlib.suppress(Exception):
            await self.service.release(interrupted)
        await self.sender.close()
