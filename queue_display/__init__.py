"""queue_display room: services, rooms, tickets, the waiting lines with estimated waits, the
patient status page; the screens (display.py) and the reception page build on them."""

from aiohttp import web

from queue_display import display
from queue_display.reception import setup_reception


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    from clinicall.exports import register_exports
    from queue_display import http, status_page
    from queue_display.exports import EXPORTS
    from queue_display.runtime import runtime_ctx

    app.router.add_routes(http.routes)
    register_exports(app, EXPORTS)  # consoles: Excel/CSV of the queue statistics
    app.router.add_routes(status_page.routes)
    app.cleanup_ctx.append(runtime_ctx)  # the wait estimator, warmed before the first request
    setup_reception(app)  # consoles: the reception page
    display.setup(app)  # display helper: /ws/display hub, /tv /door /kiosk /room pages


def register_cli(subparsers: object) -> None:
    """This room's commands: `clinicall sim` (the wait-estimator evaluation)."""
    from queue_display.sim.cli import register as register_sim  # estimator helper

    register_sim(subparsers)
