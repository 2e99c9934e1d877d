"""Announcement wording: numbers read the way people say them, templates, rooms, settings checks."""

from __future__ import annotations

import pytest

from audio.numerals import en_number, vi_number, zh_number
from audio.wording import (
    Wording,
    announcement_segments,
    announcement_texts,
    room_phrase,
    ticket_words,
)
from clinicall.settings import Settings

VI_NUMBERS = [
    (0, "không"),
    (1, "một"),
    (4, "bốn"),
    (5, "năm"),
    (10, "mười"),
    (11, "mười một"),
    (14, "mười bốn"),
    (15, "mười lăm"),
    (20, "hai mươi"),
    (21, "hai mươi mốt"),
    (24, "hai mươi tư"),
    (25, "hai mươi lăm"),
    (55, "năm mươi lăm"),
    (101, "một trăm linh một"),
    (105, "một trăm linh năm"),
    (110, "một trăm mười"),
    (115, "một trăm mười lăm"),
    (200, "hai trăm"),
    (1000, "một nghìn"),
    (1005, "một nghìn không trăm linh năm"),
    (1010, "một nghìn không trăm mười"),
    (1021, "một nghìn không trăm hai mươi mốt"),
    (2024, "hai nghìn không trăm hai mươi tư"),
    (1_000_000, "một triệu"),
]


@pytest.mark.parametrize(("n", "words"), VI_NUMBERS)
def test_vietnamese_numbers(n: int, words: str) -> None:
    assert vi_number(n) == words


def test_vietnamese_reading_choices() -> None:
    assert vi_number(105, zero_tens="lẻ") == "một trăm lẻ năm"
    assert vi_number(1005, zero_tens="lẻ", thousand="ngàn") == "một ngàn không trăm lẻ năm"


@pytest.mark.parametrize(("n", "words"), [
    (1, "one"), (15, "fifteen"), (21, "twenty-one"), (105, "one hundred and five"),
    (110, "one hundred and ten"), (1000, "one thousand"), (1005, "one thousand and five"),
])
def test_english_numbers(n: int, words: str) -> None:
    assert en_number(n) == words


@pytest.mark.parametrize(("n", "words"), [
    (1, "一"), (10, "十"), (15, "十五"), (21, "二十一"), (105, "一百零五"), (110, "一百一十"),
    (1000, "一千"), (1005, "一千零五"), (1010, "一千零一十"), (100_005, "十万零五"),
])
def test_chinese_numbers(n: int, words: str) -> None:
    assert zh_number(n) == words


def test_numbers_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        vi_number(-1)


@pytest.mark.parametrize(("number", "lang", "words"), [
    ("A015", "vi", "a mười lăm"),
    ("B004", "vi", "bê bốn"),
    ("C121", "vi", "xê một trăm hai mươi mốt"),
    ("D1", "vi", "đê một"),
    ("XN012", "vi", "ích en nờ mười hai"),
    ("A015", "en", "A fifteen"),
    ("a015", "en", "A fifteen"),
    ("A015", "zh", "A十五"),
    ("A000", "vi", "a không"),
    ("105", "vi", "một trăm linh năm"),
])
def test_ticket_numbers(number: str, lang: str, words: str) -> None:
    assert ticket_words(number, lang) == words


def test_ticket_without_letters_or_digits_is_refused() -> None:
    with pytest.raises(ValueError):
        ticket_words(" -- ", "vi")


CONSULT_3 = {"id": 7, "kind": "consult", "number": 3, "name": "Phòng khám 3",
             "names": {"vi": "Phòng khám 3", "en": "Room 3", "zh": "3号诊室"}}


@pytest.mark.parametrize(("room", "lang", "phrase"), [
    (CONSULT_3, "vi", "phòng khám số ba"),
    (CONSULT_3, "en", "consultation room three"),
    (CONSULT_3, "zh", "三号诊室"),
    ({"id": 2, "kind": "counter", "number": 2}, "vi", "quầy số hai"),
    ({"id": 4, "kind": "lab", "number": 1}, "vi", "phòng xét nghiệm"),
    ({"id": 5, "kind": "sauna", "number": 9, "names": {"en": "the sauna"}}, "en", "the sauna"),
    ({"id": 6, "kind": "sauna", "number": 9}, "vi", "phòng số chín"),
])
def test_room_phrases(room: dict, lang: str, phrase: str) -> None:
    assert room_phrase(room, lang) == phrase


def test_announcement_texts_in_language_order() -> None:
    texts = announcement_texts("A015", CONSULT_3, ["vi", "en", "zh"])
    assert list(texts) == ["vi", "en", "zh"]
    assert texts == {
        "vi": "Mời số a mười lăm vào phòng khám số ba",
        "en": "Number A fifteen, please go to consultation room three",
        "zh": "请A十五号到三号诊室就诊",
    }
    assert announcement_texts("A015", CONSULT_3, ["zh"]) == {"zh": texts["zh"]}


def test_segments_join_to_the_text() -> None:
    assert announcement_segments("A015", CONSULT_3, "vi") == ["Mời số", "a mười lăm", "vào", "phòng khám số ba"]
    assert announcement_segments("A015", CONSULT_3, "en") == ["Number", "A fifteen", "please go to",
                                                              "consultation room three"]
    assert announcement_segments("A015", CONSULT_3, "zh") == ["请", "A十五", "号到", "三号诊室", "就诊"]


def test_templates_from_settings_override_the_defaults() -> None:
    wording = Wording(templates={"vi": "Xin mời số {number} đến {room}"},
                      room_templates={"vi": {"consult": "buồng {number}"}}, vi_zero_tens="lẻ")
    texts = announcement_texts("A105", CONSULT_3, ["vi", "en"], wording)
    assert texts["vi"] == "Xin mời số a một trăm lẻ năm đến buồng ba"
    assert texts["en"] == "Number A one hundred and five, please go to consultation room three"


@pytest.mark.parametrize("audio", [
    {"templates": {"vi": "Mời số {numbr} vào {room}"}},
    {"templates": {"vi": "Mời số {number}"}},
    {"templates": {"fr": "Numéro {number} {room}"}},
    {"room_templates": {"vi": {"consult": "phòng {floor}"}}},
])
def test_bad_templates_stop_settings(audio: dict) -> None:
    with pytest.raises(ValueError):
        Settings(audio=audio)
