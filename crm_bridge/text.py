"""Untrusted text from people and files: control characters out, length checked."""

from __future__ import annotations

import unicodedata

from clinicall.problem import Problem, has_control

__all__ = ["clean_text", "has_control"]


def clean_text(value: str, field: str, max_len: int, multiline: bool = False) -> str:
    """NFC, trimmed (single spaces unless multiline); 422 on control characters or excess length."""
    if not isinstance(value, str):
        raise Problem(422, "Invalid input", f"{field} must be text.")
    text = unicodedata.normalize("NFC", value).replace("\r\n", "\n")
    if has_control(text, "\n\t" if multiline else ""):
        raise Problem(422, "Invalid characters",
                      f"{field} contains control characters{'' if multiline else ' or line breaks'}; remove them.",
                      code="invalid_characters", errors=[{"field": field, "code": "invalid_characters",
                                                          "message": "contains control characters"}])
    text = text.strip() if multiline else " ".join(text.split())
    if len(text) > max_len:
        raise Problem(422, "Invalid input", f"{field} is {len(text)} characters long; keep it to {max_len}.")
    return text
