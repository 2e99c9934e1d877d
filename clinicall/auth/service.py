"""Account operations: plain async code over the auth tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update

from clinicall.auth.models import ROLES, ApiToken, DisplayToken, Session, User
from clinicall.auth.passwords import check_password
from clinicall.db import Database, utcnow
from clinicall.problem import Problem

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}\Z")
EXTENSION_RE = re.compile(r"^[0-9]{2,8}\Z")


@dataclass(frozen=True)
class Principal:
    """Who is making a request: a user (session or bearer token) or a display (read-only)."""

    kind: str  # "user" | "display"
    user_id: int | None = None
    username: str = ""
    display_name: str = ""
    roles: frozenset[str] = frozenset()
    extension: str | None = None
    display_token_id: int | None = None
    room_ids: tuple[int, ...] = ()
    service_ids: tuple[int, ...] = ()
    via: str = field(default="session", compare=False)

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles & set(roles)) or "admin" in self.roles


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _hasher() -> PasswordHasher:
    return PasswordHasher()


async def hash_password(password: str) -> str:
    """Argon2 is deliberately slow (~0.1-0.5 s): run it off the event loop."""
    return await asyncio.to_thread(_hasher().hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_policy(password: str, username: str = "", extension: str | None = None) -> None:
    check_password(password, username, extension)


def validate_roles(roles: list[str]) -> list[str]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise Problem(422, "Unknown role", f"Roles must be one or more of {', '.join(ROLES)}; got {', '.join(roles) or 'none'}.")
    return sorted(set(roles))


async def create_user(db: Database, username: str, password: str, roles: list[str], display_name: str = "",
                      extension: str | None = None, language: str = "vi") -> User:
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise Problem(422, "Invalid username", "Use 2-64 lowercase letters, digits, dot, dash or underscore for the username.",
                      code="invalid_username", errors=[{"field": "username", "code": "invalid_username"}])
    if extension is not None and not EXTENSION_RE.match(extension):
        raise Problem(422, "Invalid extension", "The phone extension must be 2 to 8 digits, e.g. 1001.",
                      code="invalid_extension", errors=[{"field": "extension", "code": "invalid_extension"}])
    check_password_policy(password, username, extension)
    roles = validate_roles(roles)
    password_hash = await hash_password(password)
    async with db.transaction() as s:
        if await s.scalar(select(User.id).where(User.username == username)) is not None:
            raise Problem(409, "Username taken", f"A user named '{username}' already exists; choose another name.",
                          code="username_taken", errors=[{"field": "username", "code": "username_taken"}])
        if extension and await s.scalar(select(User.id).where(User.extension == extension)) is not None:
            raise Problem(409, "Extension taken", f"Extension {extension} already belongs to another user.",
                          code="extension_taken", errors=[{"field": "extension", "code": "extension_taken"}])
        user = User(username=username, password_hash=password_hash, roles=roles,
                    display_name=display_name or username, extension=extension, language=language)
        s.add(user)
    return user


async def count_admins(db: Database) -> int:
    async with db.session() as s:
        users = (await s.scalars(select(User).where(User.active.is_(True)))).all()
        return sum(1 for u in users if "admin" in (u.roles or []))


async def authenticate(db: Database, username: str, password: str) -> User | None:
    async with db.session() as s:
        user = await s.scalar(select(User).where(User.username == username.strip().lower(), User.active.is_(True)))
    if user is None:
        await hash_password(password)  # same cost for unknown users: no timing oracle
        return None
    if not await asyncio.to_thread(_verify, user.password_hash, password):
        return None
    if _hasher().check_needs_rehash(user.password_hash):
        new_hash = await hash_password(password)
        async with db.transaction() as s:
            row = await s.get(User, user.id)
            if row is not None:
                row.password_hash = new_hash
    return user


async def start_session(db: Database, user_id: int, hours: int) -> str:
    token = new_token()
    async with db.transaction() as s:
        s.add(Session(token_hash=hash_token(token), user_id=user_id, expires_at=utcnow() + dt.timedelta(hours=hours)))
    return token


async def end_session(db: Database, token: str) -> None:
    async with db.transaction() as s:
        row = await s.scalar(select(Session).where(Session.token_hash == hash_token(token)))
        if row is not None:
            await s.delete(row)


def principal_for(user: User, via: str) -> Principal:
    return Principal(kind="user", user_id=user.id, username=user.username, display_name=user.display_name,
                     roles=frozenset(user.roles or []), extension=user.extension, via=via)


async def principal_from_session(db: Database, token: str) -> Principal | None:
    async with db.session() as s:
        row = (await s.execute(
            select(User).join(Session, Session.user_id == User.id)
            .where(Session.token_hash == hash_token(token), Session.expires_at > utcnow(), User.active.is_(True))
        )).scalar_one_or_none()
        return principal_for(row, "session") if row else None


async def principal_from_bearer(db: Database, token: str) -> Principal | None:
    async with db.session() as s:
        user = (await s.execute(
            select(User).join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False), User.active.is_(True))
        )).scalar_one_or_none()
        if user is not None:
            return principal_for(user, "bearer")
        display = await s.scalar(
            select(DisplayToken).where(DisplayToken.token_hash == hash_token(token), DisplayToken.revoked.is_(False))
        )
        if display is not None:
            return Principal(kind="display", username=f"display:{display.name}", display_token_id=display.id,
                             room_ids=tuple(display.room_ids or ()), service_ids=tuple(display.service_ids or ()),
                             via="display")
    return None


async def create_api_token(db: Database, user_id: int, name: str) -> str:
    token = new_token()
    async with db.transaction() as s:
        s.add(ApiToken(token_hash=hash_token(token), user_id=user_id, name=name))
    return token


async def create_display_token(db: Database, name: str, room_ids: list[int] | None = None,
                               service_ids: list[int] | None = None) -> tuple[int, str]:
    token = new_token()
    async with db.transaction() as s:
        row = DisplayToken(token_hash=hash_token(token), name=name, room_ids=room_ids or [], service_ids=service_ids or [])
        s.add(row)
        await s.flush()
        return row.id, token


async def revoke_display_token(db: Database, token_id: int) -> bool:
    async with db.transaction() as s:
        row = await s.get(DisplayToken, token_id)
        if row is None:
            return False
        row.revoked = True
        return True


async def list_users(db: Database) -> list[User]:
    async with db.session() as s:
        return list((await s.scalars(select(User).order_by(User.username))).all())


async def list_display_tokens(db: Database) -> list[DisplayToken]:
    async with db.session() as s:
        return list((await s.scalars(select(DisplayToken).order_by(DisplayToken.id))).all())


async def get_user(db: Database, user_id: int) -> User | None:
    async with db.session() as s:
        return await s.get(User, user_id)


async def users_by_ids(db: Database, ids: list[int]) -> dict[int, User]:
    if not ids:
        return {}
    async with db.session() as s:
        rows = (await s.scalars(select(User).where(User.id.in_(ids)))).all()
        return {u.id: u for u in rows}


async def user_by_extension(db: Database, extension: str) -> User | None:
    async with db.session() as s:
        return await s.scalar(select(User).where(User.extension == extension, User.active.is_(True)))


async def update_user(db: Database, user_id: int, *, roles: list[str] | None = None, active: bool | None = None,
                      display_name: str | None = None, extension: str | None = None, password: str | None = None) -> User:
    async with db.transaction() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise Problem(404, "User not found", "No user with that id exists.")
        if roles is not None:
            user.roles = validate_roles(roles)
        if active is not None:
            user.active = active
        if display_name is not None:
            user.display_name = display_name
        if extension is not None:
            if extension and not EXTENSION_RE.match(extension):
                raise Problem(422, "Invalid extension", "The phone extension must be 2 to 8 digits, e.g. 1001.",
                      code="invalid_extension", errors=[{"field": "extension", "code": "invalid_extension"}])
            clash = await s.scalar(select(func.count()).select_from(User).where(User.extension == extension, User.id != user_id))
            if extension and clash:
                raise Problem(409, "Extension taken", f"Extension {extension} already belongs to another user.",
                          code="extension_taken", errors=[{"field": "extension", "code": "extension_taken"}])
            user.extension = extension or None
        if password is not None:
            check_password_policy(password, user.username, user.extension)
            user.password_hash = await hash_password(password)
        if password is not None or active is False:
            await s.execute(delete(Session).where(Session.user_id == user_id))
        if password is not None:  # a token minted with a stolen session must not outlive the reset
            await s.execute(update(ApiToken).where(ApiToken.user_id == user_id).values(revoked=True))
        return user


async def set_password(db: Database, user_id: int, password: str) -> None:
    """A new password (change or reset): checked against the policy; every session of the user ends and
    every API token of the user is revoked."""
    await update_user(db, user_id, password=password)


async def user_by_name(db: Database, username: str) -> User | None:
    async with db.session() as s:
        return await s.scalar(select(User).where(User.username == username))


async def count_sessions(db: Database, user_id: int) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Session).where(Session.user_id == user_id)) or 0)
