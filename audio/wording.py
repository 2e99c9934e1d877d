"""What the speakers say: announcement texts per language from templates (pure functions).

A text is made of segments: the template's own words, the ticket number as people read it, and
the room phrase. Engines render each segment separately so that every ticket number and every room
can be pre-rendered once (`clinicall audio warm`) and joined at call time.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from audio.numerals import ViThousand, ViZeroTens, en_number, vi_number, zh_number
from clinicall.settings import ANNOUNCEMENT_FIELDS, ROOM_PHRASE_FIELDS

DEFAULT_TEMPLATES: dict[str, str] = {
    "vi": "Mời số {number} vào {room}",
    "en": "Number {number}, please go to {room}",
    "zh": "请{number}号到{room}就诊",
}

DEFAULT_ROOM_TEMPLATES: dict[str, dict[str, str]] = {
    "vi": {
        "consult": "phòng khám số {number}",
        "counter": "quầy số {number}",
        "lab": "phòng xét nghiệm",
        "imaging": "phòng chẩn đoán hình ảnh",
        "other": "phòng số {number}",
    },
    "en": {
        "consult": "consultation room {number}",
        "counter": "counter {number}",
        "lab": "the laboratory",
        "imaging": "the imaging room",
        "other": "room {number}",
    },
    "zh": {
        "consult": "{number}号诊室",
        "counter": "{number}号窗口",
        "lab": "检验科",
        "imaging": "影像科",
        "other": "{number}号房间",
    },
}

TEMPLATE_FIELDS = set(ANNOUNCEMENT_FIELDS)
ROOM_TEMPLATE_FIELDS = set(ROOM_PHRASE_FIELDS)

# Letters as Vietnamese people say them when reading a ticket number aloud.
VI_LETTERS: dict[str, str] = {
    "A": "a", "B": "bê", "C": "xê", "D": "đê", "Đ": "đê", "E": "e", "F": "ép", "G": "giê", "H": "hát",
    "I": "i", "J": "gi", "K": "ca", "L": "e lờ", "M": "em mờ", "N": "en nờ", "O": "o", "P": "pê",
    "Q": "quy", "R": "e rờ", "S": "ét", "T": "tê", "U": "u", "V": "vê", "W": "vê kép", "X": "ích",
    "Y": "i dài", "Z": "dét",
}

_TICKET_PART = re.compile(r"[^\W\d_]|\d+")


@dataclass(frozen=True)
class Wording:
    """Templates and reading choices; built from settings.audio, or the defaults."""

    templates: Mapping[str, str] | None = None
    room_templates: Mapping[str, Mapping[str, str]] | None = None
    vi_zero_tens: ViZeroTens = "linh"
    vi_thousand: ViThousand = "nghìn"

    def template(self, lang: str) -> str:
        return (self.templates or {}).get(lang) or DEFAULT_TEMPLATES[lang]

    def room_template(self, lang: str, kind: str) -> str | None:
        own = (self.room_templates or {}).get(lang, {})
        return own.get(kind) or DEFAULT_ROOM_TEMPLATES[lang].get(kind)

    def number_words(self, n: int, lang: str) -> str:
        if lang == "vi":
            return vi_number(n, self.vi_zero_tens, self.vi_thousand)
        if lang == "en":
            return en_number(n)
        return zh_number(n)


def ticket_words(number: str, lang: str, wording: Wording | None = None) -> str:
    """"A015" -> vi "a mười lăm", en "A fifteen", zh "A十五". Leading zeros are not read: people say
    "số A mười lăm". A number made only of zeros reads as zero."""
    wording = wording or Wording()
    parts: list[str] = []
    for part in _TICKET_PART.findall(number.strip()):
        if part.isdigit():
            parts.append(wording.number_words(int(part), lang))
        elif lang == "vi":
            parts.append(VI_LETTERS.get(part.upper(), part.lower()))
        else:
            parts.append(part.upper())
    if not parts:
        raise ValueError(f"the ticket number {number!r} has no letters or digits to read")
    return ("" if lang == "zh" else " ").join(parts)


def room_phrase(room: Mapping[str, Any], lang: str, wording: Wording | None = None) -> str:
    """vi "phòng khám số ba", en "consultation room three", zh "三号诊室", from the room's kind and number."""
    wording = wording or Wording()
    kind = str(room.get("kind") or "other")
    number = room.get("number")
    names = room.get("names") or {}
    name = str(names.get(lang) or room.get("name") or "")
    template = wording.room_template(lang, kind)
    if template is None:
        if name:
            return name
        template = wording.room_template(lang, "other") or "{number}"
    needs_number = "{number}" in template
    if needs_number and not isinstance(number, int):
        if name:
            return name
        raise ValueError(f"the room {room.get('id')} has no number to announce and no name")
    spoken = wording.number_words(number, lang) if needs_number and isinstance(number, int) else ""
    return template.format(number=spoken, name=name).strip()


def template_parts(template: str) -> list[tuple[str, str | None]]:
    """[(literal text, field name or None), ...] as string.Formatter parses it."""
    return [(literal, field) for literal, field, _spec, _conv in string.Formatter().parse(template)]


def spoken_literal(literal: str) -> str:
    """The words of a template's literal part, without the punctuation around them."""
    return literal.strip(" \t,.;:!?，。、；：！？")


def announcement_segments(number: str, room: Mapping[str, Any], lang: str,
                          wording: Wording | None = None) -> list[str]:
    """The text of one language in the pieces engines render and cache one by one."""
    wording = wording or Wording()
    values = {"number": ticket_words(number, lang, wording), "room": room_phrase(room, lang, wording)}
    segments: list[str] = []
    for literal, field in template_parts(wording.template(lang)):
        words = spoken_literal(literal)
        if words:
            segments.append(words)
        if field:
            segments.append(values[field])
    return segments


def announcement_text(number: str, room: Mapping[str, Any], lang: str, wording: Wording | None = None) -> str:
    wording = wording or Wording()
    return wording.template(lang).format(number=ticket_words(number, lang, wording),
                                         room=room_phrase(room, lang, wording))


def announcement_texts(number: str, room: Mapping[str, Any], languages: Iterable[str],
                       wording: Wording | None = None) -> dict[str, str]:
    """{"vi": "Mời số a mười lăm vào phòng khám số ba", "en": "Number A fifteen, please go to
    consultation room three", "zh": "请A十五号到三号诊室就诊"}, in the order of `languages`."""
    return {lang: announcement_text(number, room, lang, wording) for lang in languages}


def wording_from_settings(audio: Any) -> Wording:
    return Wording(templates=audio.templates, room_templates=audio.room_templates,
                   vi_zero_tens=audio.vi_zero_tens, vi_thousand=audio.vi_thousand)
