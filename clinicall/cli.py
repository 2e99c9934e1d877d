"""The `clinicall` command: serve, migrate, user add, demo, and the rooms' own commands."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from clinicall.rooms import rooms
from clinicall.settings import Settings, SettingsError, load_settings

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int | None]]


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.app import create_app
    from clinicall.db import Database
    from clinicall.migrate import migrate

    db = Database(settings.database.url)
    try:
        await migrate(db)
    finally:
        await db.dispose()
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"clinicall could not start: {exc}.\nAnother program (perhaps another clinicall) uses that address: "
              "stop it, or choose other ports with CLINICALL_HTTP__PORT / CLINICALL_TELEPHONY__AGI_PORT.",
              file=sys.stderr)
        return 2
    base = settings.http.base_url()
    print(f"clinicall is serving on {base}  (health: {base}/healthz)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("shutting down", flush=True)
    await runner.cleanup()
    return 0


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.db import Database
    from clinicall.migrate import migrate

    db = Database(settings.database.url)
    try:
        await migrate(db)
    finally:
        await db.dispose()
    print(f"migrated {settings.database.url.split('@')[-1]}")
    return 0


async def cmd_makemigration(args: argparse.Namespace, settings: Settings) -> int:
    import tempfile

    from clinicall.db import Database
    from clinicall.migrate import make_revision, migrate

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/schema.db"
        db = Database(url)
        await migrate(db)
        await db.dispose()
        await asyncio.to_thread(make_revision, url, args.room, args.message)
    return 0


def read_password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise SystemExit(f"{args.password_env} is empty or not set")
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (10+ characters): ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit("The passwords differ; nothing was created.")
    return first


async def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.auth.service import create_user
    from clinicall.db import Database
    from clinicall.migrate import migrate
    from clinicall.problem import Problem

    db = Database(settings.database.url)
    try:
        await migrate(db)
        user = await create_user(db, args.name, read_password(args), args.role, args.display_name or "", args.extension)
    except Problem as problem:
        print(f"error: {problem.detail}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    print(f"created user {user.username} with roles {', '.join(user.roles)}")
    return 0


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.demo import load_demo

    await load_demo(settings, only_if_empty=args.if_empty)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clinicall", description="A clinic's call centre and waiting room.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database and serve HTTP (and the rooms' listeners)")
    serve.set_defaults(func=cmd_serve)
    migrate_p = sub.add_parser("migrate", help="apply database migrations")
    migrate_p.set_defaults(func=cmd_migrate)
    mk = sub.add_parser("makemigration", help="(developers) autogenerate a migration for one room")
    mk.add_argument("room")
    mk.add_argument("-m", "--message", required=True)
    mk.set_defaults(func=cmd_makemigration)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", action="append", required=True, help="admin, supervisor, agent, reception or doctor (repeatable)")
    add.add_argument("--display-name")
    add.add_argument("--extension", help="the agent's desk phone extension, e.g. 1001")
    add.add_argument("--password-env", help="read the password from this environment variable instead of asking")
    add.set_defaults(func=cmd_user_add)

    demo = sub.add_parser("demo", help="load a demo clinic: services, rooms, 200 patients, 2 agents")
    demo.add_argument("--if-empty", action="store_true", help="only when the database has no patients yet")
    demo.set_defaults(func=cmd_demo)

    for room in rooms():
        register = getattr(room, "register_cli", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    result = asyncio.run(args.func(args, settings))
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
