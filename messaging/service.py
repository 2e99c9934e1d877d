"""messaging's operations (the only place that writes its tables and publishes): store a message,
hand due ones to the dispatcher, record what the gateway said, apply delivery receipts, the message
lists, and "your turn is near". Other rooms call `MessagingService.send` (docs/messaging.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.bus import Bus
from clinicall.db import Database, utcnow
from clinicall.problem import Problem
from clinicall.settings import Settings
from crm_bridge import service as crm
from messaging.checks import checked_number, checked_text, one_line
from messaging.events import MESSAGE_UPDATED
from messaging.models import Message, MessagePart, TurnNearOptIn
from messaging.senders.base import Accepted, Receipt, SendError
from messaging.turn_near import TurnNearChannel

log = logging.getLogger(__name__)
EARLY_RECEIPTS = 1000  # receipts that overtook their submit's record, kept until it lands
NO_GATEWAY = "no gateway configured"


@dataclass(frozen=True)
class StoredMessage:
    id: int
    created_at: dt.datetime
    patient_id: int | None
    to_e164: str
    text: str
    template_id: int | None
    sent_by: int | None
    origin: str
    status: str
    adapter: str
    attempts: int
    gateway_id: str
    gateway_reply: str
    next_attempt_at: dt.datetime
    sent_at: dt.datetime | None
    done_at: dt.datetime | None
    send_text: str | None = field(default=None, repr=False)  # for the sender only, never shown

    @classmethod
    def of(cls, row: Message) -> StoredMessage:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})

    @property
    def outgoing_text(self) -> str:
        return self.send_text or self.text

    def json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["send_text"]
        for key in ("created_at", "next_attempt_at", "sent_at", "done_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


@dataclass(frozen=True)
class LogFilter:
    status: str | None = None
    origin: str | None = None
    patient_id: int | None = None
    day_from: dt.datetime | None = None
    day_to: dt.datetime | None = None
    limit: int = 200


class MessagingService:
    """One per app (MESSAGING_KEY). `send` is the API other rooms use."""

    def __init__(self, db: Database, bus: Bus, settings: Settings,
                 turn_near_channel: TurnNearChannel | None = None) -> None:
        self.db, self.bus, self.settings = db, bus, settings
        self.turn_near_channel = turn_near_channel  # None: the turn-near text goes as an SMS
        self.wakeup = asyncio.Event()  # the dispatcher sleeps on it
        self._receipts_lock = asyncio.Lock()
        self._early: OrderedDict[str, Receipt] = OrderedDict()

    @property
    def adapter(self) -> str:
        return self.settings.messaging.adapter

    # ---- storing -----------------------------------------------------------------------------

    async def send(self, *, text: str, to: str | None = None, patient_id: int | None = None,
                   template_id: int | None = None, origin: str = "agent", sent_by: int | None = None,
                   not_before: dt.datetime | None = None) -> StoredMessage:
        """Checks the text and the number (click-to-call's policy; default: the patient's first phone),
        stores the message as queued and wakes the dispatcher. Raises Problem (422 text, 400 number, 404
        patient). The message is sent in the background, not before `not_before`; its status follows on
        `message.updated`."""
        text = checked_text(text, self.settings.messaging.max_length)
        if to is None:
            to = await self._patient_number(patient_id)
        e164 = checked_number(to, self.settings)
        shown = crm.mask_one_time_passwords(text)
        async with self.db.transaction() as s:
            row = Message(patient_id=patient_id, to_e164=e164, text=shown, template_id=template_id,
                          send_text=text if shown != text else None,
                          sent_by=sent_by, origin=origin[:64], status="queued", adapter="", attempts=0,
                          next_attempt_at=max(utcnow(), not_before) if not_before else utcnow(), gateway_id="",
                          gateway_reply="")
            s.add(row)
            await s.flush()
            stored = StoredMessage.of(row)
        await self._publish(stored)
        self.wakeup.set()
        return stored

    async def send_template(self, *, template_id: int, patient_id: int, sent_by: int | None,
                            origin: str = "agent") -> StoredMessage:
        """Renders the template for the patient ({fullName}, {phone}, ...) and sends it as one line."""
        rendered = await crm.render_template(self.db, template_id, patient_id, self.settings.clinic.name)
        return await self.send(text=one_line(rendered["text"]), patient_id=rendered["patient_id"],
                               template_id=template_id, origin=origin, sent_by=sent_by)

    async def _patient_number(self, patient_id: int | None) -> str:
        brief = await crm.patient_brief(self.db, patient_id) if patient_id else None
        if brief is None:
            raise Problem(404, "Patient not found", "No patient with that id exists; search for the patient again.")
        if not brief.phones:
            raise Problem(400, "Number not allowed", "The patient has no phone number; add one on the card.",
                          code="number_not_allowed")
        return brief.phones[0].e164

    async def _publish(self, message: StoredMessage) -> None:
        await self.bus.publish(MESSAGE_UPDATED, {"message": message.json(), "patient_id": message.patient_id})

    # ---- reading -----------------------------------------------------------------------------

    async def get(self, message_id: int) -> StoredMessage | None:
        async with self.db.session() as s:
            row = await s.get(Message, message_id)
        return StoredMessage.of(row) if row else None

    async def for_patient(self, patient_id: int, limit: int = 50) -> list[StoredMessage]:
        async with self.db.session() as s:
            rows = await s.scalars(select(Message).where(Message.patient_id == patient_id)
                                   .order_by(Message.id.desc()).limit(limit))
            return [StoredMessage.of(r) for r in rows]

    async def log(self, f: LogFilter) -> list[StoredMessage]:
        query = select(Message).order_by(Message.id.desc()).limit(f.limit)
        for column, value in ((Message.status, f.status), (Message.patient_id, f.patient_id)):
            if value is not None:
                query = query.where(column == value)
        if f.origin:
            query = query.where(Message.origin.startswith(f.origin, autoescape=True))
        if f.day_from:
            query = query.where(Message.created_at >= f.day_from)
        if f.day_to:
            query = query.where(Message.created_at < f.day_to)
        async with self.db.session() as s:
            return [StoredMessage.of(r) for r in await s.scalars(query)]

    async def counts(self) -> dict[str, int]:
        async with self.db.session() as s:
            rows = await s.execute(select(Message.status, func.count()).group_by(Message.status))
            return {status: count for status, count in rows}

    # ---- the dispatcher's side ---------------------------------------------------------------

    async def claim_due(self, limit: int, lease_seconds: float) -> list[StoredMessage]:
        """Queued messages whose time has come, each leased to this instance by a conditional update
        (another instance, or this one after a crash, takes it again only when the lease has run out)."""
        now = utcnow()
        free = or_(Message.lease_until.is_(None), Message.lease_until < now)
        due = and_(Message.status == "queued", Message.next_attempt_at <= now, free)
        claimed = []
        async with self.db.transaction() as s:
            ids = list(await s.scalars(select(Message.id).where(due).order_by(Message.next_attempt_at, Message.id)
                                       .limit(limit)))
            for message_id in ids:
                result = await s.execute(update(Message).where(Message.id == message_id, due).values(
                    lease_until=now + dt.timedelta(seconds=lease_seconds), attempts=Message.attempts + 1))
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(message_id)
            rows = await s.scalars(select(Message).where(Message.id.in_(claimed))) if claimed else []
            return [StoredMessage.of(r) for r in rows]

    async def next_due_in(self) -> float | None:
        """Seconds until the next queued message may be tried: a free one at its time, a leased one when its
        lease runs out (None: none waits)."""
        now = utcnow()
        queued = Message.status == "queued"
        async with self.db.session() as s:
            free = await s.scalar(select(func.min(Message.next_attempt_at)).where(
                queued, or_(Message.lease_until.is_(None), Message.lease_until < now)))
            leased = await s.scalar(select(func.min(Message.lease_until)).where(queued, Message.lease_until >= now))
        times = [t for t in (free, leased) if t is not None]
        return max(0.0, (min(times) - now).total_seconds()) if times else None

    async def record_accepted(self, message_id: int, adapter: str, accepted: Accepted) -> None:
        async with self._receipts_lock:
            async with self.db.transaction() as s:
                row = await s.get(Message, message_id)
                if row is None:
                    return
                row.status, row.adapter, row.lease_until, row.send_text = "sent", adapter, None, None
                row.gateway_id = accepted.gateway_ids[0] if accepted.gateway_ids else ""
                row.gateway_reply, row.sent_at = crm.mask_one_time_passwords(accepted.reply[:2000]), utcnow()
                for gateway_id in accepted.gateway_ids:
                    s.add(MessagePart(message_id=row.id, gateway_id=gateway_id[:100], status="sent", receipt=""))
                stored = StoredMessage.of(row)
            await self._publish(stored)
            for receipt in [self._early.pop(g) for g in accepted.gateway_ids if g in self._early]:
                await self._apply_receipt(receipt)

    async def record_failure(self, message_id: int, adapter: str, error: SendError) -> None:
        """A retryable fault: tried again later (back-off doubling up to retry_max_seconds); an unreachable
        gateway never fails a message, it waits. A refusal, or too many retryable faults: failed."""
        cfg = self.settings.messaging
        async with self.db.transaction() as s:
            row = await s.get(Message, message_id)
            if row is None or row.status != "queued":
                return
            row.adapter, row.lease_until = adapter, None
            row.gateway_reply = crm.mask_one_time_passwords(error.reply[:2000])  # a gateway may echo the text
            if error.unreachable or (error.retry and row.attempts < cfg.max_attempts):
                delay = min(cfg.retry_base_seconds * 2 ** max(0, row.attempts - 1), cfg.retry_max_seconds)
                row.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
            else:
                row.status, row.done_at, row.send_text = "failed", utcnow(), None
            stored = StoredMessage.of(row)
        await self._publish(stored)

    async def release(self, message_ids: list[int]) -> None:
        """Leases of messages whose send was interrupted by a stop: due again at once (they may have reached
        the gateway: a message is sent at least once, never lost)."""
        if not message_ids:
            return
        async with self.db.transaction() as s:
            await s.execute(update(Message).where(Message.id.in_(message_ids), Message.status == "queued")
                            .values(lease_until=None, next_attempt_at=utcnow()))

    async def resume_waiting(self) -> int:
        """The gateway is back: every waiting message is due now."""
        async with self.db.transaction() as s:
            result = await s.execute(update(Message).where(Message.status == "queued", Message.lease_until.is_(None))
                                     .values(next_attempt_at=utcnow()))
        self.wakeup.set()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def apply_receipt(self, receipt: Receipt) -> bool:
        """False: no part with that gateway id is recorded yet (the receipt overtook its submit's record, here
        or on another instance); it is kept, and applied when the record lands or by `retry_receipt`."""
        return await self.receipt_result(receipt) != "waiting"

    async def receipt_result(self, receipt: Receipt) -> str:
        """Applies a receipt: "applied", "unchanged" (the part already has its final status: a repeated
        receipt changes nothing) or "waiting" (kept, as `apply_receipt` returning False)."""
        async with self._receipts_lock:
            return await self._apply_receipt(receipt)

    async def retry_receipt(self, gateway_id: str) -> bool:
        """A kept receipt tried again (its part may have been recorded by another instance); True when it no
        longer waits."""
        async with self._receipts_lock:
            receipt = self._early.get(gateway_id)
            return receipt is None or await self._apply_receipt(receipt) != "waiting"

    async def _apply_receipt(self, receipt: Receipt) -> str:
        async with self.db.transaction() as s:
            part = await s.scalar(select(MessagePart).where(MessagePart.gateway_id == receipt.gateway_id[:100])
                                  .order_by(MessagePart.id.desc()).limit(1))
            if part is None:
                self._early[receipt.gateway_id] = receipt
                while len(self._early) > EARLY_RECEIPTS:
                    self._early.popitem(last=False)
                return "waiting"
            self._early.pop(receipt.gateway_id, None)
            if part.status in ("delivered", "failed"):  # the first final receipt stands
                return "unchanged"
            part.status, part.receipt = ("delivered" if receipt.delivered else "failed"), receipt.detail[:200]
            await s.flush()
            row = await s.get(Message, part.message_id)
            statuses = set(await s.scalars(select(MessagePart.status).where(MessagePart.message_id == part.message_id)))
            if row is None or row.status not in ("sent", "delivered"):
                return "applied"
            if "failed" in statuses:
                row.status, row.done_at, row.gateway_reply = "failed", utcnow(), f"receipt: {receipt.detail}"[:2000]
            elif statuses == {"delivered"}:
                row.status, row.done_at = "delivered", utcnow()
            else:
                return "applied"
            stored = StoredMessage.of(row)
        await self._publish(stored)
        return "applied"

    async def repoint_patient(self, from_id: int, into_id: int) -> int:
        async with self.db.transaction() as s:
            moved = await s.execute(update(Message).where(Message.patient_id == from_id).values(patient_id=into_id))
            await s.execute(update(TurnNearOptIn).where(TurnNearOptIn.patient_id == from_id).values(patient_id=into_id))
        return int(moved.rowcount or 0)  # type: ignore[attr-defined]

    # ---- "your turn is near" -----------------------------------------------------------------

    async def opt_in(self, *, ticket_id: int, phone: str, patient_id: int | None, created_by: int | None,
                     current: dict[str, Any] | None, client: str | None = None) -> dict[str, Any]:
        """Stores the phone for this waiting ticket (one per ticket: a new number replaces one not yet
        texted); `current` is the ticket as the queue stands, so a ticket already near is texted now.
        `client`: the address of a sign-up without login (kiosk, the ticket's page), which is bounded
        per address and per clinic day; every sign-up is bounded per number and clinic day (429)."""
        e164 = checked_number(phone, self.settings)
        try:
            await self._store_optin(ticket_id, e164, patient_id, created_by, client)
        except IntegrityError:  # another sign-up stored this ticket's first opt-in meanwhile: replace it as usual
            await self._store_optin(ticket_id, e164, patient_id, created_by, client)
        sent = await self.turn_near([current]) if current else 0
        return {"ticket_id": ticket_id, "to": e164, "texted": bool(sent), "channel": self.turn_near_channel_name}

    async def _store_optin(self, ticket_id: int, e164: str, patient_id: int | None, created_by: int | None,
                           client: str | None) -> None:
        async with self.db.transaction() as s:
            row = await s.scalar(select(TurnNearOptIn).where(TurnNearOptIn.ticket_id == ticket_id))
            if row is not None and row.notified_at is not None:
                raise Problem(409, "Already texted", "This ticket's turn-near message was already sent.",
                              code="turn_near_already_sent")
            await self._within_limits(s, ticket_id, e164, client)
            if row is None:
                row = TurnNearOptIn(ticket_id=ticket_id, to_e164=e164, patient_id=patient_id, created_by=created_by,
                                    client_address=client)
                s.add(row)
            else:  # only while not texted: a sign-up racing the text must not rename the number it went to
                replaced = await s.execute(update(TurnNearOptIn).where(
                    TurnNearOptIn.id == row.id, TurnNearOptIn.notified_at.is_(None)).values(
                    to_e164=e164, created_by=created_by, client_address=client))
                if replaced.rowcount != 1:  # type: ignore[attr-defined]
                    raise Problem(409, "Already texted", "This ticket's turn-near message was already sent.",
                                  code="turn_near_already_sent")

    async def _within_limits(self, s: AsyncSession, ticket_id: int, e164: str, client: str | None) -> None:
        """Every kiosk ticket may ask for one text: without these bounds the public kiosk would text any
        number as often as it issues tickets (SMS abuse, toll fraud)."""
        cfg, now = self.settings.messaging, utcnow()
        zone = self.settings.clinic.zone()
        day_start = dt.datetime.combine(now.astimezone(zone).date(), dt.time(), zone).astimezone(dt.UTC)
        others = TurnNearOptIn.ticket_id != ticket_id

        async def count(*where: Any) -> int:
            return int(await s.scalar(select(func.count()).select_from(TurnNearOptIn).where(others, *where)) or 0)

        if await count(TurnNearOptIn.to_e164 == e164, TurnNearOptIn.created_at >= day_start) \
                >= cfg.turn_near_per_number_per_day:
            raise Problem(429, "Enough for this number today", "This number already gets turn-near messages for "
                          f"{cfg.turn_near_per_number_per_day} tickets today.", code="turn_near_number_limit")
        if client is None:
            return
        hour_ago = now - dt.timedelta(hours=1)
        if await count(TurnNearOptIn.client_address == client, TurnNearOptIn.created_at >= hour_ago) \
                >= cfg.turn_near_public_per_address_per_hour:
            raise Problem(429, "Too many sign-ups", "Too many turn-near sign-ups from here in the last hour; ask "
                          "reception.", code="turn_near_address_limit", headers={"Retry-After": "600"})
        if await count(TurnNearOptIn.client_address.is_not(None), TurnNearOptIn.created_at >= day_start) \
                >= cfg.turn_near_public_per_day:
            raise Problem(429, "No more sign-ups today", "The clinic's turn-near messages for today are used up; "
                          "ask reception.", code="turn_near_daily_limit")

    @property
    def turn_near_channel_name(self) -> str:
        """"sms", or "call" where no SMS gateway is configured and a spoken call takes its place."""
        return "call" if self.turn_near_channel is not None else "sms"

    async def turn_near(self, waiting: list[dict[str, Any]], channel: TurnNearChannel | None = None) -> int:
        """Texts every opted-in ticket of `waiting` (queue.changed's list) that is now near, once: the
        opt-in is marked by a conditional update first, so instances and repeated events never send twice."""
        from messaging.turn_near import is_near, render

        near = {int(t["id"]): t for t in waiting if is_near(t, self.settings.messaging)}
        if not near:
            return 0
        async with self.db.session() as s:
            optins = list(await s.scalars(select(TurnNearOptIn).where(
                TurnNearOptIn.ticket_id.in_(near), TurnNearOptIn.notified_at.is_(None))))
        sent = 0
        for optin in optins:
            async with self.db.transaction() as s:
                claimed = await s.execute(update(TurnNearOptIn).where(
                    TurnNearOptIn.id == optin.id, TurnNearOptIn.notified_at.is_(None)).values(notified_at=utcnow()))
                # the number as claimed: a sign-up may have replaced it since the list above was read
                optin.to_e164 = await s.scalar(select(TurnNearOptIn.to_e164).where(TurnNearOptIn.id == optin.id))
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            text = render(near[optin.ticket_id], self.settings.messaging, self.settings.clinic.name)
            try:
                message_id = await (channel or self.turn_near_channel or SmsChannel(self)).notify(
                    to_e164=optin.to_e164, text=text, patient_id=optin.patient_id, ticket=near[optin.ticket_id])
            except Problem as exc:  # e.g. the number policy changed since the opt-in: told once, in the log
                log.warning("turn-near for ticket %d not sent: %s", optin.ticket_id, exc.detail)
                continue
            async with self.db.transaction() as s:
                await s.execute(update(TurnNearOptIn).where(TurnNearOptIn.id == optin.id).values(message_id=message_id))
            sent += 1
        return sent


class SmsChannel:
    """The turn-near text as an SMS (stored and sent like any message, origin turn_near:<ticket id>)."""

    def __init__(self, service: MessagingService) -> None:
        self.service = service

    async def notify(self, *, to_e164: str, text: str, patient_id: int | None, ticket: dict[str, Any]) -> int | None:
        message = await self.service.send(text=one_line(text)[: self.service.settings.messaging.max_length],
                                          to=to_e164, patient_id=patient_id, origin=f"turn_near:{ticket['id']}")
        return message.id
