"""crm_bridge room."""

from aiohttp import web

from crm_bridge.pages import setup_pages


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    setup_pages(app)  # consoles: the agent page and booking statistics
