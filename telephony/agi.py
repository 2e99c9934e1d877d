"""FastAGI server (asyncio): Asterisk's `AGI(agi://127.0.0.1:4573/identify)` connects here.

Protocol (res_agi, LF line endings): Asterisk sends `agi_key: value` lines and a blank line,
then waits for commands; each command gets one `200 result=...` reply line. Closing the socket
ends AGI() with AGISTATUS=SUCCESS and the dialplan goes on.

Each connection is an `asyncio.Protocol` (`AGISession`): its bytes go into one buffer, the header
(up to the blank line, capped at 16 KiB) starts the script's task, and each command waits for one reply
line. A client that disconnects early, stalls, or floods never blocks anyone else (panoramisk 1.4's
FastAGI loop spins forever on an early disconnect, which is why it is not used here): the server's
watchdog ends waits past the timeout. An unknown script or any error closes the session cleanly: the
call never fails because of clinicall.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from clinicall.keys import BUS_KEY, DB_KEY, HEALTH_KEY, SETTINGS_KEY
from clinicall.metrics import METRICS_KEY
from crm_bridge.service import CallerLookup
from telephony import identify
from telephony.agi_workers import WorkerPool
from telephony.agi_workers import health as workers_health

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_USAGE_LINES = 50


class AGIProtocolError(Exception):
    """The peer broke the protocol (closed early, timed out, sent too much)."""


@dataclass
class AGIReply:
    code: int
    result: str
    data: str | None
    line: str
    hung_up: bool = False


class AGISession(asyncio.Protocol):
    """One FastAGI connection, read without a StreamReader: the bytes Asterisk sends go into one buffer,
    the header (up to the blank line) starts the script's task, and `exchange()` (`command()` for one) sends
    commands one at a time and collects their reply lines. While the connection waits for Asterisk (the header, a reply), `until` holds the loop
    time by which it must have answered; the server's watchdog aborts it once that is past (`expire`), so a
    session arms no timer of its own: the wait fails and the session reports the timeout."""

    def __init__(self, server: FastAGIServer, header: bytes | None = None) -> None:
        self.server = server
        self.timeout = server.timeout
        self.env: dict[str, str] = {}
        self.hung_up = False
        self.until: float | None = None
        self.expired = False
        self.transport: asyncio.Transport | None = None
        self._header = header  # given when another worker read it and handed the connection over
        self._buffer = bytearray()
        self._waiter: asyncio.Future[list[tuple[str, bool]]] | None = None  # an exchange() in progress
        self._commands: list[bytes] = []  # its commands not sent yet, the next one last
        self._replies: list[tuple[str, bool]] = []
        self._hangup_before = False  # HANGUP came before the reply being read
        self._usage_lines = 0  # inside a multi-line 520 usage message: its lines read so far
        self._lost = False
        self._task: asyncio.Task[None] | None = None

    @property
    def script(self) -> str:
        return script_name(self.env.get("agi_network_script", ""))

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._sessions.add(self)
        if self._header is not None:
            self._start(self._header)
        else:
            self.until = self.server.loop_time() + self.timeout

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._task is None:  # still reading the header
            end = buffer.find(b"\n\n")
            if end < 0 or end + 2 > MAX_HEADER_BYTES:
                if len(buffer) > MAX_HEADER_BYTES:
                    self._header_failed(f"header larger than {MAX_HEADER_BYTES} bytes")
                return
            raw = bytes(buffer[:end + 2])
            del buffer[:end + 2]
            self.until = None
            self._start(raw)
            return
        if self._waiter is not None:
            self._pump()
        elif len(buffer) > 4 * MAX_HEADER_BYTES:  # nobody asked: a flood, not Asterisk
            self.transport.abort()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._task is None:
            if self.expired:
                self._header_failed(f"no complete header within {self.timeout:g} s")
            else:
                self._header_failed(f"disconnected after {len(self._buffer)} bytes, before the blank line")
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(AGIProtocolError("Asterisk closed the connection before replying"))

    def _start(self, raw: bytes) -> None:
        self.env = parse_header(raw)
        self._task = asyncio.get_running_loop().create_task(self.server._serve(self, raw))

    def _header_failed(self, why: str, outcome: str = "protocol_error") -> None:
        """The connection ended (or is ended now) before its header was complete: no script ran."""
        if self in self.server._sessions:
            self.server._sessions.discard(self)
            self.server.ended("-", outcome)
            log.info("FastAGI session from %s ended early: %s", self.peer(), why)
        if not self._lost and self.transport is not None:
            self.transport.abort()

    def expire(self) -> None:
        self.expired = True
        if self.transport is not None:
            self.transport.abort()

    # -- what scripts use
    async def command(self, line: str) -> AGIReply:
        [(reply, hung_up)] = await self.exchange([command_line(line)])
        return parse_reply(reply, hung_up)

    async def set_variable(self, name: str, value: str) -> AGIReply:
        return await self.command(set_variable_line(name, value))

    async def exchange(self, commands: list[bytes]) -> list[tuple[str, bool]]:
        """Sends each command (one line ending in LF, see `command_line`) once the reply to the one before has
        come, never two at once (res_agi reads its socket through stdio and would stall on the second), and
        returns each reply's line with whether Asterisk said HANGUP before it; a multi-line 520 usage message
        is one reply (its first line). The replies are read in data_received, which sends the next command
        itself: one wake-up of the script for all of them."""
        if not commands:
            return []
        if self._lost:
            raise AGIProtocolError("Asterisk closed the connection before the command")
        self._commands = commands[::-1]
        self._replies = []
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            self._send_next()
            if self._buffer:
                self._pump()
            return await waiter
        except (AGIProtocolError, ConnectionError) as exc:
            if self.expired:
                raise TimeoutError(f"no reply within {self.timeout:g} s") from exc
            raise
        finally:
            self._waiter = None
            self.until = None

    def _send_next(self) -> None:
        self.until = self.server.loop_time() + self.timeout
        self.transport.write(self._commands.pop())  # type: ignore[union-attr]

    def _pump(self) -> None:
        """Reads the reply lines that came in; each complete reply sends the next command or ends the exchange."""
        buffer, waiter = self._buffer, self._waiter
        assert waiter is not None
        while not waiter.done() and (end := buffer.find(b"\n")) >= 0:
            line = buffer[:end].decode("utf-8", "replace").rstrip("\r")
            del buffer[:end + 1]
            if self._usage_lines:  # the rest of a usage message, up to "520 End of proper usage."
                self._usage_lines += 1
                if line.startswith("520 ") or self._usage_lines > MAX_USAGE_LINES:
                    self._usage_lines = 0
                    self._answered()
                continue
            if line.startswith("HANGUP"):  # res_agi tells a FastAGI script once that the channel hung up
                self.hung_up = self._hangup_before = True
                continue
            self._replies.append((line, self._hangup_before))
            self._hangup_before = False
            if line.startswith("520-"):
                self._usage_lines = 1
                continue
            self._answered()
        if not waiter.done() and len(buffer) > MAX_HEADER_BYTES:
            waiter.set_exception(AGIProtocolError("reply line too long"))

    def _answered(self) -> None:
        if self._commands:
            self._send_next()
        else:
            self.until = None
            self._waiter.set_result(self._replies)  # type: ignore[union-attr]

    def close(self) -> None:
        """Closes without waiting: nothing is left to send once the last reply was read (a peer that
        stopped reading has its unsent bytes dropped)."""
        transport = self.transport
        if transport is None or self._lost:
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


def command_line(line: str) -> bytes:
    """An AGI command as sent: checked to be one line."""
    if "\n" in line or "\r" in line or "\x00" in line:
        raise ValueError("an AGI command must be one line")
    return line.encode() + b"\n"


def set_variable_line(name: str, value: str) -> str:
    quoted = value if value.isdigit() else f'"{value}"'
    return f"SET VARIABLE {name} {quoted}"


def parse_reply(line: str, hung_up: bool = False) -> AGIReply:
    code_text, _, rest = line.partition(" ")
    code = int(code_text) if code_text.isdigit() else 0
    result, data = "", None
    if rest.startswith("result="):
        value = rest[len("result="):]
        result, _, tail = value.partition(" ")
        tail = tail.strip()
        if tail.startswith("(") and tail.endswith(")"):
            data = tail[1:-1]
    return AGIReply(code, result, data, line, hung_up)


def script_name(network_script: str) -> str:
    return network_script.split("?", 1)[0].strip().strip("/").lower()


# the value without the blanks around it (what str.strip() removes, short of a line break)
HEADER_LINE = re.compile(r"^[ \t]*(agi_[A-Za-z0-9_]*)[ \t]*:[^\S\n]*(.*?)[^\S\n]*$", re.MULTILINE)


def parse_header(raw: bytes) -> dict[str, str]:
    """agi_* lines to a dict; lines without a colon or not starting with agi_ are ignored."""
    return dict(HEADER_LINE.findall(raw.decode("utf-8", "replace")))


ScriptHandler = Callable[[AGISession], Awaitable[None]]


class FastAGIMetrics:
    def __init__(self, registry: Any | None) -> None:
        self.sessions = Counter("clinicall_fastagi_sessions", "FastAGI sessions by script and outcome",
                                ["script", "outcome"], registry=registry)
        self.identify_seconds = Histogram("clinicall_fastagi_identify_seconds",
                                          "FastAGI identify: header received to last reply",
                                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                          registry=registry)
        self.active = Gauge("clinicall_fastagi_active_sessions", "FastAGI sessions in progress", registry=registry)
        self._outcomes: dict[tuple[str, str], Any] = {}

    def ended(self, script: str, outcome: str) -> None:
        """One session ended (the labelled counter's child is looked up once per label pair)."""
        child = self._outcomes.get((script, outcome))
        if child is None:
            child = self._outcomes[(script, outcome)] = self.sessions.labels(script, outcome)
        child.inc()


class FastAGIServer:
    def __init__(self, host: str, port: int, timeout: float, scripts: dict[str, ScriptHandler],
                 metrics: FastAGIMetrics, allow_remote: bool = False, reuse_port: bool = False) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.scripts = scripts
        self.metrics = metrics
        self.allow_remote = allow_remote
        self.reuse_port = reuse_port
        self.pool: WorkerPool | None = None  # the other workers on this port (serve process only)
        self.hand_over: Callable[[bytes, int], None] | None = None  # a worker: scripts it does not have
        self._server: asyncio.Server | None = None
        self._sessions: set[AGISession] = set()  # every open connection, its header read or not
        self._adopting: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.loop_time: Callable[[], float] = time.monotonic  # the running loop's clock, once started
        self.served = 0
        self.failed = 0

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        if not self.allow_remote and not await is_loopback(self.host):
            raise RuntimeError(
                f"FastAGI refuses to listen on {self.host!r}: it has no authentication, so it listens on "
                "loopback only. Set CLINICALL_TELEPHONY__AGI_HOST=127.0.0.1, or set "
                "CLINICALL_TELEPHONY__AGI_ALLOW_REMOTE=true behind a firewall that admits only Asterisk.")
        loop = asyncio.get_running_loop()
        self.loop_time = loop.time
        self._server = await loop.create_server(lambda: AGISession(self), self.host, self.port,
                                                reuse_port=self.reuse_port or None, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self.metrics.active.set_function(lambda: len(self._sessions))
        self._watchdog = asyncio.create_task(self._watch(), name="fastagi-watchdog")
        log.info("FastAGI listening on %s", self.address)

    async def _watch(self) -> None:
        """Every quarter of the timeout (at most 1 s): connections waiting for Asterisk past their deadline are
        aborted, so a wait ends at most a quarter of the timeout late."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            now = loop.time()
            for session in [s for s in self._sessions if s.until is not None and s.until <= now]:
                session.expire()

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._server is not None:
            self._server.close()
        for task in list(self._adopting):
            task.cancel()
        sessions = list(self._sessions)
        tasks = [session._task for session in sessions if session._task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for session in sessions:
            if session._task is None:
                session._header_failed("the server is stopping", "cancelled")
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def health(self) -> dict[str, Any]:
        return {"ok": self.listening, "listening": self.listening, "address": self.address,
                "active_sessions": len(self._sessions), "served": self.served, "failed": self.failed} | workers_health(self.pool)

    def ended(self, script: str, outcome: str) -> None:
        if outcome in ("ok", "unknown_script"):
            self.served += 1
        elif outcome != "handed_over":
            self.failed += 1
        self.metrics.ended(script, outcome)

    async def _serve(self, session: AGISession, raw: bytes) -> None:
        """One connection once its header is read (here, or by the worker that handed it over)."""
        script = session.script or "-"
        outcome = "ok"
        try:
            script, outcome = await self._run_script(script, session, raw)
        except AGIProtocolError as exc:
            outcome = "protocol_error"
            log.info("FastAGI session from %s ended early: %s", session.peer(), exc)
        except TimeoutError:
            outcome = "timeout"
            log.info("FastAGI session from %s timed out", session.peer())
        except (ConnectionError, OSError) as exc:
            outcome = "connection_lost"
            log.info("FastAGI session from %s lost: %s", session.peer(), exc)
        except asyncio.CancelledError:  # shutdown: end this connection quietly, the task is done
            outcome = "cancelled"
        except Exception:
            outcome = "error"
            log.exception("FastAGI script %s failed; the call goes on", script)
        finally:
            self.ended(script, outcome)
            self._sessions.discard(session)
            session.close()  # after a hand-over this drops only our copy: the connection stays open

    async def _run_script(self, script: str, session: AGISession, raw: bytes) -> tuple[str, str]:
        """(script label, outcome)"""
        handler = self.scripts.get(script)
        if handler is not None:
            await handler(session)
            return script, "ok"
        if self.hand_over is not None:  # a worker: the serve process has every room's scripts
            assert session.transport is not None
            self.hand_over(raw, session.transport.get_extra_info("socket").fileno())
            return script, "handed_over"
        log.warning("FastAGI: unknown script %r from channel %r; ending the session so the dialplan goes on",
                    session.env.get("agi_network_script", "")[:80], session.env.get("agi_channel", "")[:80])
        return "unknown", "unknown_script"

    def adopt(self, header: bytes, fd: int) -> None:
        """A connection a worker handed over (its header already read): served here like any other."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(lambda: AGISession(self, header),
                                                             sock=socket.socket(fileno=fd)), name="fastagi-adopted")
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)


async def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def identify_script(app: web.Application) -> ScriptHandler:
    """`identify`: look the caller up (batched with the calls arriving together; the audit row is
    committed with the lookup), set CALLERID(name), PATIENT_ID, CLINICALL_AGENT_EXT (or
    CLINICALL_AGENT_DIAL), pop the caller's card on the agents' screens, and end the session."""
    db, settings, directory = app[DB_KEY], app[SETTINGS_KEY], app[identify.AGENT_DIRECTORY_KEY]

    async def run(session: AGISession) -> None:
        started = time.perf_counter()
        uniqueid = session.env.get("agi_uniqueid")
        detail = identify.inbound_call_detail(uniqueid)
        lookups = app[CALLER_LOOKUP_KEY]
        identity = await identify.identify_caller(db, settings, session.env.get("agi_callerid"), directory,
                                                  lambda number: lookups.lookup(number, detail))
        await identify.publish_screenpop(app, identity, uniqueid)
        variables = identity.channel_variables()
        replies = await session.exchange([command_line(set_variable_line(name, value)) for name, value in variables])
        for (name, _), (line, _) in zip(variables, replies, strict=True):
            if line.partition(" ")[0] != "200":
                log.warning("FastAGI: Asterisk answered %r to SET VARIABLE %s", line[:120], name)
        app[FASTAGI_KEY].metrics.identify_seconds.observe(time.perf_counter() - started)

    return run


FASTAGI_KEY = web.AppKey("fastagi", FastAGIServer)
CALLER_LOOKUP_KEY = web.AppKey("caller_lookup", CallerLookup)


async def fastagi_ctx(app: web.Application, worker: bool = False) -> AsyncIterator[None]:
    """The FastAGI server (and, in the serve process with agi_workers > 1, the other workers)."""
    settings = app[SETTINGS_KEY].telephony
    shared = settings.agi_workers > 1
    metrics_holder = app.get(METRICS_KEY)
    server = FastAGIServer(settings.agi_host, settings.agi_port, settings.agi_timeout_seconds, {},
                           FastAGIMetrics(metrics_holder.registry if metrics_holder else None),
                           allow_remote=settings.agi_allow_remote, reuse_port=shared)
    server.scripts["identify"] = identify_script(app)
    app[FASTAGI_KEY] = server
    db = app[DB_KEY]
    # PostgreSQL answers several batches at once (its pool holds 10); SQLite has one writer thread
    app[CALLER_LOOKUP_KEY] = lookups = CallerLookup(db, app[SETTINGS_KEY].clinic.phone_region,
                                                    concurrency=4 if db.is_postgres else 2)
    await server.start()
    pool = None
    try:
        if shared and not worker:
            server.pool = pool = WorkerPool(app[SETTINGS_KEY], server.port, settings.agi_workers - 1, server.adopt,
                                            app[BUS_KEY].publish)
            await pool.start()
        yield
    finally:
        if pool is not None:
            await pool.close()
        await server.close()
        await lookups.close()


def setup(app: web.Application) -> None:
    """Routes for identification, and the FastAGI server when telephony.agi_enabled."""
    identify.setup(app)
    settings = app[SETTINGS_KEY].telephony
    if not settings.agi_enabled:
        async def disabled() -> dict[str, Any]:
            return {"ok": True, "enabled": False, "optional": True}

        app[HEALTH_KEY]["fastagi"] = disabled
        return

    async def health() -> dict[str, Any]:
        server = app.get(FASTAGI_KEY)
        return server.health() if server else {"ok": False, "listening": False, "error": "not started"}

    app[HEALTH_KEY]["fastagi"] = health
    app.cleanup_ctx.append(fastagi_ctx)
