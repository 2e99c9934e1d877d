"""The `clinicall` command: serve, migrate, user, backup, restore, purge, demo, and the rooms' own commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from clinicall import operations, usercli
from clinicall.db import is_unavailable
from clinicall.errors import CommandError
from clinicall.logs import configure_logging
from clinicall.rooms import rooms
from clinicall.settings import Settings, SettingsError, load_settings

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int | None]]


async def prepare_database(settings: Settings) -> None:
    """Migrations, then the bootstrap admin: both under the start-up lock (instances may start together)."""
    from clinicall.app import bootstrap_admin
    from clinicall.db import Database
    from clinicall.migrate import migrate

    db = Database(settings.database.url)
    try:
        await migrate(db)
        await bootstrap_admin(db, settings)
    finally:
        await db.dispose()


def bind_http(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)  # listening starts once the app serves: until then connections are refused, not queued
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from clinicall.app import create_app

    stop = asyncio.Event()  # a stop asked for while starting is kept: serving then ends cleanly at once
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await prepare_database(settings)
    try:
        sock = bind_http(settings.http.host, settings.http.port)  # before anything starts: a taken port stops here
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            # a listener of a room (FastAGI) could not bind: start-up work cut short may leave a pooled
            # connection mid-reset, not worth a traceback
            logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
            await runner.cleanup()
            raise
    except OSError as exc:
        if is_unavailable(exc):
            raise
        print(f"clinicall could not start: {exc}.\nAnother program (perhaps another clinicall) uses that address: "
              "stop it, or choose other ports with CLINICALL_HTTP__PORT / CLINICALL_TELEPHONY__AGI_PORT.",
              file=sys.stderr)
        return 2
    from clinicall.heap import freeze_startup_objects

    freeze_startup_objects()
    base = settings.http.model_copy(update={"port": sock.getsockname()[1]}).base_url()  # the port 0 chose
    print(f"clinicall is serving on {base}  (health: {base}/healthz)", flush=True)
    await stop.wait()
    print("shutting down", flush=True)
    await runner.cleanup()
    return 0


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    await prepare_database(settings)
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


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.demo import load_demo

    await load_demo(settings, only_if_empty=args.if_empty)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clinicall", description="A clinic's call centre and waiting room.")
    parser.add_argument("--version", action="version", version=f"clinicall {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database and serve HTTP (and the rooms' listeners)")
    serve.set_defaults(func=cmd_serve)
    migrate_p = sub.add_parser("migrate", help="apply database migrations")
    migrate_p.set_defaults(func=cmd_migrate)
    mk = sub.add_parser("makemigration", help="(developers) autogenerate a migration for one room")
    mk.add_argument("room")
    mk.add_argument("-m", "--message", required=True)
    mk.set_defaults(func=cmd_makemigration)

    usercli.register(sub)
    operations.register(sub)

    demo = sub.add_parser("demo", help="load a demo clinic: services, rooms, 200 patients, 2 agents")
    demo.add_argument("--if-empty", action="store_true", help="only when the database has no patients yet")
    demo.set_defaults(func=cmd_demo)

    for room in rooms():
        register = getattr(room, "register_cli", None)
        if register is not None:
            register(sub)
    return parser


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("clinicall")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"clinicall: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        result = asyncio.run(args.func(args, settings))
    except (CommandError, SettingsError) as exc:
        print(f"clinicall: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        print(f"clinicall: cannot reach the database {database_label(settings)} ({describe(exc)}); "
              "check CLINICALL_DATABASE__URL and that the server is running.", file=sys.stderr)
        return 2
    return int(result or 0)


def database_label(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database.url).render_as_string(hide_password=True)


def describe(exc: BaseException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).splitlines()[0] if str(root) else type(root).__name__
    return text[:200]


if __name__ == "__main__":
    sys.exit(main())
