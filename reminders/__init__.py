"""reminders room: spoken reminder calls through Asterisk (campaigns built from the worklists, a
dialler within calling hours and a channel limit, FastAGI reading the patient's key) and the queue
position by phone (FastAGI `queue_position`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from reminders.room import setup as setup_room

    setup_room(app)
