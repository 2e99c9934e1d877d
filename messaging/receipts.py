"""Delivery receipts that an HTTP gateway posts back (brandname SMS, Zalo ZNS): who may post them (a
shared token, or an HMAC-SHA256 of the body), and what they say (the gateway's message id and its status
field, mapped to delivered / failed by `messaging.http_receipt_statuses`). Pure: no database, no HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from clinicall.problem import Problem
from clinicall.settings import MessagingSettings
from messaging.senders.base import Receipt
from messaging.senders.http_gateway import field_at

MAX_BODY = 256 * 1024
MAX_ITEMS = 500
MAX_ID = 100
MAX_STATUS = 40


@dataclass(frozen=True)
class ReceiptItem:
    gateway_id: str
    status: str
    outcome: str | None  # delivered | failed | None (a status that is not final: ignored)

    def receipt(self, field: str) -> Receipt:
        return Receipt(gateway_id=self.gateway_id, delivered=self.outcome == "delivered",
                       detail=f"{field}={self.status}"[:200])


def enabled(settings: MessagingSettings) -> bool:
    return settings.adapter == "http" and bool(settings.http_receipt_token or settings.http_receipt_hmac_secret)


def authentic(settings: MessagingSettings, headers: Mapping[str, str], query: Mapping[str, str], body: bytes,
              now: float | None = None) -> bool:
    """When a secret is set: the HMAC-SHA256 of "<timestamp>.<body>" in the signature header (hex, "sha256="
    allowed), the timestamp (Unix seconds) in the timestamp header and within http_receipt_max_age_seconds of
    our clock, so a captured receipt cannot be replayed later. Else the token in the token header or the
    `token` query parameter. Compared in constant time."""
    if settings.http_receipt_hmac_secret:
        stamp = headers.get(settings.http_receipt_timestamp_header, "").strip()
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
            return False
        if abs((time.time() if now is None else now) - int(stamp)) > settings.http_receipt_max_age_seconds:
            return False
        given = headers.get(settings.http_receipt_signature_header, "").strip()
        given = given.removeprefix("sha256=").lower()
        expected = hmac.new(settings.http_receipt_hmac_secret.encode(), stamp.encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        return hmac.compare_digest(given.encode(), expected.encode())
    token = headers.get(settings.http_receipt_token_header) or query.get("token") or ""
    return hmac.compare_digest(token.encode(), settings.http_receipt_token.encode())


def invalid(detail: str, errors: list[dict[str, str]] | None = None, status: int = 422) -> Problem:
    return Problem(status, "Invalid delivery receipt", detail, code="receipt_invalid", errors=errors or [])


def decode(content_type: str, body: bytes) -> Any:
    """JSON, or a form (application/x-www-form-urlencoded: flat fields)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("The body is not UTF-8.", status=400) from None
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise invalid("The body is not JSON (or a form).", status=400) from None


def _items(settings: MessagingSettings, body: Any) -> list[Any]:
    if settings.http_receipt_items_field:
        body = field_at(body, settings.http_receipt_items_field)
        if not isinstance(body, list):
            raise invalid(f"{settings.http_receipt_items_field} must be a list of receipts.", [
                {"field": settings.http_receipt_items_field, "code": "receipt_invalid", "message": "not a list"}])
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_ITEMS:
        raise Problem(413, "Too many receipts", f"At most {MAX_ITEMS} receipts in one request.",
                      code="receipt_too_large")
    return items


def _scalar(value: Any, limit: int) -> str | None:
    """A short printable string (or number); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > limit or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return None
    return text


def parse(settings: MessagingSettings, body: Any) -> list[ReceiptItem]:
    """Every receipt of the body, or one 422 naming each bad field (nothing is applied then)."""
    id_field, status_field = settings.http_receipt_id_field, settings.http_receipt_status_field
    parsed: list[ReceiptItem] = []
    errors: list[dict[str, str]] = []
    for index, item in enumerate(_items(settings, body)):
        if not isinstance(item, dict):
            errors.append({"field": str(index), "code": "receipt_invalid", "message": "not an object"})
            continue
        gateway_id = _scalar(field_at(item, id_field), MAX_ID)
        status = _scalar(field_at(item, status_field), MAX_STATUS)
        if gateway_id is None:
            errors.append({"field": f"{index}.{id_field}", "code": "receipt_id_invalid",
                           "message": f"missing, or not a text of 1-{MAX_ID} printable characters"})
        if status is None:
            errors.append({"field": f"{index}.{status_field}", "code": "receipt_status_invalid",
                           "message": f"missing, or not a text of 1-{MAX_STATUS} printable characters"})
        if gateway_id is not None and status is not None:
            parsed.append(ReceiptItem(gateway_id, status, settings.http_receipt_statuses.get(status)))
    if errors:
        raise invalid("Some receipts are not valid; none was applied.", errors[:50])
    return parsed
