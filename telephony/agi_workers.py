"""More FastAGI processes on one port (`telephony.agi_workers` > 1), for when one event loop is the limit.

`clinicall serve` listens on agi_port with SO_REUSEPORT and starts agi_workers - 1 worker processes
(`python -m telephony.agi_workers`), each an asyncio process holding only the database, the bus and a
FastAGI server bound to the same port: the kernel spreads new connections across all of them. A
worker runs `identify` itself; a connection for any other script (the ones other rooms register in
the serve process) is handed to the serve process with its header, over a Unix socket (SCM_RIGHTS),
and served there. A worker gets its settings as one JSON line on stdin and stops when stdin closes
(the serve process ended, however it ended) or on SIGTERM; one that dies is started again a second
later. A worker's events (screen-pops) go to the serve process over the same Unix socket and serve
publishes them on its bus (`ForwardingBus`), so the workers of one host need no Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from clinicall.db import Database
from clinicall.heap import freeze_startup_objects
from clinicall.keys import BUS_KEY, DB_KEY, SETTINGS_KEY
from clinicall.settings import Settings

log = logging.getLogger(__name__)
READY = b"ready\n"
MAX_MESSAGE_BYTES = 64 * 1024  # a header handed over, or one event (each receive allocates this much)
START_SECONDS = 60.0


class WorkerPool:
    """The serve process's side: starts, watches and stops the extra workers."""

    def __init__(self, settings: Settings, port: int, count: int, adopt: Callable[[bytes, int], None],
                 publish: Callable[[str, dict[str, Any]], Awaitable[Any]]) -> None:
        self.settings = settings
        self.port = port
        self.count = count
        self.adopt = adopt  # the serve process's FastAGI server takes a handed-over connection
        self.publish = publish  # the serve process's bus publishes an event a worker made
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.channels: dict[int, socket.socket] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._publishing: set[asyncio.Task[None]] = set()
        self._closing = False
        self.restarts = 0

    async def start(self) -> None:
        await asyncio.gather(*(self._spawn(index) for index in range(self.count)))
        for index in range(self.count):
            task = asyncio.create_task(self._watch(index), name=f"fastagi-worker-{index}")
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)

    async def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "telephony.agi_workers", str(self.port), str(theirs.fileno()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        self._listen(index, ours)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(self.settings.model_dump_json().encode() + b"\n")
        try:
            async with asyncio.timeout(START_SECONDS):
                line = await process.stdout.readline()
        except TimeoutError:
            line = b""
        if line != READY:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise RuntimeError(f"FastAGI worker {index} did not start (exit code {process.returncode})")
        self.processes[index] = process
        log.info("FastAGI worker %d (pid %d) listening on port %d", index, process.pid, self.port)

    async def _watch(self, index: int) -> None:
        while not self._closing:
            await self.processes[index].wait()
            if self._closing:
                return
            log.error("FastAGI worker %d exited with code %s; starting it again in 1 s",
                      index, self.processes[index].returncode)
            await asyncio.sleep(1)
            try:
                await self._spawn(index)
                self.restarts += 1
            except (RuntimeError, OSError):
                log.exception("FastAGI worker %d could not be started again", index)

    def _listen(self, index: int, channel: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        if (old := self.channels.pop(index, None)) is not None:
            loop.remove_reader(old)
            old.close()
        channel.setblocking(False)
        self.channels[index] = channel
        loop.add_reader(channel, self._receive, index, channel)

    def _receive(self, index: int, channel: socket.socket) -> None:
        """What the worker sent: a connection with its header (one descriptor), or events (no descriptor)."""
        events = []
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(channel, MAX_MESSAGE_BYTES, 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                message, fds = b"", []
            if fds:
                for fd in fds:
                    self.adopt(message, fd)
            elif message:
                events.append(message)
            else:  # the worker is gone
                asyncio.get_running_loop().remove_reader(channel)
                break
        if events:
            task = asyncio.create_task(self._publish(events), name="fastagi-worker-events")
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish(self, events: list[bytes]) -> None:
        for raw in events:
            try:
                event = json.loads(raw)
                await self.publish(event["type"], event["data"])
            except Exception:
                log.exception("could not publish an event a FastAGI worker made")

    def alive(self) -> int:
        return sum(1 for p in self.processes.values() if p.returncode is None)

    async def close(self) -> None:
        self._closing = True
        loop = asyncio.get_running_loop()
        for channel in self.channels.values():
            loop.remove_reader(channel)
            channel.close()
        for task in list(self._watchers):
            task.cancel()
        for process in self.processes.values():
            if process.returncode is None and process.stdin is not None:
                process.stdin.close()  # the worker's signal to finish its sessions and stop
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def serve_worker(settings: Settings, port: int, channel: socket.socket) -> None:
    """One worker: the database, the bus and the FastAGI server on `port` until stdin closes; other
    scripts' connections go back to the serve process through `channel`."""
    from telephony.agi import FASTAGI_KEY, fastagi_ctx
    from telephony.identify import AGENT_DIRECTORY_KEY, AgentDirectory

    settings.telephony.agi_port = port
    app = web.Application()
    app[SETTINGS_KEY] = settings
    app[DB_KEY] = db = Database(settings.database.url)
    app[BUS_KEY] = bus = ForwardingBus(channel)  # type: ignore[assignment]
    app[AGENT_DIRECTORY_KEY] = AgentDirectory()
    await bus.start()
    context = fastagi_ctx(app, worker=True)
    try:
        await anext(context)
        app[FASTAGI_KEY].hand_over = lambda header, fd: socket.send_fds(channel, [header], [fd])
        freeze_startup_objects()
        sys.stdout.buffer.write(READY)
        sys.stdout.flush()
        await _until_told_to_stop(app[FASTAGI_KEY].address)
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(context)
        await app[AGENT_DIRECTORY_KEY].close()
        await bus.close()
        await db.dispose()


async def _until_told_to_stop(address: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    eof = asyncio.create_task(stdin.read())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (eof, stopped):
        task.cancel()
    log.info("FastAGI worker on %s stopping", address)


class ForwardingBus:
    """A worker's bus: publishes only (a worker has no subscribers). Each event goes to the serve process as
    one message on the worker's channel, and serve publishes it on its own bus, as if made there: no Redis
    between the processes of one host, and no process reads events it has no use for."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel

    async def publish(self, event_type: str, data: dict[str, Any]) -> None:
        message = json.dumps({"type": event_type, "data": data}, ensure_ascii=False, default=str).encode()
        if len(message) > MAX_MESSAGE_BYTES:
            raise ValueError(f"a {event_type} event of {len(message)} bytes is too large to forward")
        self.channel.send(message)

    def health(self) -> dict[str, Any]:
        return {"ok": True, "kind": "forwarded to the serve process"}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    from clinicall.logs import configure_logging

    args = argv if argv is not None else sys.argv[1:]
    settings = Settings.model_validate_json(sys.stdin.buffer.readline())
    configure_logging(settings)
    log.info("FastAGI worker pid %d starting", os.getpid())
    asyncio.run(serve_worker(settings, int(args[0]), socket.socket(fileno=int(args[1]))))
    return 0


def health(pool: WorkerPool | None) -> dict[str, Any]:
    return {} if pool is None else {"workers": pool.count + 1, "workers_alive": pool.alive() + 1,
                                    "worker_restarts": pool.restarts}


if __name__ == "__main__":
    sys.exit(main())
