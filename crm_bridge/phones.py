"""Phone numbers: any written form to E.164 with phonenumbers, never raising on garbage."""

from __future__ import annotations

import re

import phonenumbers

_PHONE_CHARS = re.compile(r"^[\d\s+().\-/]{6,32}\Z")
MAX_RAW = 64


def normalise(raw: str | None, region: str = "VN") -> str | None:
    """"0912345678", "+84912345678", "84912345678", "091 234 5678" -> "+84912345678"; None when the
    text is not a possible phone number."""
    if not raw or not isinstance(raw, str) or len(raw) > MAX_RAW:
        return None
    text = raw.strip()
    if not _PHONE_CHARS.match(text):
        return None
    digits = re.sub(r"\D", "", text)
    if not 6 <= len(digits) <= 15:
        return None
    candidates = [text]
    if not text.startswith("+"):
        # "84912345678" written without the plus: try it as international too.
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region.upper())
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def looks_like_phone(text: str) -> bool:
    """A search text that is meant as a number rather than a name."""
    return bool(_PHONE_CHARS.match(text.strip())) and sum(ch.isdigit() for ch in text) >= 6


def national_format(e164: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164
