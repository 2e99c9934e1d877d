"""Alembic migrations: the frame's branch plus one branch per room (`<room>/migrations/`),
applied together with `upgrade heads` so rooms never fight over a single head."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from clinicall.db import Database
from clinicall.rooms import ROOM_NAMES

log = logging.getLogger(__name__)
FRAME_DIR = Path(__file__).resolve().parent / "migrations"


def version_locations() -> list[str]:
    locations = [str(FRAME_DIR / "versions")]
    for name in ROOM_NAMES:
        module = importlib.import_module(name)
        versions = Path(module.__file__).resolve().parent / "migrations" / "versions"  # type: ignore[arg-type]
        if versions.is_dir():
            locations.append(str(versions))
    return locations


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(FRAME_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", __import__("os").pathsep.join(version_locations()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, cfg: Config) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "heads")


async def migrate(db: Database) -> None:
    """Brings the schema to the latest revision; instances starting together take turns (startup_lock)."""
    cfg = alembic_config(db.url)
    async with db.startup_lock(), db.engine.begin() as conn:
        await conn.run_sync(_upgrade, cfg)
    log.info("database migrated to the latest schema")


def make_revision(url: str, room: str, message: str) -> None:
    """Autogenerate a migration for one room's branch (developer tool: `clinicall makemigration`)."""
    if room not in ("frame", *ROOM_NAMES):
        raise SystemExit(f"unknown room {room!r}; use frame or one of {', '.join(ROOM_NAMES)}")
    if room == "frame":
        versions = FRAME_DIR / "versions"
    else:
        module = importlib.import_module(room)
        versions = Path(module.__file__).resolve().parent / "migrations" / "versions"  # type: ignore[arg-type]
    versions.mkdir(parents=True, exist_ok=True)
    cfg = alembic_config(url)
    locations = cfg.get_main_option("version_locations") or ""
    if str(versions) not in locations.split(__import__("os").pathsep):
        cfg.set_main_option("version_locations", locations + __import__("os").pathsep + str(versions))
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    label = room
    has_branch = any(label in (rev.branch_labels or ()) for rev in script.walk_revisions())
    if has_branch:
        command.revision(cfg, message=message, autogenerate=True, head=f"{label}@head")
    else:
        command.revision(cfg, message=message, autogenerate=True, head="base", branch_label=label,
                         version_path=str(versions), depends_on=None if room == "frame" else "f0001")
