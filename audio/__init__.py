"""audio room."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
