"""The reminders room's application state."""

from __future__ import annotations

from aiohttp import web

from reminders.engine import Dialler

DIALLER_KEY = web.AppKey("reminders_dialler", Dialler)
