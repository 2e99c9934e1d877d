"""A small SMSC for the tests and the bench: an asyncio SMPP 3.4 server speaking real PDUs over TCP
(bind_transceiver, submit_sm, deliver_sm delivery receipts, enquire_link, unbind), written from the
specification, independent of smpplib (which the client side uses)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from dataclasses import dataclass, field

BIND_TRANSCEIVER, SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x09, 0x04, 0x05, 0x06, 0x15
RESP = 0x80000000
GENERIC_NACK = 0x80000000
ESME_ROK, ESME_RINVBNDSTS, ESME_RBINDFAIL, ESME_RSUBMITFAIL = 0x00, 0x04, 0x0D, 0x45
TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE = 0x001E, 0x0427


@dataclass
class Submitted:
    source: str
    destination: str
    text: str  # the part's text (UDH removed, UCS-2 or GSM decoded)
    data_coding: int
    esm_class: int
    registered_delivery: int
    message_id: str
    udh: bytes = b""


def cstring(body: bytes, at: int) -> tuple[str, int]:
    end = body.index(b"\0", at)
    return body[at:end].decode("latin-1"), end + 1


def pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def parse_submit(body: bytes, message_id: str) -> Submitted:
    _service_type, at = cstring(body, 0)
    at += 2  # source ton, npi
    source, at = cstring(body, at)
    at += 2
    destination, at = cstring(body, at)
    esm_class = body[at]
    at += 3  # esm_class, protocol_id, priority_flag
    _schedule, at = cstring(body, at)
    _validity, at = cstring(body, at)
    registered_delivery, data_coding = body[at], body[at + 2]
    length = body[at + 4]
    short = body[at + 5:at + 5 + length]
    udh = b""
    if esm_class & 0x40:  # a user data header (concatenation) comes first
        udh, short = short[:1 + short[0]], short[1 + short[0]:]
    text = short.decode("utf-16-be") if data_coding == 8 else short.decode("latin-1")
    return Submitted(source, destination, text, data_coding, esm_class, registered_delivery, message_id, udh)


def receipt_body(sub: Submitted, state: str) -> bytes:
    text = f"id:{sub.message_id} sub:001 dlvrd:{'001' if state == 'DELIVRD' else '000'} submit date:2612011200 " \
           f"done date:2612011200 stat:{state} err:000 text:".encode()
    state_code = {"DELIVRD": 2, "EXPIRED": 3, "UNDELIV": 5, "REJECTD": 8}.get(state, 7)
    body = b"\0" + bytes([1, 1]) + sub.destination.encode() + b"\0" + bytes([1, 1]) + sub.source.encode() + b"\0"
    body += bytes([0x04, 0, 0]) + b"\0\0" + bytes([0, 0, 0, 0, len(text)]) + text
    body += struct.pack(">HH", TLV_RECEIPTED_MESSAGE_ID, len(sub.message_id) + 1) + sub.message_id.encode() + b"\0"
    body += struct.pack(">HHB", TLV_MESSAGE_STATE, 1, state_code)
    return body


@dataclass
class Smsc:
    system_id: str = "clinicall"
    password: str = "secret"
    receipt_state: str | None = "DELIVRD"  # None: no receipts
    submit_status: int = ESME_ROK  # a refusal for every submit_sm when not ROK
    submitted: list[Submitted] = field(default_factory=list)
    binds: int = 0
    unbinds: int = 0
    enquire_links: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    changed: asyncio.Condition | None = None

    async def start(self, port: int = 0) -> int:
        self.changed = asyncio.Condition()
        self._server = await asyncio.start_server(self._session, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """The SMSC goes away: listening stops and every link drops."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, predicate: object, limit: float = 30.0) -> None:
        assert self.changed is not None
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), limit)  # type: ignore[arg-type]

    async def _notify(self) -> None:
        assert self.changed is not None
        async with self.changed:
            self.changed.notify_all()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        bound, sequence = False, itertools.count(1)
        try:
            while True:
                header = await reader.readexactly(16)
                length, command_id, _status, seq = struct.unpack(">IIII", header)
                body = await reader.readexactly(length - 16)
                if command_id == BIND_TRANSCEIVER:
                    system_id, at = cstring(body, 0)
                    password, _ = cstring(body, at)
                    ok = system_id == self.system_id and password == self.password
                    bound = ok
                    self.binds += ok
                    writer.write(pdu(command_id | RESP, ESME_ROK if ok else ESME_RBINDFAIL, seq, b"smsc\0"))
                elif command_id == ENQUIRE_LINK:
                    self.enquire_links += 1
                    writer.write(pdu(command_id | RESP, ESME_ROK, seq))
                elif command_id == UNBIND:
                    self.unbinds += 1
                    writer.write(pdu(command_id | RESP, ESME_ROK, seq))
                    await writer.drain()
                    await self._notify()
                    break
                elif command_id == SUBMIT_SM:
                    await self._submit(writer, bound, seq, body, sequence)
                elif command_id & RESP:  # deliver_sm_resp, enquire_link_resp
                    pass
                else:
                    writer.write(pdu(GENERIC_NACK, 0x03, seq))
                await writer.drain()
                await self._notify()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _submit(self, writer: asyncio.StreamWriter, bound: bool, seq: int, body: bytes,
                      sequence: itertools.count) -> None:
        if not bound:
            writer.write(pdu(SUBMIT_SM | RESP, ESME_RINVBNDSTS, seq))
            return
        if self.submit_status != ESME_ROK:
            writer.write(pdu(SUBMIT_SM | RESP, self.submit_status, seq))
            return
        message_id = f"smsc{next(self._ids):06d}"
        sub = parse_submit(body, message_id)
        self.submitted.append(sub)
        writer.write(pdu(SUBMIT_SM | RESP, ESME_ROK, seq, message_id.encode() + b"\0"))
        if self.receipt_state and sub.registered_delivery & 1:
            writer.write(pdu(DELIVER_SM, ESME_ROK, 0x7000_0000 + next(sequence), receipt_body(sub, self.receipt_state)))

    def texts_to(self, destination: str) -> list[str]:
        """Whole texts as the handset shows them: concatenated parts (UDH IEI 0: ref, total, seq) joined."""
        texts: list[str] = []
        pending: dict[int, dict[int, str]] = {}
        for sub in (s for s in self.submitted if s.destination == destination):
            if len(sub.udh) >= 6 and sub.udh[1] == 0:
                ref, total, seq = sub.udh[3], sub.udh[4], sub.udh[5]
                pending.setdefault(ref, {})[seq] = sub.text
                if len(pending[ref]) == total:
                    parts = pending.pop(ref)
                    texts.append("".join(parts[i] for i in range(1, total + 1)))
            else:
                texts.append(sub.text)
        return texts
