"""HTTP errors as application/problem+json (RFC 9457), and request-body parsing that turns every
malformed input into a 4xx with a sentence a person can act on."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ValidationError
from pydantic_core import PydanticCustomError

PROBLEM_TYPE = "application/problem+json"
T = TypeVar("T", bound=BaseModel)
# No JSON API takes more (files and imports come as multipart or CSV): a bigger body, however cheap to send,
# would hold the event loop (and every other user) while it is parsed and checked.
MAX_JSON_BYTES = 256 * 1024
MAX_FIELD_ERRORS = 20
# A problem's stable `code` (what pages translate) when the raiser names none: from the status.
STATUS_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_input",
                429: "rate_limited", 500: "internal_error", 502: "upstream_error", 503: "unavailable"}


class Problem(Exception):
    """Raise from a handler or service: becomes a problem+json response."""

    def __init__(self, status: int, title: str, detail: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code or STATUS_CODES.get(status, "error")
        self.headers = headers or {}
        self.extra = extra

    def response(self, instance: str | None = None) -> web.Response:
        response = problem_response(self.status, self.title, self.detail, instance=instance, code=self.code, **self.extra)
        response.headers.update(self.headers)
        return response


def problem_response(status: int, title: str, detail: str, instance: str | None = None, *, code: str | None = None,
                     **extra: Any) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail,
                            "code": code or STATUS_CODES.get(status, "error")}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False, default=str), content_type=PROBLEM_TYPE)


def not_found(what: str, detail: str | None = None) -> Problem:
    return Problem(404, f"{what} not found", detail or f"No {what.lower()} with that id exists; check the id and try again.")


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


def conflict(detail: str, **extra: Any) -> Problem:
    return Problem(409, "Conflict", detail, **extra)


def bad_request(detail: str, **extra: Any) -> Problem:
    return Problem(400, "Bad request", detail, **extra)


async def read_json(request: web.Request) -> Any:
    if request.content_type not in ("application/json", "application/merge-patch+json"):
        raise Problem(415, "Unsupported media type", "Send the body as JSON with Content-Type: application/json.")
    raw = await read_at_most(request, MAX_JSON_BYTES)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, "Malformed JSON", f"The body is not valid UTF-8 JSON ({exc}); fix it and send again.") from None
    except RecursionError:
        raise Problem(400, "Malformed JSON", "The JSON body is nested too deeply; send a flat object.") from None
    # JSON can only carry a NUL as the escape \u0000 (a raw one is malformed): no escape, no walk
    if b"\\u0000" in raw and (field := nul_field(data)) is not None:
        raise nul_problem(field)
    return data


async def read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (whatever Content-Length says)."""
    too_large = Problem(413, "Body too large", f"The request body is larger than {limit // 1024} KB; send less data "
                        "at once.", code="too_large")
    if (request.content_length or 0) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


# Control characters, format characters (bidi overrides and isolates, zero-width marks), surrogates, private and
# unassigned code points, line and paragraph separators: none belongs in a name or a one-line text.
CONTROL_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def has_control(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(ch) in CONTROL_CATEGORIES and ch not in allowed for ch in text)


def _one_line(value: str) -> str:
    if has_control(value):
        raise PydanticCustomError("invalid_characters", "contains a line break, a control or a direction mark")
    return value


# A name set by staff (a service, a room, a doctor, a user, a screen): it reaches screens, printed tickets,
# spoken announcements and exports, where a direction mark or an escape sequence would disguise it.
OneLine = Annotated[str, AfterValidator(_one_line)]


# The days a person can mean. Past them the date arithmetic of a filter (a week's end, a day's start in UTC, the day
# after) overflows, a 500; a stored one would break every list that later reads it.
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(2200, 1, 1)


def _real_day(value: dt.date) -> dt.date:
    if not EARLIEST_DAY <= value < LATEST_DAY:
        raise PydanticCustomError("invalid_date", "out of range: use a day from 1900 to 2199")
    return value


# A day in a query (a filter's from, to or date): 422 `invalid_date` under the field past the range. Days in a body
# are checked where they are stored (check_day), which answers `invalid_date` as the problem's own code.
Day = Annotated[dt.date, AfterValidator(_real_day)]


def check_day(value: dt.date | None, field: str) -> None:
    """The same bounds for a day parsed by hand (or already in a model): 422 `invalid_date` naming the field."""
    if value is not None and not EARLIEST_DAY <= value < LATEST_DAY:
        raise Problem(422, "Invalid date", f"{field} {value.isoformat()} is out of range; use a real date.",
                      code="invalid_date", errors=[{"field": field, "code": "invalid_date", "message": "out of range"}])


def nul_field(data: Any) -> str | None:
    """Where a NUL character hides in a JSON value (a key or a text), or None: no text field takes one, and
    PostgreSQL cannot store it (it would fail as a 500 deep in a write)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "(body)"
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    return name
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
    return None


def nul_problem(field: str) -> Problem:
    return Problem(422, "Invalid characters", f"{field[:100]} contains a NUL character; remove it.",
                   code="invalid_characters", errors=[{"field": field[:100], "code": "invalid_characters",
                                                        "message": "contains a NUL character"}])


async def parse_body(request: web.Request, model: type[T]) -> T:
    data = await read_json(request)
    return validate(model, data)


def validate(model: type[T], data: Any) -> T:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def parse_query(request: web.Request, model: type[T]) -> T:
    return validate(model, dict(request.query))


def validation_problem(exc: ValidationError) -> Problem:
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "code": err["type"], "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)[:MAX_FIELD_ERRORS]
    ]
    first, more = errors[0], exc.error_count() - 1
    detail = f"{first['field']}: {first['message']}" + (f" (and {more} more)" if more else "")
    return Problem(422, "Invalid input", f"Please correct the input. {detail}.", errors=errors)


def int_param(request: web.Request, name: str) -> int:
    raw = request.match_info.get(name, "")
    try:
        value = int(raw)
    except ValueError:
        raise Problem(404, "Not found", f"'{raw}' is not a valid {name}; use the numeric id.") from None
    if not 0 < value < 2**63:
        raise Problem(404, "Not found", f"'{raw}' is not a valid {name}.")
    return value
