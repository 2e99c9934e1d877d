"""Authenticates every request (session cookie, bearer token, or display token) and enforces access."""

from __future__ import annotations

import hmac
from functools import partial
from urllib.parse import quote, urlencode

from aiohttp import web
from yarl import URL

from clinicall.auth import service
from clinicall.auth.access import PRINCIPAL_KEY, access_of
from clinicall.auth.models import STAFF_ROLES
from clinicall.auth.service import Principal
from clinicall.auth.token_cache import TOKEN_CACHE_KEY
from clinicall.keys import DB_KEY, SETTINGS_KEY
from clinicall.logs import REQUEST_CONTEXT
from clinicall.problem import Problem

SESSION_COOKIE = "clinicall_session"
DISPLAY_COOKIE = "clinicall_display"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
DISPLAY_PATHS = ("/ws/display", "/api/display", "/display", "/tv", "/door", "/audio/")


def wants_html(request: web.Request) -> bool:
    return request.method == "GET" and not request.path.startswith(("/api/", "/ws/")) and "text/html" in request.headers.get("Accept", "")


BAD_TOKEN_PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>clinicall</title>
<link rel="stylesheet" href="/static/clinicall/base.css"></head><body><main><h1>Mã màn hình không hợp lệ</h1>
<p>Đường dẫn của màn hình này có mã (token) không đúng hoặc đã bị thu hồi. Nhờ quản trị viên tạo đường dẫn mới
trong trang Quản trị &rarr; Màn hình.</p><p lang="en">This screen's link has an unknown or revoked display token.
Ask an admin for a new screen link (Admin &rarr; Display tokens).</p></main></body></html>"""


def bad_display_token(request: web.Request) -> web.Response:
    if wants_html(request):
        return web.Response(status=401, text=BAD_TOKEN_PAGE, content_type="text/html")
    raise Problem(401, "Invalid display token", "This display token is unknown or revoked; ask an admin for a new screen link.")


def keep_display_token(request: web.Request, token: str) -> web.HTTPSeeOther:
    """A screen's first visit (?token=...): the token moves into an HttpOnly cookie and the page reloads
    without it, so it stays out of the address bar, history and proxy logs from then on."""
    query = urlencode([(k, v) for k, v in request.query.items() if k != "token"])
    response = web.HTTPSeeOther(request.path + (f"?{query}" if query else ""))
    response.set_cookie(DISPLAY_COOKIE, token, max_age=400 * 24 * 3600, path="/", httponly=True, samesite="Strict",
                        secure=request.app[SETTINGS_KEY].http.cookie_secure)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def allowed_origin(request: web.Request, origin: str) -> bool:
    settings = request.app[SETTINGS_KEY]
    own = {f"{request.scheme}://{request.host}", settings.http.base_url()}
    return origin in own or origin in settings.http.allowed_origins


def origin_of(referer: str) -> str:
    """scheme://host[:port] of a Referer, or 'null' when it is not an absolute http(s) URL."""
    try:
        url = URL(referer)
    except ValueError:
        return "null"
    if url.scheme not in ("http", "https") or not url.host:
        return "null"
    return str(url.origin())


def check_same_origin(request: web.Request, *, required: bool) -> None:
    """A cookie-authenticated write (or a login form) must come from our own pages: Origin decides, else
    Referer. With neither, a browser's form post (the only cross-site write a browser makes without
    asking first) is refused; other content types cannot be sent cross-site without CORS, which we never
    grant. Bearer-token clients are not checked: a token is not sent by a browser on its own. The login
    form (no session yet) is refused only when it names a foreign origin."""
    origin = request.headers.get("Origin")
    if origin is None and (referer := request.headers.get("Referer")):
        origin = origin_of(referer)
    if origin is None:
        if required and request.content_type in FORM_TYPES:
            raise Problem(403, "Cross-site request refused", "This form post names no origin; send it from "
                          "clinicall's own pages.", code="origin_missing")
        return
    if not allowed_origin(request, origin):
        raise Problem(403, "Cross-site request refused", "This request came from another site; use clinicall's own "
                      "pages.", code="cross_site_request")


def check_socket_origin(request: web.Request, who: Principal) -> None:
    """A websocket opened with a login cookie must come from our own pages: a browser always names the page's
    Origin on a websocket (and sends the cookie whichever site opened it), so a missing or foreign Origin is
    refused. A bearer or display token is not sent by a browser on its own: scripts and speakers need no Origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        if who.via not in ("display", "bearer"):
            raise Problem(403, "Origin required", "Open this page from clinicall itself, or connect with a token.",
                          code="origin_missing")
    elif not allowed_origin(request, origin):
        raise Problem(403, "Cross-site websocket refused", f"Pages from {origin[:100]} may not connect; open the page "
                      "from clinicall itself or ask an admin to add the origin to http.allowed_origins.",
                      code="cross_site_request")


def metrics_principal(request: web.Request, token: str) -> Principal | None:
    expected = request.app[SETTINGS_KEY].auth.metrics_token
    if expected and access_of(request.match_info.handler) in ("scrape", "public") \
            and hmac.compare_digest(token.encode(), expected.encode()):
        return Principal(kind="scrape", username="metrics-scraper", via="scrape")
    return None


async def authenticate(request: web.Request) -> Principal | None:
    db = request.app[DB_KEY]
    bearer = partial(request.app[TOKEN_CACHE_KEY].principal, lookup=partial(service.principal_from_bearer, db))
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        who = metrics_principal(request, token) or await bearer(token)
        if who is None:
            raise Problem(401, "Invalid token", "The bearer token is unknown or revoked; ask an admin for a new one.",
                          code="invalid_token")
        return who
    if (token := request.query.get("token")) and request.path.startswith(DISPLAY_PATHS):
        who = await bearer(token)
        if who is None:
            raise BadDisplayToken
        if who.kind == "display" and wants_html(request):
            raise keep_display_token(request, token)
        return who
    cookie = request.cookies.get(SESSION_COOKIE)
    if request.method in UNSAFE and (cookie or request.path == "/login"):
        check_same_origin(request, required=bool(cookie))
    who = await service.principal_from_session(db, cookie) if cookie else None
    if who is None and (token := request.cookies.get(DISPLAY_COOKIE)) and request.path.startswith(DISPLAY_PATHS):
        who = await bearer(token)
        if who is None or who.kind != "display":
            raise BadDisplayToken
    return who


class BadDisplayToken(Exception):
    pass


@web.middleware
async def auth_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    try:
        who = await authenticate(request)
    except BadDisplayToken:
        return bad_display_token(request)
    if who is not None:
        request[PRINCIPAL_KEY] = who
        if (log_context := REQUEST_CONTEXT.get()) is not None:
            log_context["user"] = who.username  # on every log line written while serving this request

    access = access_of(request.match_info.handler)
    if request.match_info.http_exception is not None or access == "public" or request.path.startswith("/static/"):
        return await handler(request)
    if who is None:
        if wants_html(request):
            raise web.HTTPFound(f"/login?next={quote(request.path_qs)}")
        raise Problem(401, "Login required", "Log in (or send a bearer token) to use this API.")
    if who.kind == "display" and access != "display":
        raise Problem(403, "Display token", "A display token only reads the display feed; log in as a user for this.",
                      code="display_token_not_allowed")
    if access == "display" and who.is_user and not who.has_any(*STAFF_ROLES):
        raise Problem(403, "Not allowed", "The waiting-room screens are for the clinic's staff and its screens.",
                      code="role_required", roles=list(STAFF_ROLES))
    return await handler(request)
