"""Patient names: accent-free folding for search, word-suffix search keys, and masked names for displays."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")
_SPECIAL = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "ł": "l", "ø": "o", "ß": "ss", "æ": "ae", "œ": "oe"})


def fold(text: str) -> str:
    """Lowercase, accent-free, words separated by one space: "Nguyễn  Văn Đức" -> "nguyen van duc"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().translate(_SPECIAL)
    return " ".join(_NON_WORD.sub(" ", stripped).split())


def search_keys(folded_name: str) -> list[str]:
    """Every suffix of the folded name that starts at a word: "nguyen van an" ->
    ["nguyen van an", "van an", "an"]. A query matches when it is a prefix of one of them, so
    "van a" finds "Nguyễn Văn An" through one index range scan."""
    words = folded_name.split()
    return [" ".join(words[i:]) for i in range(len(words))]


def clean_name(full_name: str) -> str:
    """A person's name as stored: control characters removed, single spaces, NFC."""
    text = unicodedata.normalize("NFC", full_name)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())


def masked_name(full_name: str) -> str:
    """Family name in full, the other names as initials: "Nguyễn Văn An" -> "Nguyễn V. A."."""
    words = clean_name(full_name).split()
    if not words:
        return ""
    if len(words) == 1:
        return words[0][0] + "."
    return " ".join([words[0], *(w[0] + "." for w in words[1:])])
