"""queue_display room."""

from aiohttp import web

from queue_display import display
from queue_display.reception import setup_reception


def setup(app: web.Application) -> None:
    """Register this room's routes, resources and subscriptions."""
    setup_reception(app)  # consoles: the reception page
    display.setup(app)  # display helper: /ws/display hub, /tv /door /kiosk /room pages


def register_cli(subparsers: object) -> None:
    """This room's commands: `clinicall sim` (the wait-estimator evaluation)."""
    from queue_display.sim.cli import register as register_sim  # estimator helper

    register_sim(subparsers)
