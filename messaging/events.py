"""The events this room publishes and consumes.

Publishes `message.updated` ({"message": message_json}) whenever a message is stored or its status
changes (the patient's card follows it live through /ws/messages).
Consumes `queue.changed` (queue_display: "your turn is near") and `patient.merged` (crm_bridge)."""

from __future__ import annotations

from crm_bridge.events import PATIENT_MERGED
from queue_display.events import QUEUE_CHANGED

MESSAGE_UPDATED = "message.updated"

__all__ = ["MESSAGE_UPDATED", "PATIENT_MERGED", "QUEUE_CHANGED"]
