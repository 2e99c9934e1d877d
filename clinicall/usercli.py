"""`clinicall user add | list | passwd | disable | enable`: accounts from the command line."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from clinicall.db import Database
from clinicall.errors import CommandError
from clinicall.settings import Settings


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    from clinicall.migrate import migrate

    db = Database(settings.database.url)
    try:
        await migrate(db)
        yield db
    finally:
        await db.dispose()


def read_password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise CommandError(f"{args.password_env} is empty or not set")
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (10+ characters): ")
    if first != getpass.getpass("Repeat password: "):
        raise CommandError("the passwords differ; nothing was changed")
    return first


async def _user_id(db: Database, name: str) -> int:
    from clinicall.auth.service import user_by_name

    user = await user_by_name(db, name)
    if user is None:
        raise CommandError(f"no user named {name!r} (see: clinicall user list)")
    return user.id


async def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.auth.service import create_user
    from clinicall.problem import Problem

    async with _database(settings) as db:
        try:
            user = await create_user(db, args.name, read_password(args), args.role, args.display_name or "", args.extension)
        except Problem as problem:
            raise CommandError(problem.detail) from None
    print(f"created user {user.username} with roles {', '.join(user.roles)}")
    return 0


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.auth.service import list_users

    async with _database(settings) as db:
        users = await list_users(db)
    print(f"{'username':<20} {'active':<7} {'extension':<10} {'roles':<30} name")
    for user in users:
        print(f"{user.username:<20} {'yes' if user.active else 'no':<7} {user.extension or '':<10} "
              f"{','.join(user.roles or []):<30} {user.display_name}")
    return 0


async def cmd_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.auth.service import count_sessions, update_user
    from clinicall.problem import Problem

    async with _database(settings) as db:
        user_id = await _user_id(db, args.name)
        ended = await count_sessions(db, user_id)
        try:
            await update_user(db, user_id, password=read_password(args))  # ends the sessions too
        except Problem as problem:
            raise CommandError(problem.detail) from None
    print(f"changed the password of {args.name}; ended {ended} login session(s)")
    return 0


async def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.auth.service import count_sessions, update_user

    async with _database(settings) as db:
        user_id = await _user_id(db, args.name)
        ended = await count_sessions(db, user_id)
        await update_user(db, user_id, active=False)  # ends the sessions too
    print(f"disabled {args.name}; ended {ended} login session(s)")
    return 0


async def cmd_enable(args: argparse.Namespace, settings: Settings) -> int:
    from clinicall.auth.service import update_user

    async with _database(settings) as db:
        await update_user(db, await _user_id(db, args.name), active=True)
    print(f"enabled {args.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", action="append", required=True, help="admin, supervisor, agent, reception, doctor or referrer (repeatable)")
    add.add_argument("--display-name")
    add.add_argument("--extension", help="the agent's desk phone extension, e.g. 1001")
    add.add_argument("--password-env", help="read the password from this environment variable instead of asking")
    add.set_defaults(func=cmd_add)
    user_sub.add_parser("list", help="list users, their roles and whether they may log in").set_defaults(func=cmd_list)
    passwd = user_sub.add_parser("passwd", help="set a user's password (ends the user's login sessions)")
    passwd.add_argument("name")
    passwd.add_argument("--password-env", help="read the password from this environment variable instead of asking")
    passwd.set_defaults(func=cmd_passwd)
    disable = user_sub.add_parser("disable", help="stop a user from logging in and end the user's sessions")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_disable)
    enable = user_sub.add_parser("enable", help="let a disabled user log in again")
    enable.add_argument("name")
    enable.set_defaults(func=cmd_enable)
