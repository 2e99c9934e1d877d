"""The pure rules of reminder campaigns and turn-near calls: calling hours, what an ended attempt leads
to, the spoken wording (Vietnamese first), and the dialplan context in config/asterisk that the
Originate enters."""

from __future__ import annotations

import datetime as dt

import pytest

from clinicall.settings import RemindersSettings, Settings, TelephonySettings
from reminders.hours import in_calling_hours
from reminders.models import TurnNearCall
from reminders.service import settle_outcome
from reminders.speech import position_pieces, reminder_text, spoken_date, turn_near_pieces
from reminders.turn_near import EXTEN, ORIGIN, outcome, result_note
from telephony.autodial import AutoCall, autodial_headers, autodial_target
from tests.telephony.test_config import CONFIG, dialplan


@pytest.mark.parametrize(("at", "inside"), [("07:59", False), ("08:00", True), ("10:59", True), ("11:00", False),
                                            ("13:29", False), ("13:30", True), ("16:59", True), ("17:00", False)])
def test_calling_hours(at: str, inside: bool) -> None:
    assert in_calling_hours(["08:00-11:00", "13:30-17:00"], dt.time.fromisoformat(at)) is inside
    assert in_calling_hours(["00:00-24:00"], dt.time.fromisoformat(at))


def test_calling_hours_setting_is_checked() -> None:
    with pytest.raises(ValueError):
        RemindersSettings(calling_hours=["11:00-08:00"])
    with pytest.raises(ValueError):
        RemindersSettings(calling_hours=["8h-11h"])
    with pytest.raises(ValueError):
        RemindersSettings(dial_channel="PJSIP/{number}\r\nAction: Command")
    with pytest.raises(ValueError):
        RemindersSettings(sound_dir='/tmp/x" "12')  # it goes into STREAM FILE


@pytest.mark.parametrize(("disposition", "key", "attempts", "expected"), [
    ("answered", "1", 0, ("confirmed", True)), ("answered", "2", 2, ("callback", True)),
    ("interrupted", "1", 0, ("confirmed", True)),  # the key was stored before the outage
    ("busy", None, 0, ("pending", True)), ("no_answer", None, 1, ("pending", True)),
    ("no_answer", None, 2, ("not_reached", True)), ("answered", None, 2, ("not_reached", True)),
    ("interrupted", None, 2, ("pending", False)),  # cut off by an outage: called again, not counted
])
def test_what_an_ended_attempt_leads_to(disposition: str, key: str | None, attempts: int,
                                        expected: tuple[str, bool]) -> None:
    assert settle_outcome(disposition, key, attempts, 3) == expected


def test_wording_vietnamese_first() -> None:
    day = dt.date(2026, 12, 2)
    assert spoken_date(day, "vi") == "thứ tư, ngày hai tháng mười hai"
    assert spoken_date(day, "en") == "Wednesday, December 2"
    assert spoken_date(day, "zh") == "十二月二日星期三"
    text = reminder_text("appointment", name="Nguyễn Văn An", clinic="Phòng khám X", day=day, lang="vi")
    assert text.startswith("Xin chào Nguyễn Văn An. Phòng khám X xin nhắc lịch hẹn khám của quý khách vào thứ tư")
    assert "Bấm phím 1 để xác nhận. Bấm phím 2" in text
    assert position_pieces("A015", 4, 720, "vi") == [
        "Số thứ tự của quý khách là", "a mười lăm", "Phía trước còn ba người.", "Thời gian chờ khoảng mười hai phút.",
        "Bấm phím 0 để gặp nhân viên."]
    assert position_pieces("A015", 1, 30, "en")[2:] == ["You are next.", "Press 0 to speak to someone."]


def test_the_dialplan_has_the_context_the_reminder_originate_enters() -> None:
    settings = Settings()
    rem, tel = settings.reminders, TelephonySettings()
    contexts = dialplan(CONFIG / "extensions.conf")
    assert rem.context in contexts
    spec = AutoCall(origin="reminder", channel=rem.dial_channel, context=rem.context, timeout_ms=rem.ring_timeout_ms,
                    variables=(("REMINDER_TARGET", "5"),))
    headers = autodial_headers(spec, settings, call_id=7, target=autodial_target("0912345678", settings), patient_id=42,
                               installation="0a1b2c3d")
    sent = dict(headers)
    assert (sent["Channel"], sent["Context"], sent["Exten"], sent["Async"]) == (
        "PJSIP/0912345678@clinic-trunk", rem.context, "s", "true")
    apps = [app for exten, app in contexts[rem.context] if exten == sent["Exten"]]
    assert f"AGI(agi://{tel.agi_host}:{tel.agi_port}/reminder)" in apps
    variables = {v.split("=", 1)[0] for k, v in headers if k == "Variable"}
    assert variables == {"CLINICALL_CALL_ID", "PATIENT_ID", "REMINDER_TARGET"}
    assert all("${" + name + "}" in "\n".join(apps) for name in variables)


def test_the_turn_near_call_wording_result_and_dialplan() -> None:
    room = {"id": 3, "kind": "consult", "number": 3, "name": "Phòng khám 3", "names": {"vi": "Phòng khám 3"}}
    ticket = {"id": 9, "number": "A015", "room": room, "service_name": "Khám", "position": 4,
              "estimated_wait_seconds": 600}
    assert turn_near_pieces(ticket, "vi") == [
        "Sắp đến lượt của quý khách.", "Số thứ tự", "a mười lăm", "phòng khám số ba", "khoảng mười phút nữa.",
        "Xin quý khách vui lòng có mặt tại khu chờ."]
    unknown_wait = {**ticket, "room": None, "estimated_wait_seconds": None, "position": 3}
    assert turn_near_pieces(unknown_wait, "en")[2:] == ["A fifteen", "Khám", "There are two people ahead of you.",
                                                       "Please come to the waiting area."]
    assert [outcome(d) for d in ("answered", "busy", "no_answer", "failed", "cancelled", "interrupted", None)] == [
        "answered", "not_reached", "not_reached", "not_reached", "not_reached", "unknown", "unknown"]
    row = TurnNearCall(ticket_number="A015", state="not_reached", disposition="busy", played=False)
    assert result_note(row) == "Cuộc gọi tự động báo sắp đến lượt (số A015): máy bận."
    row.state, row.skip_reason = "skipped", "do_not_call"
    assert "bệnh nhân không nhận cuộc gọi tự động" in result_note(row)

    settings = Settings()
    rem, tel = settings.reminders, TelephonySettings()
    spec = AutoCall(origin=ORIGIN, channel=rem.dial_channel, context=rem.context, exten=EXTEN,
                    timeout_ms=rem.ring_timeout_ms, variables=(("TURN_NEAR_TICKET", "9"),))
    headers = autodial_headers(spec, settings, call_id=7, target=autodial_target("0912345678", settings),
                               patient_id=None, installation="0a1b2c3d")
    sent = dict(headers)
    apps = [app for exten, app in dialplan(CONFIG / "extensions.conf")[rem.context] if exten == sent["Exten"]]
    assert f"AGI(agi://{tel.agi_host}:{tel.agi_port}/turn_near)" in apps
    variables = [v for k, v in headers if k == "Variable"]
    assert variables == ["CLINICALL_CALL_ID=7", "PATIENT_ID=", "TURN_NEAR_TICKET=9"]
    assert all("${" + v.split("=")[0] + "}" in "\n".join(apps) for v in variables)
