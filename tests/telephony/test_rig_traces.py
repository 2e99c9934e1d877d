"""The issue-17 traces in tests/fixtures/asterisk/rig are whole: every byte of recv.raw / sent.raw is in
the timeline in order, every scenario of MANIFEST.md is there, every call seen on AMI ends on AMI
(except where the recording says the client went away), and the recorded rows load."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from telephony.wire import StreamParser, parse_actions

RIG = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "rig"
SESSIONS = sorted(p.name.removesuffix(".recv.raw") for p in RIG.glob("*.recv.raw") if ".fastagi." not in p.name)
AGI = sorted(p.name.removesuffix(".fastagi.recv.raw") for p in RIG.glob("*.fastagi.recv.raw"))
TRIMMED = "## Other PBXs' dialplans"  # scenarios (from here on) kept with clinicall's session alone (no .all, no events.txt)
# sessions that end before their calls do: Asterisk went down, or the client was killed
CUT = {"ended_while_disconnected", "ended_while_disconnected.all", "asterisk_killed", "asterisk_killed.all",
       "ami_link_dropped", "transfer_while_clinicall_away", "killed_every_state", "away_every_state",
       "cel_locked_while_away"}


def test_every_scenario_of_the_manifest_is_recorded() -> None:
    manifest, _, trimmed = (RIG / "MANIFEST.md").read_text().partition(TRIMMED)
    scenarios = [line[4:].split()[0] for line in manifest.splitlines() if line.startswith("### ")]
    assert len(scenarios) == 36
    for name in scenarios:
        assert name in SESSIONS and f"{name}.all" in SESSIONS, name
    later = [line[4:].split()[0] for line in trimmed.splitlines() if line.startswith("### ")]
    assert len(later) == 26 and all(name in SESSIONS for name in later), later  # clinicall's session only
    assert (RIG / ".gitattributes").read_text().startswith("*.raw binary")


@pytest.mark.parametrize("session", SESSIONS)
def test_raw_bytes_and_timeline_agree(session: str) -> None:
    steps = [json.loads(line) for line in (RIG / f"{session}.timeline.jsonl").read_text().splitlines()]
    recv = "".join(s["data"] for s in steps if s["dir"] == "recv").encode()
    sent = "".join(s["data"] for s in steps if s["dir"] == "send").encode()
    assert recv == (RIG / f"{session}.recv.raw").read_bytes()
    assert sent == (RIG / f"{session}.sent.raw").read_bytes()
    assert steps[0]["dir"] == "connect" and steps[-1]["dir"] == "eof"
    assert [s["t"] for s in steps] == sorted(s["t"] for s in steps)
    actions = parse_actions(sent)
    assert actions[0][:2] == [("Action", "Login"), ("Username", "rig" if session.endswith(".all") else "clinicall")]

    messages = StreamParser().feed(recv)
    assert messages[0] == {"Response": "Success", "ActionID": "login-1", "Message": "Authentication accepted"}
    started = {m["Uniqueid"] for m in messages if m.get("Event") == "Newchannel"}
    hung_up = {m["Uniqueid"] for m in messages if m.get("Event") == "Hangup"}
    if session.split(".")[0] not in CUT:
        assert started <= hung_up, f"{session}: calls without an end: {started - hung_up}"
    assert not (hung_up - started) or session.endswith(("_after_restart", "_after_restart.all", "_reconnect"))


@pytest.mark.parametrize("name", AGI)
def test_fastagi_sessions(name: str) -> None:
    raw = (RIG / f"{name}.fastagi.recv.raw").read_bytes()
    sessions = json.loads((RIG / f"{name}.fastagi.env.json").read_text())
    assert b"\r" not in raw and raw.count(b"agi_network: yes\n") == len(sessions) >= 1
    for session in sessions:
        assert session["env"]["agi_network_script"] == "identify"
        assert session["replies"][0]["reply"].startswith("200 result=1 (")
        assert all(r["reply"] == "200 result=1" for r in session["replies"][1:])


@pytest.mark.parametrize("run", ["restart_then_stop", "ended_while_disconnected"])
def test_the_recorded_rows_load(run: str) -> None:
    with sqlite3.connect(":memory:") as conn:
        conn.executescript((RIG / f"{run}.cel.sqlite.sql").read_text())
        cel = conn.execute("SELECT count(*), count(DISTINCT linkedid) FROM cel").fetchone()
        cdr = conn.execute("SELECT count(*) FROM cdr").fetchone()[0]
    assert cel[0] > 40 and cel[1] >= 3 and cdr > 5
    pgsql = (RIG / f"{run}.cel.pgsql.sql").read_text().splitlines()
    assert sum(line.startswith("INSERT INTO cel ") for line in pgsql) == cel[0]
    assert sum(line.startswith("INSERT INTO cdr ") for line in pgsql) == cdr
