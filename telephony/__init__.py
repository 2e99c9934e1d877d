"""telephony room."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from telephony import agi, stats

    agi.setup(app)  # caller identification: FastAGI server and GET /api/callers/identify
    stats.setup_stats(app)  # consoles: GET /api/stats/calls
