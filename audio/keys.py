"""The audio room's application state."""

from __future__ import annotations

from aiohttp import web

from audio.announcer import Announcer

ANNOUNCER_KEY = web.AppKey("audio_announcer", Announcer)
