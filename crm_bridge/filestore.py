"""Where result and referral files live, behind one small interface (FileStore). The default keeps them
in the database (table stored_blobs), so every instance on the same database sees them; another store
(an S3-compatible bucket) implements the same three calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from clinicall.db import Database
from clinicall.keys import DB_KEY
from crm_bridge.models import StoredBlob


class FileStore(Protocol):
    async def put(self, s: AsyncSession, data: bytes) -> str:
        """Stores the bytes inside the caller's transaction (nothing stays if it rolls back); returns the key."""

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, s: AsyncSession, key: str) -> None: ...


class DatabaseFileStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, s: AsyncSession, data: bytes) -> str:
        blob = StoredBlob(data=data)
        s.add(blob)
        await s.flush()
        return f"db:{blob.id}"

    async def get(self, key: str) -> bytes | None:
        kind, _, ident = key.partition(":")
        if kind != "db" or not ident.isdigit():
            return None
        async with self.db.session() as s:
            blob = await s.get(StoredBlob, int(ident))
            return bytes(blob.data) if blob is not None else None

    async def delete(self, s: AsyncSession, key: str) -> None:
        kind, _, ident = key.partition(":")
        if kind == "db" and ident.isdigit():
            await s.execute(delete(StoredBlob).where(StoredBlob.id == int(ident)))


FILE_STORE_KEY = web.AppKey("file_store", FileStore)


async def file_store_ctx(app: web.Application) -> AsyncIterator[None]:
    app[FILE_STORE_KEY] = DatabaseFileStore(app[DB_KEY])
    yield
