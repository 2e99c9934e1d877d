"""Tickets by id or by their unguessable status token, and the patient's status link."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from clinicall.db import Database, utcnow
from clinicall.problem import Problem, not_found
from clinicall.settings import Settings
from queue_display.models import ACTIVE_STATUSES, Ticket

LINK_DAYS = 1  # a finished ticket's link still opens the day after its own (a visit that ran past midnight)


async def get_ticket(db: Database, ticket_id: int) -> Ticket:
    async with db.session() as s:
        ticket = await s.get(Ticket, ticket_id)
    if ticket is None:
        raise not_found("Ticket")
    return ticket


async def ticket_by_token(db: Database, settings: Settings, token: str) -> Ticket:
    """The ticket a public link names. The link is a key anyone holding the paper or a photo of it can use:
    it stops opening once the ticket is finished and its day is over (410 ticket_link_expired)."""
    if not 10 <= len(token) <= 64:
        raise Problem(404, "Ticket not found", "This ticket link is not valid; check it or ask at reception.")
    async with db.session() as s:
        ticket = await s.scalar(select(Ticket).where(Ticket.token == token))
    if ticket is None:
        raise Problem(404, "Ticket not found", "This ticket link is not valid; check it or ask at reception.")
    today = utcnow().astimezone(settings.clinic.zone()).date()
    if ticket.status not in ACTIVE_STATUSES and ticket.local_day < today - dt.timedelta(days=LINK_DAYS):
        raise Problem(410, "Ticket link expired", "This ticket was for an earlier day; take a new number at the kiosk "
                      "or at reception.", code="ticket_link_expired")
    return ticket


def status_url(settings: Settings, token: str) -> str:
    return f"{settings.http.base_url()}/t/{token}"
