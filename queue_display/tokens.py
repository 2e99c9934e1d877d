"""Tickets by id or by their unguessable status token, and the patient's status link."""

from __future__ import annotations

from sqlalchemy import select

from clinicall.db import Database
from clinicall.problem import Problem, not_found
from clinicall.settings import Settings
from queue_display.models import Ticket


async def get_ticket(db: Database, ticket_id: int) -> Ticket:
    async with db.session() as s:
        ticket = await s.get(Ticket, ticket_id)
    if ticket is None:
        raise not_found("Ticket")
    return ticket


async def ticket_by_token(db: Database, token: str) -> Ticket:
    if not 10 <= len(token) <= 64:
        raise Problem(404, "Ticket not found", "This ticket link is not valid; check it or ask at reception.")
    async with db.session() as s:
        ticket = await s.scalar(select(Ticket).where(Ticket.token == token))
    if ticket is None:
        raise Problem(404, "Ticket not found", "This ticket link is not valid; check it or ask at reception.")
    return ticket


def status_url(settings: Settings, token: str) -> str:
    return f"{settings.http.base_url()}/t/{token}"
