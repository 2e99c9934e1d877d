"""The one interface every gateway adapter implements, and what a send returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Outgoing:
    ref: int  # our message id
    to_e164: str
    text: str


@dataclass(frozen=True)
class Accepted:
    """The gateway took the message: its ids (one per SMS part) and its answer, for the record."""

    gateway_ids: list[str] = field(default_factory=list)
    reply: str = ""


class SendError(Exception):
    """The gateway did not take the message. `retry`: a transient fault (timeout, busy); `unreachable`:
    the gateway could not be reached at all (such a try does not count towards max_attempts: the message
    waits for the gateway)."""

    def __init__(self, reply: str, *, retry: bool, unreachable: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.retry = retry or unreachable
        self.unreachable = unreachable


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt for one part: delivered, or failed with the gateway's word."""

    gateway_id: str
    delivered: bool
    detail: str


class Sender(Protocol):
    name: str

    async def start(self, on_receipt: Callable[[Receipt], None], on_ready: Callable[[], None]) -> None:
        """on_receipt and on_ready (the gateway can be reached again) are called on the event loop."""
        ...

    async def send(self, message: Outgoing) -> Accepted:
        """Raises SendError; never blocks the event loop; gives up after the configured timeout."""
        ...

    def health(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...
