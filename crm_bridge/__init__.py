"""crm_bridge room: patient records, the care workflow, agents' worklists, HIS import and audit."""

from __future__ import annotations

import argparse

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this room's routes (the consoles build the pages on top of them)."""
    from clinicall.exports import EXPORT_AUDIT_KEY, register_exports
    from crm_bridge.audit import audit_batch_ctx
    from crm_bridge.care_http import routes as care_routes
    from crm_bridge.care_pages import setup_care_pages
    from crm_bridge.exports import EXPORTS, audit_export
    from crm_bridge.filestore import file_store_ctx
    from crm_bridge.http import routes
    from crm_bridge.pages import setup_pages

    app.cleanup_ctx.append(audit_batch_ctx)
    app.cleanup_ctx.append(file_store_ctx)
    app.router.add_routes(routes)
    app.router.add_routes(care_routes)
    register_exports(app, EXPORTS)
    app[EXPORT_AUDIT_KEY] = audit_export
    setup_pages(app)  # consoles: the agent page (/agent)
    setup_care_pages(app)  # the care loop: /referrer, /treatment, the patient's /me


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from crm_bridge.cli import register

    register(subparsers)
