"""Prints a kiosk ticket on the kiosk's ESC/POS printer (queue.kiosk_printers); a printer that is off or
out of paper never loses the ticket: the kiosk page shows it and offers the browser's print instead."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from clinicall.settings import Settings
from queue_display import escpos

log = logging.getLogger(__name__)


async def print_ticket(settings: Settings, printer: str, ticket: dict[str, Any]) -> bool:
    data = escpos.ticket_bytes(
        clinic=settings.clinic.name, number=ticket["number"], service=ticket.get("service_name") or "",
        wait_seconds=ticket.get("estimated_wait_seconds"), status_url=ticket["status_url"],
        issued=dt.datetime.now(settings.clinic.zone()), language=settings.clinic.language)
    try:
        await escpos.send(printer, data, settings.queue.printer_timeout_seconds)
    except (OSError, TimeoutError) as exc:
        log.warning("ticket %s not printed on %s: %s", ticket["number"], printer, exc)
        return False
    return True
