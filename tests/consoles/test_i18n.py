"""The consoles' dictionaries are complete: every key in Vietnamese, English and Chinese; every key a page
script asks for by name exists; every problem `code` the code base raises, every validation code the pages
name, and every status, disposition and method a page translates has a sentence in all three languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clinicall.problem import STATUS_CODES
from crm_bridge.followups import METHODS, STATUSES
from crm_bridge.models import CARE_STATUSES
from crm_bridge.transfers import TRANSFER_STATUSES

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("vi", "en", "zh")
COMMON = ROOT / "clinicall/web/admin/i18n/common.json"
# page script -> its own dictionary (common.json is shared by all)
PAGES = {
    "crm_bridge/web/agent.js": "crm_bridge/web/i18n/agent.json",
    "crm_bridge/web/card_tools.js": "crm_bridge/web/i18n/agent.json",
    "crm_bridge/web/care.js": "crm_bridge/web/i18n/care.json",
    "clinicall/web/admin/admin.js": "clinicall/web/admin/i18n/admin.json",
    "crm_bridge/web/care_admin.js": "clinicall/web/admin/i18n/admin.json",
    "crm_bridge/web/treatment.js": "crm_bridge/web/i18n/treatment.json",
    "crm_bridge/web/referrer.js": "crm_bridge/web/i18n/referrer.json",
    "clinicall/web/admin/console.js": None,
    "messaging/web/messages.js": "messaging/web/i18n/messaging.json",
    "messaging/web/card_messages.js": "messaging/web/i18n/messaging.json",
    "reminders/web/reminders.js": "reminders/web/i18n.json",
}
DICTIONARIES = sorted({COMMON, *(ROOT / p for p in PAGES.values() if p)})
ROOMS = ("clinicall", "crm_bridge", "telephony", "queue_display", "audio", "messaging", "reminders")


def load(path: Path) -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("path", DICTIONARIES, ids=lambda p: p.name)
def test_every_language_has_every_key(path: Path) -> None:
    data = load(path)
    assert sorted(data) == sorted(LANGUAGES)
    keys = set().union(*(data[lang] for lang in LANGUAGES))
    for lang in LANGUAGES:
        missing = sorted(keys - set(data[lang]))
        assert not missing, f"{path.name}: {lang} lacks {missing}"
        empty = sorted(k for k, v in data[lang].items() if not str(v).strip())
        assert not empty, f"{path.name}: {lang} has empty {empty}"


@pytest.mark.parametrize("script", sorted(PAGES))
def test_every_key_a_script_names_exists(script: str) -> None:
    words = set(load(COMMON)["vi"])
    if PAGES[script]:
        words |= set(load(ROOT / PAGES[script])["vi"])
    source = (ROOT / script).read_text(encoding="utf-8")
    named = set(re.findall(r"\bt\(\"([A-Za-z0-9_.-]+)\"\)", source))
    html = (ROOT / script).with_suffix(".html")
    if html.is_file():
        named |= set(re.findall(r'data-i18n="([^"]+)"', html.read_text(encoding="utf-8")))
    assert sorted(named - words) == []


def raised_codes() -> set[str]:
    codes = set(STATUS_CODES.values())
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            codes |= set(re.findall(r'\bcode="([a-z_]+)"', path.read_text(encoding="utf-8")))
            codes |= set(re.findall(r'"([a-z_]+)" if ticket', path.read_text(encoding="utf-8")))
    return codes


def test_every_problem_code_has_a_sentence() -> None:
    common = load(COMMON)
    codes = raised_codes()
    assert {"number_not_allowed", "rate_limited", "ticket_already_called", "callback_date_required",
            "not_your_patient", "invalid_phone"} <= codes
    for lang in LANGUAGES:
        assert sorted(c for c in codes if f"err.{c}" not in common[lang]) == [], lang


def test_every_import_row_code_has_a_sentence() -> None:
    care = load(ROOT / "crm_bridge/web/i18n/care.json")
    codes = set(re.findall(r'"(row_[a-z_]+)"', (ROOT / "crm_bridge/importer.py").read_text(encoding="utf-8")))
    assert len(codes) >= 9
    for lang in LANGUAGES:
        assert sorted(c for c in codes if f"row.{c}" not in care[lang]) == [], lang


def test_every_code_a_page_translates_has_a_label() -> None:
    common = load(COMMON)
    wanted = ([f"care.{c}" for c in CARE_STATUSES] + [f"method.{m}" for m in METHODS]
              + [f"fstatus.{s}" for s in STATUSES] + [f"tstatus.{s}" for s in TRANSFER_STATUSES]
              + [f"disp.{d}" for d in ("answered", "no_answer", "busy", "failed", "cancelled")]
              + [f"field.{c}" for c in ("missing", "string_pattern_mismatch", "string_too_short", "string_too_long",
                                        "date_parsing", "date_from_datetime_parsing", "int_parsing")])
    for lang in LANGUAGES:
        assert sorted(k for k in wanted if k not in common[lang]) == [], lang
