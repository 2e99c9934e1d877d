"""The three baseline wait predictors the estimator is compared with, all per service.

- rolling: the mean wait of the last `window` patients of the same service to be called.
- QL (Ibrahim & Whitt 2009): (tickets ahead + 1 - idle rooms) x the mean time between recent service
  completions of that service (0 when an idle open room can take the ticket at once).
- LES: the wait of the last patient of the same service to be called (to enter service).
"""

from __future__ import annotations

from collections import deque

from queue_display.estimator import RoomState
from queue_display.ordering import QueueItem


class RollingAverage:
    name = "rolling"

    def __init__(self, window: int = 10) -> None:
        self.window = window
        self._waits: dict[int, deque[float]] = {}

    def record_wait(self, service_id: int, seconds: float) -> None:
        self._waits.setdefault(service_id, deque(maxlen=self.window)).append(seconds)

    def predict(self, service_id: int) -> float:
        waits = self._waits.get(service_id)
        return sum(waits) / len(waits) if waits else 0.0


class LastEnteredService:
    name = "LES"

    def __init__(self) -> None:
        self._last: dict[int, float] = {}

    def record_wait(self, service_id: int, seconds: float) -> None:
        self._last[service_id] = seconds

    def predict(self, service_id: int) -> float:
        return self._last.get(service_id, 0.0)


class QueueLength:
    name = "QL"

    def __init__(self, window: int = 10, default_gap_seconds: float = 300.0) -> None:
        self.window = window
        self.default_gap = default_gap_seconds
        self._gaps: dict[int, deque[float]] = {}
        self._last_completion: dict[int, float] = {}

    def new_day(self) -> None:
        """Forget the last completion so the night is not counted as a gap (the gaps themselves stay)."""
        self._last_completion.clear()

    def record_completion(self, service_id: int, at: float) -> None:
        last = self._last_completion.get(service_id)
        if last is not None:
            self._gaps.setdefault(service_id, deque(maxlen=self.window)).append(at - last)
        self._last_completion[service_id] = at

    def mean_gap(self, service_id: int) -> float:
        gaps = self._gaps.get(service_id)
        return sum(gaps) / len(gaps) if gaps else self.default_gap

    def predict(self, service_id: int, ahead: int, rooms: list[RoomState]) -> float:
        idle = sum(1 for room in rooms
                   if room.open and room.serving_since is None and service_id in room.service_ids)
        return max(ahead + 1 - idle, 0) * self.mean_gap(service_id)


def tickets_ahead(ordered: list[QueueItem], ticket_id: int) -> int:
    """How many tickets of the same service come before this one in the called order."""
    target = next(item for item in ordered if item.ticket_id == ticket_id)
    ahead = 0
    for item in ordered:
        if item.ticket_id == ticket_id:
            return ahead
        if item.service_id == target.service_id:
            ahead += 1
    return ahead
