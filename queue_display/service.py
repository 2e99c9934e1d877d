"""The queue's service functions for other rooms and for this room's HTTP layer (no HTTP here).

Other rooms use: `display_snapshot(db, settings, room_ids, service_ids)` (the display hub),
`ticket_by_token`, and the operations below (each returns an Outcome; pass it to the app's
QueueRuntime.apply to publish the events and refresh the estimates).
"""

from __future__ import annotations

from queue_display.catalog import (
    RoomIn,
    RoomPatch,
    ServiceIn,
    ServicePatch,
    create_room,
    create_service,
    delete_room,
    list_rooms,
    list_services,
    update_room,
    update_service,
)
from queue_display.checkin import checkin, expected_today
from queue_display.slips import record_slip
from queue_display.state import display_snapshot, load_state
from queue_display.stats import queue_stats
from queue_display.tickets import (
    Outcome,
    call_next,
    call_ticket,
    done,
    hold,
    issue,
    recall,
    restore,
    resume,
    skip,
    start,
    transfer,
)
from queue_display.tokens import get_ticket, status_url, ticket_by_token

__all__ = [
    "Outcome", "RoomIn", "RoomPatch", "ServiceIn", "ServicePatch", "call_next", "call_ticket", "checkin",
    "create_room", "create_service", "delete_room", "display_snapshot", "done", "expected_today", "get_ticket", "hold", "issue",
    "list_rooms", "list_services", "load_state", "queue_stats", "recall", "record_slip", "restore", "resume", "skip", "start",
    "status_url", "ticket_by_token", "transfer", "update_room", "update_service",
]
