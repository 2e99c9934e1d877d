"""What may reach a gateway: the destination through click-to-call's number policy, the text checked."""

from __future__ import annotations

import unicodedata

from clinicall.problem import Problem
from clinicall.settings import Settings
from telephony.policy import dial_target

# Characters that reorder or hide text on a phone's screen (bidirectional overrides and isolates).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _field(code: str, message: str) -> list[dict[str, str]]:
    return [{"field": "text", "code": code, "message": message}]


def checked_text(text: str, max_length: int) -> str:
    """NFC, trimmed; 422 for an empty text, a control or formatting character (line breaks included), or a
    text over max_length characters."""
    if not isinstance(text, str):
        raise Problem(422, "Invalid input", "text must be text.", code="invalid_input")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise Problem(422, "Empty message", "Write the message text.", code="message_empty",
                      errors=_field("message_empty", "empty"))
    bad = [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp") or ch in BIDI_CONTROLS]
    if bad:
        raise Problem(422, "Invalid characters", "The message contains line breaks or other control characters "
                      f"({', '.join(sorted({f'U+{ord(ch):04X}' for ch in bad}))}); write it on one line.",
                      code="message_control_chars", errors=_field("message_control_chars", "control characters"))
    if len(text) > max_length:
        raise Problem(422, "Message too long", f"The message is {len(text)} characters long; keep it to {max_length}.",
                      code="message_too_long", max_length=max_length,
                      errors=_field("message_too_long", "too long"))
    return text


def one_line(text: str) -> str:
    """A rendered template may span lines: an SMS carries it as one line (line breaks become spaces)."""
    return " ".join(text.split())


def checked_number(number: str, settings: Settings) -> str:
    """The E.164 number, if click-to-call's policy (number types, international) allows it; else 400
    number_not_allowed."""
    if not isinstance(number, str) or not number.strip() or len(number) > 40:
        raise Problem(400, "Number not allowed", "Give the patient's phone number.", code="number_not_allowed")
    return dial_target(number, settings.telephony, settings.clinic.phone_region).e164
