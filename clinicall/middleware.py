"""Request logging and the conversion of every error into application/problem+json."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError

from clinicall.client_address import client_address
from clinicall.db import is_unavailable
from clinicall.logs import REQUEST_CONTEXT
from clinicall.metrics import METRICS_KEY
from clinicall.pages import forbidden_page, wants_page
from clinicall.problem import Problem, problem_response

log = logging.getLogger("clinicall.http")

# Same-origin Referer is what cookie writes fall back on when a browser sends no Origin.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}
STATUS_TITLES = {404: "Not found", 405: "Method not allowed", 413: "Body too large", 401: "Login required",
                 403: "Forbidden", 400: "Bad request"}


CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request whose client left before the answer


@web.middleware
async def request_log_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    # a proxy's id is kept when it looks like one; anything else (spaces, quotes, a forged log line) is replaced
    request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
    context = {"request_id": request_id, "client": client_address(request)}
    REQUEST_CONTEXT.set(context)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers.setdefault("X-Request-Id", request_id)
        if not response.prepared:
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        if request.transport is None or request.transport.is_closing():
            status = CLIENT_CLOSED_REQUEST  # aiohttp cancels the handler of a client that went away: not a 500
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        metrics = request.app[METRICS_KEY]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(route).observe(elapsed)
        log.info("%s %s %s %.1fms", request.method, request.path, status, elapsed * 1000)


@web.middleware
async def problem_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    try:
        if "\x00" in request.path or any("\x00" in key or "\x00" in value for key, value in request.query.items()):
            # an id, a token or a filter with a NUL reaches no handler: PostgreSQL cannot even compare one
            raise Problem(400, "Invalid characters", "The address contains a NUL character (%00); remove it.",
                          code="invalid_characters")
        return await handler(request)
    except Problem as problem:
        if problem.status == 403 and wants_page(request):
            return forbidden_page(request, list(problem.extra.get("roles", [])))
        return problem.response(instance=request.path)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/problem+json":
            raise
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else _default_detail(exc.status, request)
        return problem_response(exc.status, STATUS_TITLES.get(exc.status, exc.reason), detail, instance=request.path)
    except Exception as exc:
        if body_cut_short(request, exc):
            log.info("%s %s: the client sent part of its body and went away", request.method, request.path)
            return problem_response(400, "Incomplete request", "The request body ended before its declared length; "
                                    "nothing was saved.", instance=request.path, code="incomplete_body")
        if is_unavailable(exc):
            return database_unavailable(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "Internal error", "Something went wrong on our side; nothing was half-saved. "
                                "Try again, and tell the administrator if it keeps happening.", instance=request.path)


def body_cut_short(request: web.Request, exc: Exception) -> bool:
    """The client stopped sending its body (a disconnect, or fewer bytes than it declared): not our error."""
    if isinstance(exc, PayloadEncodingError):
        return True
    return isinstance(exc, ConnectionResetError) and (request.transport is None or request.transport.is_closing())


DATABASE_RETRY_SECONDS = 5


def database_unavailable(request: web.Request, exc: BaseException) -> web.Response:
    log.warning("database unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
    response = problem_response(503, "Database unavailable", "The database cannot be reached just now; nothing was "
                                "saved. Try again in a few seconds.", instance=request.path, code="database_unavailable")
    response.headers["Retry-After"] = str(DATABASE_RETRY_SECONDS)
    return response


def _default_detail(status: int, request: web.Request) -> str:
    if status == 404:
        return f"There is nothing at {request.path}; check the address."
    if status == 405:
        return f"{request.method} is not supported at {request.path}."
    if status == 413:
        return "The request body is too large; send less data at once."
    return "The request could not be processed."
