""""Your turn is near" (pure): when a waiting ticket crosses the threshold, and the text it gets.

The channel is behind `TurnNearChannel`: SMS through MessagingService, or, where no SMS gateway is
configured, the reminders room's short spoken call (reminders/turn_near.py)."""

from __future__ import annotations

from typing import Any, Protocol

from clinicall.settings import MessagingSettings


class TurnNearChannel(Protocol):
    async def notify(self, *, to_e164: str, text: str, patient_id: int | None, ticket: dict[str, Any]) -> int | None:
        """Tells the patient about `ticket` (queue.changed's JSON: id, number, room, position, wait); returns
        the stored message's id (None when the channel stores none). Must not wait for a gateway."""
        ...


def is_near(ticket: dict[str, Any], settings: MessagingSettings) -> bool:
    """A waiting ticket (queue.changed's JSON) with at most turn_near_positions people ahead, or an
    estimated wait of at most turn_near_minutes."""
    if ticket.get("status") != "waiting":
        return False
    position, wait = ticket.get("position"), ticket.get("estimated_wait_seconds")
    by_position = settings.turn_near_positions > 0 and position is not None and position - 1 <= settings.turn_near_positions
    by_wait = settings.turn_near_minutes > 0 and wait is not None and wait <= settings.turn_near_minutes * 60
    return bool(by_position or by_wait)


def render(ticket: dict[str, Any], settings: MessagingSettings, clinic: str) -> str:
    position, wait = ticket.get("position"), ticket.get("estimated_wait_seconds")
    return settings.turn_near_text.format(
        clinic=clinic, number=ticket.get("number", ""), service=ticket.get("service_name", ""),
        ahead=max(0, (position or 1) - 1), minutes=max(1, round((wait or 0) / 60)))
