"""A ticket's slip printed again at reception (the patient lost theirs): the same number, each print kept in
the ticket's history with who printed it."""

from __future__ import annotations

from sqlalchemy import func, select

from clinicall.db import Database, utcnow
from clinicall.problem import Problem, not_found
from queue_display.models import ACTIVE_STATUSES, Ticket, TicketEvent
from queue_display.tickets import _log

SLIP_PRINTED = "ticket.slip_printed"


async def record_slip(db: Database, ticket_id: int, user_id: int | None) -> int:
    """Records one more print of a waiting (or called, held...) ticket's slip; returns how many there were."""
    async with db.transaction() as s:
        ticket = await s.get(Ticket, ticket_id)
        if ticket is None:
            raise not_found("Ticket")
        if ticket.status not in ACTIVE_STATUSES:
            raise Problem(409, "Ticket finished", "This ticket is finished (done, no-show, transferred or expired): "
                          "its slip is no longer valid; issue a new number.", code="ticket_finished")
        _log(s, ticket, SLIP_PRINTED, utcnow(), user_id)
        await s.flush()
        return int(await s.scalar(select(func.count()).where(TicketEvent.ticket_id == ticket.id,
                                                             TicketEvent.type == SLIP_PRINTED)) or 0)
