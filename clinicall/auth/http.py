"""Login, logout, who am I, and the admin's user and token management."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_request import FileField
from multidict import MultiDictProxy
from pydantic import BaseModel, Field
from yarl import URL

from clinicall.auth import service
from clinicall.auth.access import principal, public, require
from clinicall.auth.middleware import SESSION_COOKIE
from clinicall.auth.models import STAFF_ROLES, User
from clinicall.auth.throttle import LOGIN_THROTTLE_KEY, wait_text
from clinicall.auth.token_cache import forget_tokens
from clinicall.client_address import client_address as forwarded_client_address
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.nav import NAV_KEY
from clinicall.problem import OneLine, Problem, int_param, parse_body, validate

routes = web.RouteTableDef()
LOGIN_PAGE = Path(__file__).resolve().parent.parent / "web" / "login.html"


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewUser(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    roles: list[str] = Field(min_length=1)
    display_name: OneLine = Field("", max_length=200)
    extension: str | None = Field(None, max_length=8)
    language: Literal["vi", "en", "zh"] = "vi"


class UserPatch(BaseModel):
    roles: list[str] | None = None
    active: bool | None = None
    display_name: OneLine | None = Field(None, max_length=200)
    extension: str | None = Field(None, max_length=8)
    password: str | None = Field(None, max_length=1024)


class NewToken(BaseModel):
    name: OneLine = Field(min_length=1, max_length=100)


class NewDisplayToken(BaseModel):
    name: OneLine = Field(min_length=1, max_length=100)
    room_ids: list[int] = Field(default_factory=list)
    service_ids: list[int] = Field(default_factory=list)


def no_patient_role(roles: list[str]) -> None:
    """Patient accounts belong to a patient record: crm_bridge makes them when treatment starts."""
    if "patient" in roles:
        raise Problem(422, "Role reserved", "Patient accounts are made from the patient's record when treatment starts.",
                      code="patient_role_reserved", errors=[{"field": "roles", "code": "patient_role_reserved",
                                                            "message": "reserved"}])


def user_json(user: User) -> dict[str, object]:
    return {"id": user.id, "username": user.username, "display_name": user.display_name, "roles": user.roles,
            "extension": user.extension, "language": user.language, "active": user.active}


def _set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[SETTINGS_KEY]
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=settings.http.cookie_secure,
                        max_age=settings.http.session_hours * 3600, path="/")


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(LOGIN_PAGE, headers={"Cache-Control": "no-store"})


THROTTLED_PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Đăng nhập · clinicall</title>
<link rel="stylesheet" href="/static/clinicall/base.css"></head><body><main style="max-width:26rem">
<h1>Tạm khoá đăng nhập</h1><p class="error" role="alert">Đã nhập sai mật khẩu quá nhiều lần. Vui lòng thử lại sau {wait}.</p>
<p lang="en">Too many wrong passwords. Try again in {seconds} seconds.</p>
<p lang="zh">密码错误次数过多，请在 {seconds} 秒后重试。</p><p><a href="{again}">Đăng nhập lại</a></p></main></body></html>"""


def safe_next(raw: object) -> str:
    """Where to go after logging in: a path on this site only ('/agent?x=1'), else '/'. Printable ASCII
    only, because browsers drop tabs and line breaks ('/\\t/evil.example' would become '//evil.example')."""
    if not isinstance(raw, str) or not 0 < len(raw) <= 2000:
        return "/"
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in raw) or "\\" in raw:
        return "/"
    if not raw.startswith("/") or raw.startswith("//"):
        return "/"
    url = URL(raw)
    if url.is_absolute() or url.scheme or url.host:
        return "/"
    return raw


def login_url(**params: str) -> str:
    return "/login?" + urlencode(params)


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | FileField]:
    try:
        return await request.post()
    except web.HTTPException:
        raise
    except (ValueError, AssertionError, RuntimeError, UnicodeDecodeError, LookupError, TypeError,
            HttpProcessingError) as exc:
        raise Problem(400, "Malformed form", f"The form body cannot be read ({type(exc).__name__}); "
                      "send it as application/x-www-form-urlencoded or multipart/form-data.",
                      code="malformed_form") from None


def client_address(request: web.Request) -> str:
    """Behind the clinic's proxy (http.trusted_proxies) the client it names, else the peer: the per-address
    login limit must not count every client as the proxy (30 wrong guesses would lock everyone out)."""
    return forwarded_client_address(request)


async def checked_login(request: web.Request, body: LoginBody) -> User | None:
    """The user when the password is right; None when wrong. Raises Throttled while either the account
    or the address has too many recent failures (even with the right password)."""
    throttle = request.app[LOGIN_THROTTLE_KEY]
    address = client_address(request)
    wait = await throttle.attempt(body.username, address)
    if wait:
        raise Throttled(wait)
    user = await service.authenticate(request.app[DB_KEY], body.username, body.password)
    if user is not None:
        await throttle.succeeded(body.username, address)
    return user


class Throttled(Exception):
    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds

    def problem(self) -> Problem:
        return Problem(429, "Too many failed logins",
                       f"Đã nhập sai mật khẩu quá nhiều lần. Vui lòng thử lại sau {wait_text(self.seconds)}. "
                       f"(Too many wrong passwords; try again in {self.seconds} s.)",
                       code="login_throttled", retry_after=self.seconds,
                       headers={"Retry-After": str(self.seconds)})


@routes.post("/login")
@public
async def login_form(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    target = safe_next(form.get("next") or "/")
    fields = {name: form.get(name, "") for name in ("username", "password")}
    if not all(isinstance(value, str) for value in fields.values()):
        raise Problem(400, "Malformed form", "username and password must be text fields.", code="malformed_form")
    body = validate(LoginBody, fields) if all(fields.values()) else None
    try:
        user = await checked_login(request, body) if body is not None else None
    except Throttled as exc:
        page = THROTTLED_PAGE.format(wait=wait_text(exc.seconds), seconds=exc.seconds,
                                     again=html.escape(login_url(next=target)))
        return web.Response(status=429, text=page, content_type="text/html", headers={"Retry-After": str(exc.seconds)})
    if user is None:
        raise web.HTTPSeeOther(login_url(error="1", next=target))
    token = await service.start_session(request.app[DB_KEY], user.id, request.app[SETTINGS_KEY].http.session_hours)
    response = web.HTTPSeeOther(target)
    _set_cookie(request, response, token)
    raise response


@routes.post("/api/login")
@public
async def login_api(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    try:
        user = await checked_login(request, body)
    except Throttled as exc:
        raise exc.problem() from None
    if user is None:
        raise Problem(401, "Login failed", "The username or password is wrong; check them and try again.",
                      code="login_failed")
    token = await service.start_session(request.app[DB_KEY], user.id, request.app[SETTINGS_KEY].http.session_hours)
    response = web.json_response({"user": user_json(user)})
    _set_cookie(request, response, token)
    return response


@routes.post("/logout")
@public
async def logout(request: web.Request) -> web.StreamResponse:
    if token := request.cookies.get(SESSION_COOKIE):
        await service.end_session(request.app[DB_KEY], token)
        await forget_tokens(request.app)  # the session's open sockets close too (clinicall/auth/live.py)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    who = require(request)
    nav = [link.as_json() for link in request.app[NAV_KEY] if who.has_any(*link.roles)]
    return web.json_response({"id": who.user_id, "username": who.username, "display_name": who.display_name,
                              "roles": sorted(who.roles), "extension": who.extension, "nav": nav,
                              "clinic": request.app[SETTINGS_KEY].clinic.name,
                              "language": request.app[SETTINGS_KEY].clinic.language,
                              "timezone": request.app[SETTINGS_KEY].clinic.timezone})


@routes.get("/api/users")
async def users_list(request: web.Request) -> web.Response:
    require(request, "admin", "supervisor")
    # patients' own logins are named after the patient and their phone: they are patient data, listed (and
    # audited) at /api/patient-accounts, not among the staff
    users = [u for u in await service.list_users(request.app[DB_KEY]) if "patient" not in (u.roles or [])]
    return web.json_response({"users": [user_json(u) for u in users]})


@routes.post("/api/users")
async def users_create(request: web.Request) -> web.Response:
    require(request, "admin")
    body = await parse_body(request, NewUser)
    no_patient_role(body.roles)
    user = await service.create_user(request.app[DB_KEY], body.username, body.password, body.roles,
                                     body.display_name, body.extension, body.language)
    return web.json_response(user_json(user), status=201)


@routes.patch("/api/users/{user_id}")
async def users_update(request: web.Request) -> web.Response:
    who = require(request, "admin")
    user_id = int_param(request, "user_id")
    body = await parse_body(request, UserPatch)
    no_patient_role(body.roles or [])
    target = await service.get_user(request.app[DB_KEY], user_id)
    if target is None or "patient" in (target.roles or []):  # a patient's login is managed from their record
        raise Problem(404, "User not found", "No staff user with that id exists.", code="user_not_found")
    if user_id == who.user_id and (body.active is False or (body.roles is not None and "admin" not in body.roles)):
        raise Problem(409, "Cannot lock yourself out", "You cannot remove your own admin role or deactivate yourself.")
    user = await service.update_user(request.app[DB_KEY], user_id, **body.model_dump(exclude_unset=True))
    await forget_tokens(request.app)
    return web.json_response(user_json(user))


@routes.post("/api/users/{user_id}/tokens")
async def token_create(request: web.Request) -> web.Response:
    who = require(request)
    user_id = int_param(request, "user_id")
    if user_id != who.user_id and "admin" not in who.roles:
        raise Problem(403, "Not allowed", "Only an admin can create tokens for another user.")
    if not who.has_any(*STAFF_ROLES):  # a referrer's or a patient's session must not mint a lasting credential
        raise Problem(403, "Not allowed", "API tokens are for the clinic's staff and their scripts.",
                      code="role_required", roles=list(STAFF_ROLES))
    body = await parse_body(request, NewToken)
    owner = await service.get_user(request.app[DB_KEY], user_id)
    if owner is None:
        raise Problem(404, "User not found", "No user with that id exists.", code="user_not_found")
    if not set(owner.roles or []) & set(STAFF_ROLES):  # nor for them: an admin minting one for a patient
        raise Problem(403, "Not allowed", "API tokens are for the clinic's staff and their scripts.",
                      code="role_required", roles=list(STAFF_ROLES))
    token = await service.create_api_token(request.app[DB_KEY], user_id, body.name)
    return web.json_response({"token": token, "note": "Shown once; store it now."}, status=201)


@routes.get("/api/display-tokens")
async def display_tokens_list(request: web.Request) -> web.Response:
    require(request, "admin")
    rows = await service.list_display_tokens(request.app[DB_KEY])
    return web.json_response({"display_tokens": [
        {"id": r.id, "name": r.name, "room_ids": r.room_ids, "service_ids": r.service_ids, "revoked": r.revoked,
         "created_at": r.created_at.isoformat()} for r in rows]})


@routes.post("/api/display-tokens")
async def display_tokens_create(request: web.Request) -> web.Response:
    require(request, "admin")
    body = await parse_body(request, NewDisplayToken)
    token_id, token = await service.create_display_token(request.app[DB_KEY], body.name, body.room_ids, body.service_ids)
    base = request.app[SETTINGS_KEY].http.base_url()
    return web.json_response({"id": token_id, "token": token, "tv_url": f"{base}/tv?token={token}",
                              "note": "Shown once; open tv_url on the screen."}, status=201)


@routes.delete("/api/display-tokens/{token_id}")
async def display_tokens_revoke(request: web.Request) -> web.Response:
    require(request, "admin")
    if not await service.revoke_display_token(request.app[DB_KEY], int_param(request, "token_id")):
        raise Problem(404, "Display token not found", "No display token with that id exists.")
    await forget_tokens(request.app)
    return web.json_response({"revoked": True})


def current_user_id(request: web.Request) -> int | None:
    who = principal(request)
    return who.user_id if who else None
