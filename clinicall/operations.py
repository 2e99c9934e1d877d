"""`clinicall backup | restore | purge`: what the clinic's IT person runs (and cron/systemd timers)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

from clinicall.settings import Settings


def default_backup_path(settings: Settings) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.data_path("backups", f"clinicall-{stamp}.tar.gz")


async def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.backup import backup

    output = Path(args.output) if args.output else default_backup_path(settings)
    manifest = await asyncio.to_thread(backup, settings, output)
    print(f"backup written to {output} (database {manifest['database']}, {manifest['recordings']} recordings)")
    return 0


async def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.backup import restore
    from clinicall.cli import prepare_database

    manifest = await asyncio.to_thread(restore, settings, Path(args.file))
    await prepare_database(settings)  # a backup from an older version is brought up to this one's schema
    print(f"restored the backup of {manifest['created_at']} ({manifest['recordings']} recordings)")
    return 0


async def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.db import Database
    from clinicall.migrate import migrate
    from clinicall.retention import enabled, purge

    if not enabled(settings):
        print("nothing to purge: retention.call_log_days, recording_days and audit_days are all 0 (keep everything)")
        return 0
    db = Database(settings.database.url)
    try:
        await migrate(db)
        removed = await purge(db, settings)
    finally:
        await db.dispose()
    print("purged: " + (", ".join(f"{count} {what}" for what, count in removed.items()) or "nothing"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    backup = sub.add_parser("backup", help="write the database and the call recordings to one .tar.gz")
    backup.add_argument("--output", "-o", help="the file to write (default DATA_DIR/backups/clinicall-TIME.tar.gz)")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="put a backup back (stop clinicall first); replaces the database")
    restore.add_argument("file")
    restore.set_defaults(func=cmd_restore)
    purge = sub.add_parser("purge", help="delete call logs, recordings and audit rows older than the retention settings")
    purge.set_defaults(func=cmd_purge)
