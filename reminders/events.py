"""Events: the reminders room publishes none of its own (its calls publish `call.updated` through the
telephony call log); it consumes `call.updated` of its calls (reminders, turn-near) to settle them
without waiting for the next round."""

from __future__ import annotations

from clinicall.bus import Event

CONSUMES = ("call.updated",)


def is_reminder_end(event: Event) -> bool:
    return event.data.get("origin") in ("reminder", "turn_near") and event.data.get("state") == "ended"
