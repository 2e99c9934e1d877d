"""Events the audio room consumes and publishes (see docs/audio.md and the contracts)."""

from __future__ import annotations

from typing import Any

from audio.announcement import Announcement
from clinicall.db import utcnow

CONSUMES = ("ticket.called", "ticket.recalled")
ANNOUNCEMENT_READY = "announcement.ready"


def announcement_ready(ticket: dict[str, Any], room: dict[str, Any], announcement: Announcement, repeat: int,
                       reason: str, duration_seconds: float) -> dict[str, Any]:
    return {
        "ticket_id": ticket.get("id"),
        "number": ticket.get("number"),
        "room_id": room.get("id"),
        "audio_url": announcement.url,
        "texts": announcement.texts,
        "languages": announcement.languages,
        "repeat": repeat,
        "reason": reason,  # "called" or "recalled"
        "duration_seconds": round(duration_seconds, 3),
        "engines": announcement.engines,
        "at": utcnow().isoformat(),
    }
