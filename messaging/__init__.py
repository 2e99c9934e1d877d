"""messaging room: text messages (SMS through SMPP or an HTTP gateway such as brandname SMS / Zalo ZNS),
stored, sent in the background with retries, delivery receipts; "your turn is near" texts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from messaging.room import setup as setup_room

    setup_room(app)
