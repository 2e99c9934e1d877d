"""What the phone says (pure wording, Vietnamese first) and the sound files Asterisk plays: rendered
by the audio room's engines (cache first), then converted to 8 kHz WAV in reminders.sound_dir. The
file name comes from a hash of the text, so a message is rendered once and any instance finds it."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audio.paging import to_paging_format
from audio.tts import Renderer
from audio.wording import Wording, room_phrase, ticket_words
from clinicall.settings import Settings

log = logging.getLogger(__name__)

EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")
VI_WEEKDAYS = ("thứ hai", "thứ ba", "thứ tư", "thứ năm", "thứ sáu", "thứ bảy", "chủ nhật")
EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ZH_WEEKDAYS = "一二三四五六日"

MESSAGES = {
    "vi": {
        "appointment": "Xin chào {name}. {clinic} xin nhắc lịch hẹn khám của quý khách vào {date}.",
        "revisit": "Xin chào {name}. {clinic} xin nhắc lịch tái khám của quý khách vào {date}.",
        "callback": "Xin chào {name}. {clinic} cần liên hệ với quý khách hôm nay, {date}.",
        "keys": "Bấm phím 1 để xác nhận. Bấm phím 2 để nhân viên gọi lại cho quý khách.",
        "thanks": "Xin cảm ơn quý khách.",
        "ticket": "Số thứ tự của quý khách là",
        "ahead": "Phía trước còn {n} người.",
        "wait": "Thời gian chờ khoảng {n} phút.",
        "next": "Quý khách sắp đến lượt.",
        "agent": "Bấm phím 0 để gặp nhân viên.",
        "near": "Sắp đến lượt của quý khách.",
        "number": "Số thứ tự",
        "minutes": "khoảng {n} phút nữa.",
        "come": "Xin quý khách vui lòng có mặt tại khu chờ.",
    },
    "en": {
        "appointment": "Hello {name}. {clinic} reminds you of your appointment on {date}.",
        "revisit": "Hello {name}. {clinic} reminds you of your follow-up visit on {date}.",
        "callback": "Hello {name}. {clinic} would like to speak with you today, {date}.",
        "keys": "Press 1 to confirm. Press 2 to be called back by our staff.",
        "thanks": "Thank you.",
        "ticket": "Your number is",
        "ahead": "There are {n} people ahead of you.",
        "wait": "The wait is about {n} minutes.",
        "next": "You are next.",
        "agent": "Press 0 to speak to someone.",
        "near": "Your turn is near.",
        "number": "Number",
        "minutes": "in about {n} minutes.",
        "come": "Please come to the waiting area.",
    },
    "zh": {
        "appointment": "{name}您好。{clinic}提醒您，您的预约时间是{date}。",
        "revisit": "{name}您好。{clinic}提醒您，您的复诊时间是{date}。",
        "callback": "{name}您好。{clinic}今天{date}需要与您联系。",
        "keys": "确认请按1。需要工作人员回电请按2。",
        "thanks": "谢谢。",
        "ticket": "您的号码是",
        "ahead": "您前面还有{n}位。",
        "wait": "大约需要等待{n}分钟。",
        "next": "马上就轮到您了。",
        "agent": "如需人工服务请按0。",
        "near": "快轮到您了。",
        "number": "您的号码",
        "minutes": "大约还有{n}分钟。",
        "come": "请到候诊区等候。",
    },
}


def spoken_language(settings: Settings) -> str:
    """The clinic's language when the phone can speak it, else Vietnamese."""
    return settings.clinic.language if settings.clinic.language in MESSAGES else "vi"


def spoken_date(day: dt.date, lang: str, wording: Wording | None = None) -> str:
    """vi "thứ tư, ngày hai tháng mười hai", en "Wednesday, December 2", zh "12月2日星期三"."""
    wording = wording or Wording()
    if lang == "vi":
        return (f"{VI_WEEKDAYS[day.weekday()]}, ngày {wording.number_words(day.day, 'vi')} "
                f"tháng {wording.number_words(day.month, 'vi')}")
    if lang == "en":
        return f"{EN_WEEKDAYS[day.weekday()]}, {EN_MONTHS[day.month - 1]} {day.day}"
    return f"{wording.number_words(day.month, 'zh')}月{wording.number_words(day.day, 'zh')}日星期{ZH_WEEKDAYS[day.weekday()]}"


def reminder_text(kind: str, *, name: str, clinic: str, day: dt.date, lang: str) -> str:
    words = MESSAGES[lang]
    return f"{words[kind].format(name=name, clinic=clinic, date=spoken_date(day, lang))} {words['keys']}"


def position_pieces(number: str, position: int, wait_seconds: float | None, lang: str,
                    wording: Wording | None = None) -> list[str]:
    """The queue-position message as short pieces (each cached on its own: the numbers recur)."""
    words = MESSAGES[lang]
    wording = wording or Wording()
    pieces = [words["ticket"], ticket_words(number, lang, wording)]
    ahead = max(0, position - 1)
    pieces.append(words["next"] if ahead == 0 else words["ahead"].format(n=wording.number_words(ahead, lang)))
    if wait_seconds is not None and ahead > 0:
        minutes = max(1, round(wait_seconds / 60))
        pieces.append(words["wait"].format(n=wording.number_words(minutes, lang)))
    pieces.append(words["agent"])
    return pieces


def turn_near_pieces(ticket: dict[str, Any], lang: str, wording: Wording | None = None) -> list[str]:
    """"Your turn is near" for a waiting ticket (queue.changed's JSON), in cached pieces: vi "Sắp đến lượt
    của quý khách. | Số thứ tự | a mười lăm | phòng khám số ba | khoảng mười phút nữa. | Xin quý khách vui
    lòng có mặt tại khu chờ." The place is the ticket's room when it has one, else its service."""
    words = MESSAGES[lang]
    wording = wording or Wording()
    number = str(ticket.get("number") or "")
    try:
        spoken = ticket_words(number, lang, wording)
    except ValueError:
        spoken = number
    pieces = [words["near"], words["number"], spoken]
    place = str(ticket.get("service_name") or "")
    if isinstance(room := ticket.get("room"), dict):
        try:
            place = room_phrase(room, lang, wording)
        except ValueError:
            pass
    if place.strip():
        pieces.append(place.strip())
    ahead = max(0, int(ticket.get("position") or 1) - 1)
    wait = ticket.get("estimated_wait_seconds")
    if ahead > 0 and isinstance(wait, int | float):
        pieces.append(words["minutes"].format(n=wording.number_words(max(1, round(wait / 60)), lang)))
    elif ahead > 0:
        pieces.append(words["ahead"].format(n=wording.number_words(ahead, lang)))
    pieces.append(words["come"])
    return pieces


def sound_name(sound_dir: str, text: str, lang: str) -> Path:
    """Where the 8 kHz copy of this text lives, without the extension (what Asterisk's STREAM FILE takes)."""
    digest = hashlib.sha256(f"{lang}\0{text}".encode()).hexdigest()[:24]
    return Path(sound_dir) / f"clinicall-{lang}-{digest}"


def render_sound(renderer: Renderer, sound_dir: str, text: str, lang: str) -> Path | None:
    """Blocking (run it in a thread): the sound file for `text`, or None (logged) when no engine can speak."""
    target = sound_name(sound_dir, text, lang)
    if target.with_suffix(".wav").is_file():
        return target
    try:
        speech = renderer.speak(text, lang)
        to_paging_format(speech.path, target.with_suffix(".wav"))
    except Exception as exc:  # no engine, no sox: the call still reads the key
        log.warning("reminder speech not rendered (%s): %s", lang, exc)
        return None
    return target


def render_all(renderer: Renderer, sound_dir: str, texts: Sequence[str], lang: str) -> list[Path | None]:
    return [render_sound(renderer, sound_dir, text, lang) for text in texts]
