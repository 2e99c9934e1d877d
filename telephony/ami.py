"""The AMI link: one panoramisk 1.4 Manager, built inside the running loop, with our own guards.

- Login uses ActionID `login-1` on every connection; reconnects back off (0.5 s doubling to
  `reconnect_max_seconds`) and reset after a successful login.
- Originate, Hangup and MixMonitor are written by `send_own` straight to the transport, through
  `wire.encode_action` (the one place that validates fields). They never enter panoramisk's
  response table, so panoramisk can never re-send them after a reconnect; as a second guard,
  any Originate panoramisk queued for re-sending is dropped. An Originate that Asterisk had not
  acknowledged when the link dropped is marked failed, never sent again.
- Every event (OriginateResponse included: it carries our ActionID and would otherwise be
  swallowed by the action's future) goes, in order, through one queue to the call log.
- On FullyBooted the link asks CoreShowChannels and the call log recovers calls that were in progress:
  live channels, then Asterisk's CEL records (when a CEL database is configured), then `interrupted`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager

from telephony.calllog import CallLog
from telephony.wire import Header, encode_action

log = logging.getLogger(__name__)
LOGIN_ACTION_ID = "login-1"


def as_event(message: Any) -> dict[str, str]:
    """panoramisk Message -> plain dict (first value of repeated headers)."""
    return {str(k): (v[0] if isinstance(v, list) and v else str(v)) for k, v in message.items()}


@dataclass
class PendingAction:
    call_id: int | None
    action: str
    sent_at: float
    acknowledged: bool = False
    recording_path: str | None = None


class LinkProtocol(AMIProtocol):
    """AMIProtocol that routes messages for our own actions to the link, then behaves as usual."""

    def data_received(self, data: bytes) -> None:
        """panoramisk decodes each read on its own and drops what does not decode: a character cut between two
        TCP reads (a caller's name in Vietnamese, an emoji) would be lost. Whole characters only go on."""
        decoder = getattr(self, "_decoder", None)
        if decoder is None:
            decoder = self._decoder = codecs.getincrementaldecoder(getattr(self, "encoding", "utf-8"))("replace")
        text = decoder.decode(data)
        if text:
            super().data_received(text.encode(getattr(self, "encoding", "utf-8")))

    def handle_message(self, message: Any) -> None:
        """Never lets one odd message (say a repeated Event header) kill the connection."""
        link: AmiLink | None = getattr(self.factory, "link", None)
        if link is not None:
            link.last_heard = time.time()  # any message, a Ping's answer too: Asterisk was alive then
        try:
            for key in ("Event", "Response", "ActionID"):
                if isinstance(message.get(key), list):
                    message[key] = message[key][0]
            self._route(message)
        except Exception:
            log.exception("AMI message not handled: %r", message)

    def _route(self, message: Any) -> None:
        factory = self.factory
        link: AmiLink | None = getattr(factory, "link", None)
        action_id = message.get("ActionID") if hasattr(message, "get") else None
        if (link is not None and not factory.authenticated and message.get("Response") == "Error"
                and "authentication" in str(message.get("Message", "")).lower()):
            link.set_state("auth_failed", str(message.get("Message")))
        if link is not None and action_id and action_id in link.pending:
            link.own_message(message)
            if "event" in message:
                factory.dispatch(message)
            return
        super().handle_message(message)

    def close(self) -> None:
        super().close()
        factory = self.factory
        if factory is not None:
            kept = [a for a in factory.awaiting_actions if str(a.get("action", "")).lower() != "originate"]
            if len(kept) != len(factory.awaiting_actions):
                log.warning("dropped %d Originate(s) panoramisk wanted to re-send",
                            len(factory.awaiting_actions) - len(kept))
            factory.awaiting_actions = deque(kept)


class LinkManager(Manager):
    """panoramisk Manager with back-off, a known login ActionID and callbacks into the link."""

    def __init__(self, link: AmiLink, **config: Any) -> None:
        super().__init__(protocol_factory=LinkProtocol, **config)
        self.link = link
        self.closing = False
        self.delay = link.min_delay
        self._reconnect: asyncio.TimerHandle | None = None

    def _schedule_reconnect(self) -> None:
        if self.closing:
            return
        delay, self.delay = self.delay, min(self.delay * 2, self.link.max_delay)
        self.link.next_attempt_in = delay
        self._reconnect = self.loop.call_later(delay, self._reconnect_now)

    def _reconnect_now(self) -> None:
        self._reconnect = None
        if not self.closing:
            self.link.attempts += 1
            self.connect()

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if getattr(self, "protocol", None):
            self.protocol.close()
        try:
            _transport, protocol = f.result()
        except OSError as exc:
            self.link.set_state("down", f"cannot connect: {exc}")
            self._schedule_reconnect()
            return
        if self.closing:
            protocol.close()
            return
        self._connected = True
        self.protocol = protocol
        protocol.queue = deque()
        protocol.factory = self
        protocol.log = self.log
        protocol.config = self.config
        protocol.encoding = self.encoding = self.config["encoding"]
        self.responses = protocol.responses = {}
        self.link.connected()
        self.authenticated = False
        self.authenticated_future = self.send_action({
            "Action": "Login", "Username": self.config["username"], "Secret": self.config["secret"],
            "ActionID": LOGIN_ACTION_ID, "Events": self.config["events"]})
        self.authenticated_future.add_done_callback(self.login)
        self.pinger = self.loop.call_later(self.ping_delay, self.ping)

    def login(self, future: asyncio.Future[Any]) -> bool:
        ok = bool(super().login(future))
        if ok:
            self.delay = self.link.min_delay
            self.link.logged_in()
        else:
            message = future.result().get("Message", "login refused")
            self.link.set_state("auth_failed", str(message))
        return ok

    def ping(self) -> None:
        if self.protocol is not None and not getattr(self.protocol, "closed", True):
            super().ping()

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.link.disconnected(exc)
        self._schedule_reconnect()

    def close(self) -> None:
        self.closing = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            self._reconnect = None
        super().close()


class AmiLink:
    def __init__(self, *, host: str, port: int, username: str, secret: str, calllog: CallLog,
                 min_delay: float = 0.5, max_delay: float = 30.0, demo: bool = False, metrics: Any = None) -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.calllog = calllog
        self.min_delay, self.max_delay = min_delay, max_delay
        self.demo = demo
        self.metrics = metrics
        self.state = "starting"
        self.history: deque[str] = deque(maxlen=100)
        self.detail = ""
        self.since = time.time()
        self.connected_at = 0.0
        self.last_heard: float | None = None  # when the last message of any kind came from Asterisk
        self.attempts = 0
        self.reconnects = 0
        self.session_logged_in = False
        self.next_attempt_in: float | None = None
        self.pending: dict[str, PendingAction] = {}
        self.sent: list[bytes] = []  # last actions written, for diagnostics (bounded)
        self.manager: LinkManager | None = None
        self._queue: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue()
        self._cel_retry_queued = False  # at most one CEL re-read waits in the queue
        self._consumer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ever_ready = asyncio.Event()
        self.became_ready = asyncio.Event()

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.manager = LinkManager(self, host=self.host, port=self.port, username=self.username,
                                   secret=self.secret, loop=loop, ping_delay=10, ping_interval=10)
        self.manager.register_event("*", self._on_event)
        self._consumer = asyncio.create_task(self._consume(), name="ami-events")
        retry = asyncio.create_task(self._retry_cel(), name="ami-cel-retry")
        self._tasks.add(retry)
        self.set_state("connecting")
        self.attempts = 1
        self.manager.connect()

    async def stop(self) -> None:
        if self.manager is not None:
            self.manager.close()
        for task in [self._consumer, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.set_state("stopped")

    async def drain(self) -> None:
        """Wait until every event received so far has gone through the call log (tests, bench)."""
        await self._queue.join()

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def set_state(self, state: str, detail: str = "") -> None:
        if state != self.state:
            log.info("AMI link %s:%s %s %s", self.host, self.port, state, detail)
            self.since = time.time()
            self.history.append(state)
        self.state, self.detail = state, detail
        if self.metrics is not None:
            self.metrics.ami_up.set(1 if state == "ready" else 0)
        if state != "ready":
            self.became_ready.clear()

    def health(self) -> dict[str, Any]:
        # a standby instance is healthy: another instance on the same database holds the link
        return {"ok": self.ready or self.state == "standby", "configured": True, "demo": self.demo, "state": self.state,
                "detail": self.detail, "host": self.host, "port": self.port,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
                "reconnects": self.reconnects, "pending_originates": sum(
                    1 for p in self.pending.values() if p.action == "Originate"),
                "events": self.calllog.events_seen, "events_set_aside_or_truncated": self.calllog.problems}

    # ---- callbacks from the manager --------------------------------------------------------------
    def connected(self) -> None:
        self.connected_at = time.time()
        self.set_state("logging_in")

    def logged_in(self) -> None:
        # Login can be accepted before FullyBooted (Asterisk still booting); ready comes with FullyBooted.
        self.session_logged_in = True
        if self.state == "logging_in":
            self.set_state("booting")

    def disconnected(self, exc: Any) -> None:
        if self.state != "auth_failed":
            shutdown = hasattr(exc, "get") and exc.get("Event") == "Shutdown"
            self.set_state("down", "Asterisk shut down" if shutdown
                           else f"connection lost: {exc}" if exc else "connection closed")
        self.session_logged_in = False
        self.calllog.link_lost(self.last_heard)
        self.reconnects += 1  # connections lost (each one is followed by a reconnect attempt)
        if self.metrics is not None:
            self.metrics.ami_reconnects.inc()
        for action_id, pending in list(self.pending.items()):
            if pending.action == "Originate" and not pending.acknowledged:
                self.pending.pop(action_id)
                if pending.call_id is not None:
                    self._queue.put_nowait(("not_confirmed", pending.call_id, time.time()))
            elif pending.action != "Originate":
                self.pending.pop(action_id)

    def _on_event(self, _manager: Any, message: Any) -> None:
        received = time.time()
        ev = as_event(message)
        if self.metrics is not None:
            self.metrics.ami_events.inc()
        kind = ev.get("Event")
        if kind == "FullyBooted":
            self._queue.put_nowait(("booted", ev, received))
        elif kind == "Shutdown":
            self._queue.put_nowait(("shutdown", ev, received))
        else:
            self._queue.put_nowait(("event", ev, received))

    async def _consume(self) -> None:
        """Events in arrival order; consecutive events go to the call log as one batch (one transaction)."""
        while True:
            items = [await self._queue.get()]
            while len(items) < 500 and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                batch: list[tuple[dict[str, str], float]] = []
                for kind, item, received in items:
                    if kind == "event":
                        batch.append((item, received))
                        continue
                    if batch:
                        await self._handle_batch(batch)
                        batch = []
                    await self._control(kind, item)
                if batch:
                    await self._handle_batch(batch)
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _retry_cel(self) -> None:
        """While a recovery could not read Asterisk's CEL database, it is read again now and then, in event order."""
        while True:
            await asyncio.sleep(self.calllog.settings.cel_retry_seconds)
            if self.calllog.cel_owed and not self._cel_retry_queued:
                self._cel_retry_queued = True
                self._queue.put_nowait(("cel_retry", None, time.time()))

    async def _handle_batch(self, batch: list[tuple[dict[str, str], float]]) -> None:
        try:
            await self.calllog.handle_batch(batch)
        except Exception:
            log.exception("call log failed on %d AMI event(s)", len(batch))

    async def _control(self, kind: str, item: Any) -> None:
        try:
            if kind == "booted":
                await self._booted()
            elif kind == "shutdown":
                await self.calllog.asterisk_shutdown()
            elif kind == "reconcile":
                live, since, channel_events, asked = item
                ended = await self.calllog.reconcile(live, since, channel_events, asked)
                if ended:
                    log.info("recovered after (re)connect: calls %s interrupted (no live channel, no recorded end)",
                             ended)
            elif kind == "cel_retry":
                self._cel_retry_queued = False
                await self.calllog.retry_cel()
            elif kind == "not_confirmed":
                await self.calllog.originate_not_confirmed(item)
            elif kind == "rejected":
                call_id, message = item
                await self.calllog.originate_rejected(call_id, message)
        except Exception:
            log.exception("AMI %s handling failed", kind)

    async def _booted(self) -> None:
        """FullyBooted: the link is ready at once; CoreShowChannels runs beside it and its answer
        is reconciled in event order."""
        if self.state not in ("booting", "logging_in", "ready"):
            return
        self.set_state("ready")
        self.ever_ready.set()
        self.became_ready.set()
        task = asyncio.create_task(self._ask_channels(self.connected_at), name="ami-reconcile")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ask_channels(self, since: float) -> None:
        live: set[str] = set()
        channel_events: list[dict[str, str]] = []
        asked = time.time()
        try:
            assert self.manager is not None
            future = self.manager.send_action({"Action": "CoreShowChannels"}, as_list=True)
            replies = await asyncio.wait_for(future, timeout=10)
        except Exception as exc:  # reconcile is best effort: the link is usable without it
            log.warning("CoreShowChannels after FullyBooted failed: %r", exc)
            return
        for reply in replies if isinstance(replies, list) else [replies]:
            ev = as_event(reply)
            if ev.get("Event") == "CoreShowChannel":
                channel_events.append(ev)
                live.update(v for v in (ev.get("Uniqueid"), ev.get("Linkedid")) if v)
        self._queue.put_nowait(("reconcile", (live, since, channel_events, asked), time.time()))

    # ---- our own actions ------------------------------------------------------------------------
    def own_message(self, message: Any) -> None:
        ev = as_event(message)
        action_id = ev.get("ActionID", "")
        pending = self.pending.get(action_id)
        if pending is None:
            return
        if "Response" in ev and "Event" not in ev:
            if ev["Response"] in ("Success", "Goodbye"):
                pending.acknowledged = True
                if pending.action != "Originate":
                    self.pending.pop(action_id, None)
            else:
                self.pending.pop(action_id, None)
                if self.metrics is not None and pending.action == "Originate":
                    self.metrics.originates.labels("refused").inc()
                if pending.action == "Originate" and pending.call_id is not None:
                    self._queue.put_nowait(("rejected", (pending.call_id, ev.get("Message", "error")), time.time()))
                else:
                    log.warning("AMI %s refused: %s", pending.action, ev.get("Message"))
        elif ev.get("Event") == "OriginateResponse":
            self.pending.pop(action_id, None)
            if self.metrics is not None:
                self.metrics.originates.labels("success" if ev.get("Response") == "Success" else "failure").inc()
            if ev.get("Response") == "Success" and pending.recording_path and ev.get("Channel"):
                with contextlib.suppress(Exception):
                    self.send_own([("Action", "MixMonitor"), ("Channel", ev["Channel"]),
                                   ("File", pending.recording_path), ("ActionID", f"{action_id}-rec")],
                                  call_id=pending.call_id)

    def send_own(self, headers: Sequence[Header], call_id: int | None = None,
                 recording_path: str | None = None) -> bytes:
        """Validate and write one action; raises ConnectionError when the link is not up."""
        data = encode_action(headers)
        action_id = next((v for k, v in headers if k == "ActionID"), None)
        action = headers[0][1]
        manager = self.manager
        protocol = getattr(manager, "protocol", None)
        if manager is None or protocol is None or getattr(protocol, "closed", True) or not self.ready:
            raise ConnectionError("the AMI link is not connected")
        if action_id:
            self.pending[action_id] = PendingAction(call_id, action, time.time(), recording_path=recording_path)
        protocol.transport.write(data)
        self.sent.append(data)
        del self.sent[:-50]
        return data

    async def wait_ready(self, seconds: float = 10.0) -> None:
        await asyncio.wait_for(self.became_ready.wait(), seconds)
