"""SMPP 3.4 through smpplib. smpplib blocks, so one thread owns the client: it binds as a transceiver,
sends submit_sm (long texts as concatenated parts, UCS-2 when GSM 7-bit cannot carry them), reads
submit_sm_resp and deliver_sm receipts, keeps the link with enquire_link and re-binds after a fault.
The event loop only hands it requests and waits on futures with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from clinicall.settings import MessagingSettings
from messaging.senders.base import Accepted, Outgoing, Receipt, SendError

log = logging.getLogger(__name__)
RECEIPT_STATE = re.compile(r"\bstat:(\w+)")
RECEIPT_ID = re.compile(r"\bid:(\S+)")
DELIVERED_STATES = {"DELIVRD"}
FINAL_FAILURES = {"UNDELIV", "REJECTD", "EXPIRED", "DELETED", "UNKNOWN"}
RETRY_STATUSES = {smpplib.consts.SMPP_ESME_RTHROTTLED, smpplib.consts.SMPP_ESME_RMSGQFUL,
                  smpplib.consts.SMPP_ESME_RSYSERR}
MESSAGE_STATES = {2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 7: "UNKNOWN", 8: "REJECTD"}
ESM_RECEIPT = 0x04


@dataclass
class _Request:
    message: Outgoing
    future: asyncio.Future[Accepted]
    parts_left: int = 0
    ids: list[str] = field(default_factory=list)


def parse_receipt(pdu: Any) -> Receipt | None:
    """A deliver_sm that is an SMSC delivery receipt -> Receipt; anything else (a reply text) -> None."""
    if not (getattr(pdu, "esm_class", 0) or 0) & ESM_RECEIPT:
        return None
    body = pdu.short_message or b""
    text = body.decode("latin-1") if isinstance(body, bytes) else str(body)
    tlv_id = getattr(pdu, "receipted_message_id", None)
    gateway_id = (tlv_id.decode() if isinstance(tlv_id, bytes) else tlv_id) or \
        (m.group(1) if (m := RECEIPT_ID.search(text)) else "")
    state = m.group(1).upper() if (m := RECEIPT_STATE.search(text)) else \
        MESSAGE_STATES.get(getattr(pdu, "message_state", None) or 0, "")
    if not gateway_id or state not in DELIVERED_STATES | FINAL_FAILURES:
        return None
    return Receipt(gateway_id=gateway_id, delivered=state in DELIVERED_STATES, detail=text[:200] or state)


class SmppSender:
    name = "smpp"

    def __init__(self, settings: MessagingSettings) -> None:
        self.settings = settings
        self._outbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_receipt: Callable[[Receipt], None] = lambda r: None
        self._on_ready: Callable[[], None] = lambda: None
        self._pending: dict[int, _Request] = {}  # submit_sm sequence -> request (I/O thread only)
        self.bound = False
        self.last_error = "not connected yet"

    async def start(self, on_receipt: Callable[[Receipt], None], on_ready: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_receipt, self._on_ready = on_receipt, on_ready
        self._thread = threading.Thread(target=self._run, name="smpp-io", daemon=True)
        self._thread.start()

    async def send(self, message: Outgoing) -> Accepted:
        if not self.bound:
            raise SendError(f"SMSC {self.settings.smpp_host}:{self.settings.smpp_port} not bound: {self.last_error}",
                            retry=True, unreachable=True)
        assert self._loop is not None
        future: asyncio.Future[Accepted] = self._loop.create_future()
        self._outbox.put(_Request(message, future))
        self._wake()
        try:
            return await asyncio.wait_for(future, self.settings.timeout_seconds)
        except TimeoutError:
            raise SendError(f"no submit_sm_resp within {self.settings.timeout_seconds:g} s", retry=True) from None

    def health(self) -> dict[str, Any]:
        return {"ok": self.bound, "adapter": self.name,
                "detail": f"bound to {self.settings.smpp_host}:{self.settings.smpp_port}" if self.bound
                else self.last_error}

    async def close(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.settings.timeout_seconds + 2)
        self._wake_r.close()
        self._wake_w.close()

    # ---- the I/O thread ----------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(fn, *args)

    def _resolve(self, request: _Request, result: Accepted | SendError) -> None:
        def settle() -> None:
            if request.future.done():
                return
            if isinstance(result, SendError):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)
        self._call(settle)

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            client = self._client()
            try:
                self._connect(client)
                delay = 0.2
                self._serve(client)
            except Exception as exc:  # the thread outlives any fault: the link is rebuilt
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("SMPP link to %s:%s: %s", self.settings.smpp_host, self.settings.smpp_port, self.last_error,
                            exc_info=not isinstance(exc, smpplib.exceptions.ConnectionError | smpplib.exceptions.PDUError
                                                    | OSError))
            finally:
                self.bound = False
                self._fail_pending("SMSC link lost")
                self._disconnect(client)
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def _client(self) -> smpplib.client.Client:
        client = smpplib.client.Client(self.settings.smpp_host, self.settings.smpp_port,
                                       timeout=self.settings.timeout_seconds, allow_unknown_opt_params=True)
        client.set_message_sent_handler(self._submitted)
        client.set_message_received_handler(self._delivered)
        client.set_error_pdu_handler(lambda pdu: None)  # submit_sm_resp errors are read in _submitted
        return client

    def _connect(self, client: smpplib.client.Client) -> None:
        client.connect()
        s = self.settings
        client.bind_transceiver(system_id=s.smpp_system_id, password=s.smpp_password, system_type=s.smpp_system_type)
        self.bound, self.last_error = True, ""
        log.info("SMPP bound to %s:%s as %r", s.smpp_host, s.smpp_port, s.smpp_system_id)
        self._call(self._on_ready)

    def _serve(self, client: smpplib.client.Client) -> None:
        last_traffic = time.monotonic()
        while not self._stop.is_set():
            self._submit_waiting(client)
            idle = self.settings.smpp_enquire_link_seconds - (time.monotonic() - last_traffic)
            if idle <= 0:
                client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
                last_traffic = time.monotonic()
                continue
            readable, _, _ = select.select([client._socket, self._wake_r], [], [], idle)
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)
            if client._socket in readable:
                client.read_once(auto_send_enquire_link=False)
                last_traffic = time.monotonic()
        with contextlib.suppress(Exception):
            client.unbind()

    def _submit_waiting(self, client: smpplib.client.Client) -> None:
        while True:
            try:
                request = self._outbox.get_nowait()
            except queue.Empty:
                return
            if request.future.done():  # timed out before it left
                continue
            try:
                parts, coding, esm_class = smpplib.gsm.make_parts(request.message.text)
            except Exception as exc:  # a text smpplib cannot encode: refused, the link stays up
                self._resolve(request, SendError(f"cannot encode the text: {exc!r}"[:300], retry=False))
                continue
            request.parts_left = len(parts)
            for part in parts:
                pdu = client.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_ALNUM if not self.settings.smpp_source_addr.isdigit()
                    else smpplib.consts.SMPP_TON_INTL,
                    source_addr_npi=smpplib.consts.SMPP_NPI_ISDN, source_addr=self.settings.smpp_source_addr,
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                    destination_addr=request.message.to_e164.lstrip("+"), short_message=part,
                    data_coding=coding, esm_class=esm_class, registered_delivery=True)
                self._pending[pdu.sequence] = request

    def _submitted(self, pdu: Any) -> None:
        request = self._pending.pop(pdu.sequence, None)
        if request is None:
            return
        if pdu.is_error():
            status = int(pdu.status)
            reply = f"submit_sm_resp status 0x{status:08x}: {smpplib.consts.DESCRIPTIONS.get(status, 'unknown')}"
            self._drop(request)
            self._resolve(request, SendError(reply, retry=status in RETRY_STATUSES))
            return
        message_id = pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else str(pdu.message_id or "")
        request.ids.append(message_id)
        request.parts_left -= 1
        if request.parts_left == 0:
            self._resolve(request, Accepted(gateway_ids=list(request.ids),
                                            reply=f"submit_sm_resp OK, message_id {', '.join(request.ids)}"))

    def _drop(self, request: _Request) -> None:
        for sequence in [seq for seq, r in self._pending.items() if r is request]:
            del self._pending[sequence]

    def _delivered(self, pdu: Any, **_: Any) -> int:
        receipt = parse_receipt(pdu)
        if receipt is not None:
            self._call(self._on_receipt, receipt)
        return smpplib.consts.SMPP_ESME_ROK

    def _fail_pending(self, reason: str) -> None:
        for request in list(self._pending.values()):
            self._resolve(request, SendError(f"{reason}: {self.last_error}", retry=True, unreachable=True))
        self._pending.clear()
        while True:
            try:
                request = self._outbox.get_nowait()
            except queue.Empty:
                break
            self._resolve(request, SendError(f"{reason}: {self.last_error}", retry=True, unreachable=True))

    @staticmethod
    def _disconnect(client: smpplib.client.Client) -> None:
        with contextlib.suppress(Exception):
            client.disconnect()
