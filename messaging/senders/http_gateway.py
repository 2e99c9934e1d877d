"""A configurable HTTP gateway (brandname SMS, Zalo ZNS): URL, auth (header or basic), a body template
whose placeholders are filled JSON-escaped, and a success rule on the status and one JSON field."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus
from xml.sax.saxutils import escape as xml_escape

import aiohttp

from clinicall.settings import MessagingSettings
from messaging.senders.base import Accepted, Outgoing, Receipt, SendError

PLACEHOLDER = re.compile(r"\{(to|to_e164|text|ref)\}")
RETRY_STATUSES = frozenset({408, 425, 429})
MAX_REPLY = 2000


def render_body(template: str, message: Outgoing, content_type: str = "application/json") -> str:
    """Each placeholder becomes its value escaped for the body's format, so a text cannot break out of the
    template's structure: a form's value is percent-encoded (a text's "&to=..." would add a recipient),
    XML's has its markup escaped (a SOAP gateway), anything else is the inside of a JSON string (quotes,
    backslashes and every control character escaped)."""
    values = {"to": message.to_e164.lstrip("+"), "to_e164": message.to_e164, "text": message.text,
              "ref": str(message.ref)}
    kind = content_type.split(";", 1)[0].strip().lower()
    escape = form_value if kind == "application/x-www-form-urlencoded" else xml_text if kind.endswith("xml") \
        else json_string
    return PLACEHOLDER.sub(lambda m: escape(values[m.group(1)]), template)


def form_value(value: str) -> str:
    return quote_plus(value, safe="")


def xml_text(value: str) -> str:
    return xml_escape(value, {'"': "&quot;", "'": "&apos;"})


def json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def field_at(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(body, dict) and part in body:
            body = body[part]
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


def judge(settings: MessagingSettings, status: int, text: str) -> Accepted:
    """The success rule: an accepted status, then (when set) the JSON field equal to the value."""
    reply = f"HTTP {status}: {text[:MAX_REPLY]}"
    if status not in settings.http_success_statuses:
        raise SendError(reply, retry=status >= 500 or status in RETRY_STATUSES)
    body: Any = None
    if settings.http_success_field or settings.http_message_id_field:
        try:
            body = json.loads(text)
        except ValueError:
            raise SendError(reply + " (not JSON)", retry=False) from None
    if settings.http_success_field:
        value = field_at(body, settings.http_success_field)
        if value is None or str(value) != settings.http_success_value:
            raise SendError(reply, retry=False)
    gateway_id = field_at(body, settings.http_message_id_field) if settings.http_message_id_field else None
    return Accepted(gateway_ids=[str(gateway_id)[:100]] if gateway_id not in (None, "") else [], reply=reply)


class HttpGatewaySender:
    name = "http"

    def __init__(self, settings: MessagingSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self.last_error = ""
        self.last_ok = False

    async def start(self, on_receipt: Callable[[Receipt], None], on_ready: Callable[[], None]) -> None:
        headers = {"Content-Type": self.settings.http_content_type, **self.settings.http_headers}
        if self.settings.http_basic_user:
            pair = f"{self.settings.http_basic_user}:{self.settings.http_basic_password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._session = aiohttp.ClientSession(headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds))

    async def send(self, message: Outgoing) -> Accepted:
        assert self._session is not None, "start() first"
        body = render_body(self.settings.http_body_template, message, self.settings.http_content_type).encode()
        try:
            async with self._session.request(self.settings.http_method, self.settings.http_url, data=body) as response:
                text = await response.text(errors="replace")
                accepted = judge(self.settings, response.status, text)
        except SendError as exc:
            self.last_ok, self.last_error = False, exc.reply[:300]
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.last_ok, self.last_error = False, f"{type(exc).__name__}: {exc}"[:300]
            raise SendError(f"gateway unreachable: {self.last_error}", retry=True, unreachable=True) from None
        self.last_ok, self.last_error = True, ""
        return accepted

    def health(self) -> dict[str, Any]:
        return {"ok": self.last_ok or not self.last_error, "adapter": self.name, "detail": self.last_error or "ready"}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
