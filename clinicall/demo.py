"""`clinicall demo`: a demo clinic. The frame creates the staff; each room adds its part through
its optional `demo.load(db, settings)`."""

from __future__ import annotations

import importlib
import logging
import secrets
from pathlib import Path

from clinicall.auth.service import create_user, list_users
from clinicall.db import Database
from clinicall.migrate import migrate
from clinicall.rooms import ROOM_NAMES
from clinicall.settings import Settings

log = logging.getLogger(__name__)

DEMO_STAFF = (
    ("agent1", "Lê Thị Hoa", ["agent"], "1001"),
    ("agent2", "Phạm Văn Nam", ["agent"], "1002"),
    ("reception", "Quầy lễ tân", ["reception"], None),
    ("doctor", "BS. Trần Minh", ["doctor"], None),
    ("referrer", "BS. Lê Giới Thiệu", ["referrer"], None),
    ("supervisor", "Giám sát Ngô Lan", ["supervisor", "agent"], "1009"),
)


async def load_demo(settings: Settings, only_if_empty: bool = False) -> None:
    db = Database(settings.database.url)
    try:
        await migrate(db)
        existing = {u.username for u in await list_users(db)}
        if only_if_empty and existing & {name for name, *_ in DEMO_STAFF}:
            print("demo data already loaded")
            return
        password = settings_demo_password()
        for username, name, roles, ext in DEMO_STAFF:
            if username not in existing:
                await create_user(db, username, password, roles, name, ext)
        for room in ROOM_NAMES:
            try:
                module = importlib.import_module(f"{room}.demo")
            except ModuleNotFoundError as exc:
                if exc.name != f"{room}.demo":
                    raise
                continue
            await module.load(db, settings)
        note = (f"Demo staff accounts: {', '.join(u for u, *_ in DEMO_STAFF)}\n"
                f"Password for all of them: {password}\n")
        credentials = Path(settings.data_dir) / "demo-login.txt"
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text(note, encoding="utf-8")
        credentials.chmod(0o600)
        print(f"demo clinic loaded. {note}(also saved in {credentials})")
    finally:
        await db.dispose()


def settings_demo_password() -> str:
    import os

    return os.environ.get("CLINICALL_DEMO_PASSWORD") or "demo-" + secrets.token_hex(4)
