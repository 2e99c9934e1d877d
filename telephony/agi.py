"""FastAGI server (asyncio): Asterisk's `AGI(agi://127.0.0.1:4573/identify)` connects here.

Protocol (res_agi, LF line endings): Asterisk sends `agi_key: value` lines and a blank line,
then waits for commands; each command gets one `200 result=...` reply line. Closing the socket
ends AGI() with AGISTATUS=SUCCESS and the dialplan goes on.

The header is read with `readuntil(b"\\n\\n")` under a timeout and a size cap, so a client that
disconnects early, stalls, or floods never blocks anyone else (panoramisk 1.4's FastAGI loop
spins forever on an early disconnect, which is why it is not used here). An unknown script or
any error closes the session cleanly: the call never fails because of clinicall.
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

from clinicall.keys import DB_KEY, HEALTH_KEY, SETTINGS_KEY
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


class Deadline:
    """A connection's wait for Asterisk (the header, a reply): `until` (loop time) while waiting, else None.
    The server's watchdog aborts a connection whose wait is overdue (`expired`), so a session arms no timer
    of its own: the read or write in progress fails, and the session reports the timeout."""

    __slots__ = ("until", "expired", "transport")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.until: float | None = None
        self.expired = False
        self.transport = transport

    def expire(self) -> None:
        self.expired = True
        self.transport.abort()


@dataclass
class AGISession:
    """One FastAGI connection after its header: `env` and `command()`."""

    env: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timeout: float
    deadline: Deadline
    hung_up: bool = False

    @property
    def script(self) -> str:
        return script_name(self.env.get("agi_network_script", ""))

    async def command(self, line: str) -> AGIReply:
        if "\n" in line or "\r" in line or "\x00" in line:
            raise ValueError("an AGI command must be one line")
        deadline = self.deadline
        deadline.until = asyncio.get_running_loop().time() + self.timeout
        try:
            self.writer.write(line.encode() + b"\n")
            await self.writer.drain()
            return await self._reply()
        except (AGIProtocolError, ConnectionError) as exc:
            if deadline.expired:
                raise TimeoutError(f"no reply within {self.timeout:g} s") from exc
            raise
        finally:
            deadline.until = None

    async def set_variable(self, name: str, value: str) -> AGIReply:
        quoted = value if value.isdigit() else f'"{value}"'
        return await self.command(f"SET VARIABLE {name} {quoted}")

    async def _read_line(self) -> str:
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise AGIProtocolError("Asterisk closed the connection before replying") from exc
        except asyncio.LimitOverrunError as exc:
            raise AGIProtocolError("reply line too long") from exc
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def _reply(self) -> AGIReply:
        hung_up = False
        line = await self._read_line()
        if line.startswith("HANGUP"):  # res_agi tells a FastAGI script once that the channel hung up
            self.hung_up = hung_up = True
            line = await self._read_line()
        if line.startswith("520-"):  # multi-line usage message, ends with "520 End of proper usage."
            for _ in range(MAX_USAGE_LINES):
                if (await self._read_line()).startswith("520 "):
                    break
            return AGIReply(520, "", None, line, hung_up)
        return parse_reply(line, hung_up)


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


HEADER_LINE = re.compile(r"^[ \t]*(agi_[A-Za-z0-9_]*)[ \t]*:(.*)$", re.MULTILINE)


def parse_header(raw: bytes) -> dict[str, str]:
    """agi_* lines to a dict; lines without a colon or not starting with agi_ are ignored."""
    return {key: value.strip() for key, value in HEADER_LINE.findall(raw.decode("utf-8", "replace"))}


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
        self._sessions: set[asyncio.Task[Any]] = set()
        self._deadlines: set[Deadline] = set()
        self._watchdog: asyncio.Task[None] | None = None
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
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_HEADER_BYTES,
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
            for deadline in [d for d in self._deadlines if d.until is not None and d.until <= now]:
                deadline.expire()

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        for task in list(self._sessions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def health(self) -> dict[str, Any]:
        return {"ok": self.listening, "listening": self.listening, "address": self.address,
                "active_sessions": len(self._sessions), "served": self.served, "failed": self.failed} | workers_health(self.pool)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      header: bytes | None = None) -> None:
        """One connection; `header` when another worker already read it and handed the connection over."""
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        script = "-"
        outcome = "ok"
        deadline = Deadline(writer.transport)
        self._deadlines.add(deadline)
        try:
            raw = header if header is not None else await self._read_header(reader, deadline)
            session = AGISession(env=parse_header(raw), reader=reader, writer=writer, timeout=self.timeout,
                                 deadline=deadline)
            script = session.script or "-"
            script, outcome = await self._run_script(script, session, raw, writer)
        except AGIProtocolError as exc:
            outcome = "protocol_error"
            log.info("FastAGI session from %s ended early: %s", _peer(writer), exc)
        except TimeoutError:
            outcome = "timeout"
            log.info("FastAGI session from %s timed out", _peer(writer))
        except (ConnectionError, OSError) as exc:
            outcome = "connection_lost"
            log.info("FastAGI session from %s lost: %s", _peer(writer), exc)
        except asyncio.CancelledError:  # shutdown: end this connection quietly, the task is done
            outcome = "cancelled"
        except Exception:
            outcome = "error"
            log.exception("FastAGI script %s failed; the call goes on", script)
        finally:
            if outcome in ("ok", "unknown_script"):
                self.served += 1
            elif outcome != "handed_over":
                self.failed += 1
            self.metrics.ended(script, outcome)
            self._deadlines.discard(deadline)
            _close(writer)  # after a hand-over this drops only our copy: the connection stays open
            if task is not None:
                self._sessions.discard(task)

    async def _run_script(self, script: str, session: AGISession, raw: bytes,
                          writer: asyncio.StreamWriter) -> tuple[str, str]:
        """(script label, outcome)"""
        handler = self.scripts.get(script)
        if handler is not None:
            await handler(session)
            return script, "ok"
        if self.hand_over is not None:  # a worker: the serve process has every room's scripts
            self.hand_over(raw, writer.get_extra_info("socket").fileno())
            return script, "handed_over"
        log.warning("FastAGI: unknown script %r from channel %r; ending the session so the dialplan goes on",
                    session.env.get("agi_network_script", "")[:80], session.env.get("agi_channel", "")[:80])
        return "unknown", "unknown_script"

    def adopt(self, header: bytes, fd: int) -> None:
        """A connection a worker handed over (its header already read): served here like any other."""
        async def serve() -> None:
            reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd), limit=MAX_HEADER_BYTES)
            await self._handle(reader, writer, header)

        task = asyncio.create_task(serve(), name="fastagi-adopted")
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _read_header(self, reader: asyncio.StreamReader, deadline: Deadline) -> bytes:
        deadline.until = asyncio.get_running_loop().time() + self.timeout
        try:
            raw = await reader.readuntil(b"\n\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if deadline.expired:
                raise AGIProtocolError(f"no complete header within {self.timeout:g} s") from exc
            if isinstance(exc, ConnectionError):
                raise
            raise AGIProtocolError(f"disconnected after {len(exc.partial)} bytes, before the blank line") from exc
        except asyncio.LimitOverrunError as exc:
            raise AGIProtocolError(f"header larger than {MAX_HEADER_BYTES} bytes") from exc
        finally:
            deadline.until = None
        return raw


def _close(writer: asyncio.StreamWriter) -> None:
    """Closes without waiting: nothing is left to send once the last reply was read (a peer that
    stopped reading has its unsent bytes dropped)."""
    with contextlib.suppress(Exception):
        transport = writer.transport
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


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
        for name, value in identity.channel_variables():
            reply = await session.set_variable(name, value)
            if reply.code != 200:
                log.warning("FastAGI: Asterisk answered %r to SET VARIABLE %s", reply.line[:120], name)
        app[FASTAGI_KEY].metrics.identify_seconds.observe(time.perf_counter() - started)

    return run


FASTAGI_KEY = web.AppKey("fastagi", FastAGIServer)
CALLER_LOOKUP_KEY = web.AppKey("caller_lookup", CallerLookup)


async def fastagi_ctx(app: web.Application, worker: bool = False) -> AsyncIterator[None]:
    """The FastAGI server (and, in the serve process with agi_workers > 1, the other workers)."""
    settings = app[SETTINGS_KEY].telephony
    shared = settings.agi_workers > 1
    if shared and not app[SETTINGS_KEY].bus.redis_url:
        raise RuntimeError("telephony.agi_workers > 1 needs the Redis bus (bus.redis_url): screen-pops from the "
                           "other FastAGI workers reach the agents' screens through it")
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
            server.pool = pool = WorkerPool(app[SETTINGS_KEY], server.port, settings.agi_workers - 1, server.adopt)
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
