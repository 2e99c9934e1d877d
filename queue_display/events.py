"""The events this room publishes on the bus, and the JSON shape of a ticket in them.

Every event's data holds "ticket" (see `ticket_json`) and "at"; `queue.changed` holds
{"service_id", "waiting": [ticket...], "at"}. ticket.done also carries "served"
({"room_id", "service_id", "started_at", "ended_at"}) so other instances' estimators learn too;
ticket.issued carries "arrival" ({"service_id", "at", "priority", "returning"}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queue_display.models import QueueRoom, QueueService, Ticket

TICKET_ISSUED = "ticket.issued"
TICKET_CALLED = "ticket.called"
TICKET_RECALLED = "ticket.recalled"
TICKET_SKIPPED = "ticket.skipped"
TICKET_NOSHOW = "ticket.noshow"
TICKET_HELD = "ticket.held"
TICKET_RESUMED = "ticket.resumed"
TICKET_TRANSFERRED = "ticket.transferred"
TICKET_STARTED = "ticket.started"
TICKET_DONE = "ticket.done"
TICKET_RESTORED = "ticket.restored"
TICKET_EXPIRED = "ticket.expired"  # its clinic day ended before it was called
QUEUE_CHANGED = "queue.changed"
ROOM_STATE = "queue.room_state"  # {"room_id", "open", "at"}: a room opened or closed
CATALOG_CHANGED = "queue.catalog"  # {"at"}: a service or room was made or changed (renamed...): screens resync

TICKET_EVENTS = (TICKET_ISSUED, TICKET_CALLED, TICKET_RECALLED, TICKET_SKIPPED, TICKET_NOSHOW, TICKET_HELD,
                 TICKET_RESUMED, TICKET_TRANSFERRED, TICKET_STARTED, TICKET_DONE, TICKET_RESTORED, TICKET_EXPIRED)


def local_name(names: dict[str, str], language: str) -> str:
    return names.get(language) or names.get("vi") or next(iter(names.values()), "")


def service_json(service: QueueService, language: str) -> dict[str, Any]:
    return {"id": service.id, "prefix": service.prefix, "name": local_name(service.names, language),
            "names": dict(service.names), "open_days": list(service.open_days), "opens_at": service.opens_at,
            "closes_at": service.closes_at, "active": service.active}


def room_brief(room: QueueRoom, language: str) -> dict[str, Any]:
    """The room as it appears inside a ticket (and as the audio wording expects it)."""
    return {"id": room.id, "kind": room.kind, "number": room.number, "name": local_name(room.names, language),
            "names": dict(room.names)}


def room_json(room: QueueRoom, language: str) -> dict[str, Any]:
    return {**room_brief(room, language), "service_ids": list(room.service_ids), "doctor_name": room.doctor_name,
            "doctor_user_id": room.doctor_user_id, "open": room.open}


def back_to(ticket: Ticket) -> tuple[int | None, int | None, bool] | None:
    """Where a ticket on a round trip goes back to: (service id, room id, already on its way back).
    None when it is not on one."""
    if ticket.return_service_id is not None:
        return ticket.return_service_id, ticket.return_room_id, False
    if ticket.is_returning and ticket.status in ("waiting", "held", "skipped"):
        return ticket.service_id, ticket.preferred_room_id, True
    return None


def back_to_json(ticket: Ticket, services: Mapping[int, QueueService], rooms: Mapping[int, QueueRoom],
                 language: str) -> dict[str, Any] | None:
    """{"room": room or null, "service_name", "now"}: "back to Phòng khám số 3 after the lab" (now false)
    or "back to Phòng khám số 3 now" (now true)."""
    target = back_to(ticket)
    if target is None:
        return None
    service_id, room_id, now = target
    service = services.get(service_id) if service_id is not None else None
    room = rooms.get(room_id) if room_id is not None else None
    if room is not None and not room.open:  # the return goes to any room of the service: name the service
        room = None
    return {"room": room_brief(room, language) if room else None, "service_id": service_id,
            "service_name": local_name(service.names, language) if service else "",
            "service_names": dict(service.names) if service else {}, "now": now}


def ticket_json(ticket: Ticket, service: QueueService | None, room: QueueRoom | None, language: str,
                masked_name: str | None = None, back: dict[str, Any] | None = None) -> dict[str, Any]:
    waiting = ticket.status == "waiting"
    return {
        "id": ticket.id,
        "number": ticket.number,
        "service_id": ticket.service_id,
        "service_name": local_name(service.names, language) if service else "",
        "service_prefix": service.prefix if service else ticket.number[:1],
        "status": ticket.status,
        "priority": ticket.priority,
        "room": room_brief(room, language) if room else None,
        "masked_name": masked_name,
        "estimated_wait_seconds": ticket.estimated_wait_seconds if waiting else None,
        # the range the real wait falls in 4 times out of 5: [low, high] seconds
        "estimated_wait_range": list(ticket.wait_range) if waiting and ticket.wait_range else None,
        "position": ticket.position if waiting else None,
        "returning": ticket.is_returning,
        "back_to": back,
        "recall_count": ticket.recall_count,
        "source": ticket.source,
        "issued_at": _iso(ticket.issued_at),
        "called_at": _iso(ticket.called_at),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
