"""telephony room: Asterisk (AMI link, click-to-call, call log, FastAGI caller identification).

Kept free of imports so that `clinicall-agi`, run once per call by Asterisk, starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from telephony.room import setup as setup_room

    setup_room(app)


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`clinicall calls rebuild [--since DATE]`."""
    from telephony.rebuild import register

    register(subparsers)
