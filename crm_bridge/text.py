"""Untrusted text from people and files: control characters out, length checked."""

from __future__ import annotations

import unicodedata

from clinicall.problem import Problem


def clean_text(value: str, field: str, max_len: int, multiline: bool = False) -> str:
    allowed = {"\n", "\t"} if multiline else set()
    text = unicodedata.normalize("NFC", value)
    text = "".join(ch if (ch in allowed or unicodedata.category(ch)[0] != "C") else " " for ch in text)
    text = text.strip() if multiline else " ".join(text.split())
    if len(text) > max_len:
        raise Problem(422, "Invalid input", f"{field} is {len(text)} characters long; keep it to {max_len}.")
    return text
