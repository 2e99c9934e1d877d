"""The screens' waiting lines as deltas: a `queue.changed` on /ws/display names the tickets a screen already
has instead of sending each of them again.

The bus event carries the whole line (`"waiting": [ticket, ...]`, for messaging and other consumers). The
display hub remembers the line it last sent for each service and sends `"line"` instead, in call order:

- a ticket id (a number): the ticket as last sent, at this place (position = index + 1);
- `[id, seconds, low, high]`: the same ticket with a new estimated wait and range, in whole seconds (low/high
  null: none);
- a ticket object: a ticket new to the line, or changed in anything besides its place and estimate.

A screen rebuilds the line from the tickets it holds (state.js); one that does not hold a ticket a line
names (e.g. its filter now covers a service it never showed) asks for a snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VOLATILE = frozenset({"position", "estimated_wait_seconds", "estimated_wait_range"})
Sent = tuple[dict[str, Any], list[Any]]  # what a ticket was sent as: everything else, and its wait


def wait_of(ticket: Mapping[str, Any]) -> list[Any]:
    """[seconds, low, high] in whole seconds (screens show minutes): a tenth of a second more is no news."""
    low, high = ticket.get("estimated_wait_range") or (None, None)
    return [_whole(ticket.get("estimated_wait_seconds")), _whole(low), _whole(high)]


def _whole(seconds: Any) -> Any:
    return round(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else seconds


def line_delta(previous: Mapping[Any, Sent], waiting: list[Any]) -> tuple[list[Any], dict[Any, Sent]]:
    """The `line` entries for `waiting` (the full line, scrubbed) after `previous` was sent; and what is sent now."""
    entries: list[Any] = []
    sent: dict[Any, Sent] = {}
    for index, ticket in enumerate(waiting, start=1):
        if not isinstance(ticket, dict) or not isinstance(ticket.get("id"), int):
            entries.append(ticket)
            continue
        ident = ticket["id"]
        rest = {k: v for k, v in ticket.items() if k not in VOLATILE}
        wait = wait_of(ticket)
        known = previous.get(ident)
        if known is None or known[0] != rest or ticket.get("position") != index:
            entries.append(ticket)
        elif known[1] == wait:
            entries.append(ident)
        else:
            entries.append([ident, *wait])
        sent[ident] = (rest, wait)
    return entries, sent
