"""Alembic environment: runs on the connection handed over by clinicall.migrate, or opens one."""

from __future__ import annotations

import asyncio
import importlib

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from clinicall.db import Base
from clinicall.rooms import ROOM_NAMES

importlib.import_module("clinicall.auth.models")
for room in ROOM_NAMES:
    try:
        importlib.import_module(f"{room}.models")
    except ModuleNotFoundError as exc:
        if exc.name != f"{room}.models":
            raise

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url"))
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
