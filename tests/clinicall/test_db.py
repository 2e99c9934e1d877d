import datetime as dt

from sqlalchemy import select

from clinicall.auth.models import User
from clinicall.auth.service import authenticate, create_user
from clinicall.db import Database


async def test_users_round_trip_with_aware_times(db: Database) -> None:
    user = await create_user(db, "Lan", "long-password-1", ["agent", "reception"], "Nguyễn Thị Lan", "1005")
    async with db.session() as s:
        row = await s.scalar(select(User).where(User.id == user.id))
    assert row is not None
    assert row.username == "lan" and row.display_name == "Nguyễn Thị Lan"
    assert row.roles == ["agent", "reception"]
    assert row.created_at.tzinfo is not None
    assert abs((row.created_at - dt.datetime.now(dt.UTC)).total_seconds()) < 60


async def test_password_check(db: Database) -> None:
    await create_user(db, "minh", "long-password-2", ["doctor"])
    assert await authenticate(db, "minh", "long-password-2") is not None
    assert await authenticate(db, "MINH", "long-password-2") is not None
    assert await authenticate(db, "minh", "wrong") is None
    assert await authenticate(db, "nobody", "wrong") is None


async def test_transaction_rolls_back(db: Database) -> None:
    try:
        async with db.transaction() as s:
            s.add(User(username="ghost", password_hash="x", roles=["agent"]))
            await s.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with db.session() as s:
        assert await s.scalar(select(User).where(User.username == "ghost")) is None


async def test_a_long_read_does_not_block_a_write(db: Database) -> None:
    import asyncio

    async with db.session() as reader:
        await reader.execute(select(User))  # a read transaction stays open meanwhile
        await asyncio.wait_for(create_user(db, "writer", "long-password-3", ["agent"]), 60)  # blocked: never ends
    assert await authenticate(db, "writer", "long-password-3") is not None
