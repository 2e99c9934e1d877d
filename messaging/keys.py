"""This room's application state."""

from __future__ import annotations

from aiohttp import web

from clinicall.counters import WindowCounters
from messaging.service import MessagingService
from messaging.turn_near import TurnNearChannel
from messaging.turn_near_watch import TurnNearWatch
from messaging.worker import Dispatcher

MESSAGING_KEY = web.AppKey("messaging", MessagingService)  # the API other rooms call: app[MESSAGING_KEY].send(...)
DISPATCHER_KEY = web.AppKey("messaging_dispatcher", Dispatcher | None)
# Another room may set this in its setup(): "your turn is near" then takes that channel (e.g. a short spoken
# call through Asterisk) whenever no SMS gateway is configured (messaging.adapter = none).
TURN_NEAR_CHANNEL_KEY = web.AppKey("turn_near_channel", TurnNearChannel)
TURN_NEAR_WATCH_KEY = web.AppKey("turn_near_watch", TurnNearWatch)
SEND_COUNTS_KEY = web.AppKey("messaging_send_counts", WindowCounters)  # texts per staff user and minute
