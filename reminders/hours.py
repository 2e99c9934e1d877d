"""Calling hours: clinic-time windows such as "08:00-11:00" (pure). "24:00" ends a window at midnight."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def in_calling_hours(windows: Iterable[str], at: dt.time) -> bool:
    now = at.hour * 60 + at.minute
    for window in windows:
        start, end = window.split("-")
        if _minutes(start) <= now < _minutes(end):
            return True
    return False
