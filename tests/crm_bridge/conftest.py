"""Shared fixtures for crm_bridge tests: users on a fresh migrated database."""

from __future__ import annotations

import pytest

from clinicall.auth import service as auth_service
from clinicall.db import Database


@pytest.fixture
async def users(db: Database) -> dict[str, int]:
    ids = {}
    for name, roles, ext in (("agent", ["agent"], "1001"), ("agent2", ["agent"], "1002"),
                             ("boss", ["supervisor", "agent"], "1009"), ("desk", ["reception"], None)):
        ids[name] = (await auth_service.create_user(db, name, "correct-horse-battery", roles, name, ext)).id
    return ids
