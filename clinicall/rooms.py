"""The rooms the frame loads, in order. The frame knows each only through its hooks:
`setup(app)` (required), and optionally `register_cli(subparsers)` and `demo.load(db, settings)`."""

from __future__ import annotations

import importlib
from types import ModuleType

ROOM_NAMES: tuple[str, ...] = ("crm_bridge", "telephony", "queue_display", "audio", "messaging", "reminders")


def rooms() -> list[ModuleType]:
    return [importlib.import_module(name) for name in ROOM_NAMES]
