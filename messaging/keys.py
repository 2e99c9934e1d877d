"""This room's application state."""

from __future__ import annotations

from aiohttp import web

from messaging.service import MessagingService
from messaging.worker import Dispatcher

MESSAGING_KEY = web.AppKey("messaging", MessagingService)  # the API other rooms call: app[MESSAGING_KEY].send(...)
DISPATCHER_KEY = web.AppKey("messaging_dispatcher", Dispatcher | None)
