"""Typed application state shared by the frame and the rooms."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from clinicall.bus import InProcessBus, RedisBus
from clinicall.db import Database
from clinicall.hotpath import HotPath
from clinicall.hub import Hub
from clinicall.settings import Settings
from clinicall.tasks import BackgroundTasks

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]

SETTINGS_KEY = web.AppKey("settings", Settings)
DB_KEY = web.AppKey("db", Database)
BUS_KEY = web.AppKey("bus", InProcessBus | RedisBus)
TASKS_KEY = web.AppKey("tasks", BackgroundTasks)
HEALTH_KEY = web.AppKey("health_checks", dict[str, HealthCheck])
WEBSOCKETS_KEY = web.AppKey("websockets", weakref.WeakSet[web.WebSocketResponse])
HUB_KEY = web.AppKey("hub", Hub)  # the websocket hub of every live feed (clinicall/hub.py)
HOT_PATH_KEY = web.AppKey("hot_path", HotPath)  # a call on its way to the screens (clinicall/hotpath.py)
