"""The call journal and the projection: idempotence, rebuild, never rewriting a finished call, recovery
from Asterisk's CEL database, bad events, bounded columns, withheld numbers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from telephony import journal
from telephony.calllog import CallLog
from telephony.cel_source import CelSource
from telephony.models import Call, CallEvent
from telephony.rebuild import rebuild
from tests.telephony.conftest import LogHarness, make_harness, telephony_settings
from tests.telephony.test_calllog_traces import feed
from tests.telephony.traces import load

COLUMNS = ("direction", "origin", "state", "disposition", "agent_extension", "patient_id", "number", "number_raw",
           "network_name", "caller_name", "created_at", "ringing_at", "answered_at", "ended_at", "duration", "billsec",
           "talk_seconds", "ring_seconds", "hangup_code", "hangup_cause", "linkedid", "legs", "originate_reason")


def snapshot(rows: list[Call]) -> list[dict[str, Any]]:
    return [{"id": r.id} | {k: getattr(r, k) for k in COLUMNS} for r in rows]


async def journal_size(h: LogHarness) -> int:
    async with h.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(CallEvent)) or 0)


async def test_the_same_events_are_journaled_once(harness: LogHarness) -> None:
    await feed(harness, "inbound_call")
    size = await journal_size(harness)
    assert size > 30
    for ev, at in load("inbound_call").timed_messages(base=1_800_000_900.0):  # replayed later, say after a reconnect
        await harness.log.handle(ev, at)
    assert await journal_size(harness) == size


async def test_rebuild_gives_the_same_rows(db_url: str) -> None:
    async for h in make_harness(db_url, outbound_context="outbound_dial"):
        await feed(h, "inbound_call")
        await feed(h, "inbound_call_with_name")
        trace = load("click_to_call_answered_dial")
        call_id = await h.outbound_from_trace(trace, 0)
        for ev, at in trace.timed_messages():
            await h.log.handle(ev, at)
        first = min(r.id for r in await h.rows())
        await h.log.link_patient(first, 4242)  # long after its call ended: a late event of a forgotten call
        before = snapshot(await h.rows())
        assert next(r for r in before if r["id"] == first)["patient_id"] == 4242
        assert [r["state"] for r in before] == ["ended"] * 3
        assert next(r for r in before if r["id"] == call_id)["talk_seconds"] >= 2
        async with h.db.transaction() as s:  # the projected columns lost
            await s.execute(update(Call).values(state="ringing", disposition=None, talk_seconds=None, ended_at=None,
                                                legs=None))
            await s.execute(update(Call).where(Call.origin == "trunk").values(number=None, agent_extension=None))
        seen: list[int] = []  # in chunks of 7 entries: each call is written once it is done, then forgotten
        report = await rebuild(h.db, telephony_settings(outbound_context="outbound_dial"), chunk=7,
                               progress=lambda r, seen=seen: seen.append(r.events))
        assert report.changed == 3 and report.calls == 3
        assert seen == sorted(seen) and len(seen) > 10
        assert snapshot(await h.rows()) == before
        again = await rebuild(h.db, telephony_settings(outbound_context="outbound_dial"),
                              since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        assert again.changed == 0


async def test_rebuild_command(sqlite_url: str) -> None:
    async for h in make_harness(sqlite_url):
        await feed(h, "inbound_call")
        before = snapshot(await h.rows())
        async with h.db.transaction() as s:
            await s.execute(update(Call).values(disposition="failed"))
    env = dict(os.environ, CLINICALL_DATABASE__URL=sqlite_url, CLINICALL_TELEPHONY__AGENT_CHANNEL="Local/{ext}@agents")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "clinicall.cli", "calls", "rebuild", "--since",
                                                "2020-01-01", env=env, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert "1 rows changed" in out.decode()
    async for h in make_harness(sqlite_url):
        assert snapshot(await h.rows()) == before


async def test_a_finished_call_is_never_rewritten_by_shutdown_or_reconnect(harness: LogHarness) -> None:
    ids = await feed(harness, "click_to_call_answered")
    await feed(harness, "inbound_call")
    before = snapshot(await harness.rows())
    published = len(harness.events)
    for _ in range(2):  # core restart now, then core stop now
        harness.log.link_lost()
        assert await harness.log.asterisk_shutdown() == []
        assert await harness.log.reconcile(set(), 1_900_000_000.0, []) == []
    await harness.bus.drain()
    assert snapshot(await harness.rows()) == before
    assert len(harness.events) == published
    assert (await harness.row(ids[0])).disposition == "answered"


def cut_after_answer(name: str) -> tuple[list[tuple[dict[str, str], float]], list[tuple[dict[str, str], float]]]:
    messages = [(ev, at) for ev, at in load(name).timed_messages() if "Event" in ev]
    cut = next(i for i, (ev, _) in enumerate(messages) if ev.get("Event") == "BridgeEnter"
               and ev.get("BridgeNumChannels") == "2") + 1
    return messages[:cut], messages[cut:]


async def test_an_open_call_with_no_end_seen_is_interrupted_with_the_reason(harness: LogHarness) -> None:
    seen, _lost = cut_after_answer("inbound_call")
    for ev, at in seen:
        await harness.log.handle(ev, at)
    call = (await harness.rows())[0]
    assert (call.state, call.disposition) == ("answered", None)
    harness.log.link_lost()
    assert await harness.log.reconcile(set(), 1_900_000_000.0, []) == [call.id]
    call = await harness.row(call.id)
    assert (call.state, call.disposition) == ("ended", "interrupted")
    assert call.answered_at is not None and "not seen" in (call.hangup_cause or "")


CEL_COLUMNS = ("eventtype", "eventtime", "cid_name", "cid_num", "cid_ani", "cid_rdnis", "cid_dnid", "exten", "context",
               "channame", "appname", "appdata", "amaflags", "accountcode", "peeraccount", "uniqueid", "linkedid",
               "userfield", "peer", "userdeftype", "extra")


def cel_rows(messages: list[tuple[dict[str, str], float]]) -> list[dict[str, Any]]:
    """What cel_sqlite3_custom writes for the channel events of a trace (the part clinicall missed)."""
    rows = []
    for ev, at in messages:
        kind = ev.get("Event")
        extra: dict[str, Any] = {}
        if kind == "Hangup":
            name, extra = "HANGUP", {"hangupcause": int(ev.get("Cause", "0")), "hangupsource": "", "dialstatus": ""}
        elif kind in ("BridgeEnter", "BridgeLeave"):
            name = "BRIDGE_ENTER" if kind == "BridgeEnter" else "BRIDGE_EXIT"
            extra = {"bridge_id": ev["BridgeUniqueid"], "bridge_technology": "simple_bridge"}
        elif kind == "Newstate" and ev.get("ChannelState") == "6":
            name = "ANSWER"
        else:
            continue
        rows.append({"eventtype": name, "eventtime": f"{at:.6f}", "cid_name": ev.get("CallerIDName", ""),
                     "cid_num": ev.get("CallerIDNum", ""), "exten": ev.get("Exten", ""),
                     "context": ev.get("Context", ""), "channame": ev.get("Channel", ""),
                     "uniqueid": ev.get("Uniqueid", ""), "linkedid": ev.get("Linkedid", ""),
                     "extra": json.dumps(extra) if extra else "", "amaflags": "3"})
    return rows


def write_cel_db(path: Path, rows: list[dict[str, Any]]) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, {', '.join(c + ' TEXT' for c in CEL_COLUMNS)})")
    for row in rows:
        conn.execute(f"INSERT INTO cel ({', '.join(CEL_COLUMNS)}) VALUES ({', '.join('?' * len(CEL_COLUMNS))})",
                     [row.get(c, "") for c in CEL_COLUMNS])
    conn.commit()
    conn.close()


async def test_a_call_ended_while_away_gets_its_true_end_from_cel(harness: LogHarness, tmp_path: Path) -> None:
    seen, lost = cut_after_answer("inbound_call")
    for ev, at in seen:
        await harness.log.handle(ev, at)
    harness.log.link_lost()
    write_cel_db(tmp_path / "cel.db", cel_rows(lost))
    harness.log.cel_source = CelSource(str(tmp_path / "cel.db"))
    assert await harness.log.reconcile(set(), 1_900_000_000.0, []) == []
    recovered = snapshot(await harness.rows())[0]
    async for h in make_harness(f"sqlite+aiosqlite:///{tmp_path}/whole.db"):
        from clinicall.db import Database
        from clinicall.migrate import migrate

        await migrate(Database(f"sqlite+aiosqlite:///{tmp_path}/whole.db"))
        await feed(h, "inbound_call")
        whole = snapshot(await h.rows())[0]
    assert recovered["disposition"] == "answered" and recovered["state"] == "ended"
    same = ("disposition", "answered_at", "hangup_code", "talk_seconds", "agent_extension", "number")
    assert {k: recovered[k] for k in same} == {k: whole[k] for k in same}
    assert abs((recovered["ended_at"] - whole["ended_at"]).total_seconds()) < 0.01
    size = await journal_size(harness)
    await harness.log.reconcile(set(), 1_900_000_000.0, [])  # the same CEL rows again: stored once
    assert await journal_size(harness) == size


class LateCel(CelSource):
    """A CEL database Asterisk writes the last rows of a call into only after clinicall first read it."""

    def __init__(self, path: Path, late: list[dict[str, Any]]) -> None:
        super().__init__(str(path))
        self.path, self.late, self.reads = path, late, 0

    async def read(self, **kwargs: Any) -> list[dict[str, str]]:
        rows = await super().read(**kwargs)
        self.reads += 1
        if self.reads == 1:
            add_cel_rows(self.path, self.late)
        return rows


def add_cel_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with sqlite3.connect(path) as conn:
        for row in rows:
            conn.execute(f"INSERT INTO cel ({', '.join(CEL_COLUMNS)}) VALUES ({', '.join('?' * len(CEL_COLUMNS))})",
                         [row.get(c, "") for c in CEL_COLUMNS])


async def test_cel_written_late_is_waited_for_and_an_interrupted_call_is_upgraded(harness: LogHarness,
                                                                                  tmp_path: Path) -> None:
    """The end of a call that ended while clinicall was away reaches Asterisk's CEL database a moment after
    the reconnect: it is read again until it is there. If it comes later still, the call is `interrupted`
    first and upgraded by the next read that finds it, never guessed."""
    seen, lost = cut_after_answer("inbound_call")
    for ev, at in seen:
        await harness.log.handle(ev, at)
    (call,) = await harness.rows()
    harness.log.link_lost()
    write_cel_db(tmp_path / "late.db", [])
    harness.log.cel_source = late = LateCel(tmp_path / "late.db", cel_rows(lost))
    assert await harness.log.reconcile(set(), 1_900_000_000.0, []) == []
    assert late.reads >= 2
    row = await harness.row(call.id)
    assert (row.disposition, row.hangup_code) == ("answered", 16) and row.talk_seconds

    async for h in make_harness(f"sqlite+aiosqlite:///{tmp_path}/later.db"):
        from clinicall.db import Database
        from clinicall.migrate import migrate

        await migrate(Database(f"sqlite+aiosqlite:///{tmp_path}/later.db"))
        for ev, at in seen:
            await h.log.handle(ev, at)
        h.log.link_lost()
        write_cel_db(tmp_path / "later_cel.db", [])
        h.log.cel_source = CelSource(str(tmp_path / "later_cel.db"))
        h.log.cel_catch_up = 0.3
        assert await h.log.reconcile(set(), 1_900_000_000.0, []) == [call.id]
        assert (await h.row(call.id)).disposition == "interrupted"
        h.log = CallLog(h.db, h.bus, h.log.settings, cel_source=h.log.cel_source)  # clinicall restarted
        await h.log.load_open_calls()
        add_cel_rows(tmp_path / "later_cel.db", cel_rows(lost))
        h.log.link_lost()
        assert await h.log.reconcile(set(), 1_900_000_000.0, []) == []
        upgraded = await h.row(call.id)
        assert snapshot([upgraded]) == snapshot([row])


async def test_a_bad_event_is_stored_apart_and_never_drops_the_batch(harness: LogHarness) -> None:
    messages = load("inbound_call").timed_messages()
    huge = dict(messages[3][0], Event="UserEvent", UserEvent="x" * 5000)
    batch = [(ev, at) for ev, at in messages] + [({"Garbage": "no event"}, 1_800_000_001.0), (huge, 1_800_000_002.0)]
    await harness.log.handle_batch(batch)
    rows = await harness.rows()
    assert [(r.state, r.disposition) for r in rows] == [("ended", "answered")]
    async with harness.db.session() as s:
        problems = sorted((e.problem or "")[:9] for e in (await s.scalars(select(CallEvent)
                                                                            .where(CallEvent.problem.is_not(None)))))
    assert problems == ["set_aside", "truncated"]
    assert harness.log.problems == 2


def rename(messages: list[tuple[dict[str, str], float]], **changes: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for ev, at in messages:
        ev = dict(ev)
        for key in ("CallerIDNum", "CallerIDName"):
            if key in changes and ev.get(key) not in (None, "<unknown>"):
                ev[key] = changes[key]
        out.append((ev, at))
    return out


async def test_long_caller_id_is_bounded_on_both_databases(db_url: str) -> None:
    async for h in make_harness(db_url):
        messages = rename(load("inbound_call_with_name").timed_messages(), CallerIDNum="0" * 60,
                          CallerIDName="N\x07" + "x" * 300)
        for ev, at in messages:
            await h.log.handle(ev, at)
        rows = await h.rows()
        assert [(r.state, r.disposition) for r in rows] == [("ended", "answered")]
        assert rows[0].number_raw == "0" * 40 and rows[0].number is None
        assert rows[0].network_name is not None and len(rows[0].network_name) == 80
        assert "\x07" not in rows[0].network_name


async def test_withheld_mid_call_stores_no_number(harness: LogHarness) -> None:
    messages = load("inbound_call").timed_messages()
    origin = next(ev for ev, _ in messages if ev.get("Event") == "NewCallerid")
    anonymous = dict(origin, CallerIDNum="anonymous", **{"CID-CallingPres": "32 (Presentation Prohibited, Not Screened)"})
    for ev, at in messages[: len(messages) // 2] + [(anonymous, messages[len(messages) // 2][1])] + \
            messages[len(messages) // 2:]:
        await harness.log.handle(ev, at)
    call = (await harness.rows())[0]
    assert (call.number, call.number_raw, call.disposition) == (None, None, "answered")


async def test_journal_entry_keys() -> None:
    ev = {"Event": "Hangup", "Uniqueid": "1.1", "Linkedid": "1.1", "Cause": "16"}
    assert journal.entry(ev, 1.0).key == journal.entry(dict(ev, Privilege="call,all"), 2.0).key
    cel = {"Event": "CEL", "EventName": "HANGUP", "UniqueID": "1.1", "LinkedID": "1.1",
           "EventTime": "2026-12-01 10:00:00", "Application": "", "Peer": ""}
    from_db = dict(cel, EventTimestamp="1796119200.123456", AMAFlags="DOCUMENTATION")
    assert journal.entry(cel, 5.0).key == journal.entry(from_db, 9.0).key
    assert journal.entry(from_db, 9.0).at == 1796119200.123456


async def test_a_restarted_clinicall_follows_open_calls_with_every_fact_received(harness: LogHarness) -> None:
    seen, rest = cut_after_answer("inbound_call")
    for ev, at in seen:
        await harness.log.handle(ev, at)
    answered = (await harness.rows())[0]
    assert answered.state == "answered"
    from telephony.calllog import CallLog

    again = CallLog(harness.db, harness.bus, harness.log.settings)  # kill -9, start again
    assert await again.load_open_calls() == 1
    for ev, at in rest:
        await again.handle(ev, at)
    call = await harness.row(answered.id)
    assert (call.state, call.disposition, call.answered_at) == ("ended", "answered", answered.answered_at)
    assert call.talk_seconds is not None and call.talk_seconds >= 2 and call.agent_extension == "1001"


async def test_a_fresh_database_never_takes_an_earlier_ones_call_from_cel(sqlite_url: str, tmp_path: Path) -> None:
    """Call 201 of a new database is not call 201 of the one before it, whose CEL records (`clinicall-201`,
    answered and ended) Asterisk still holds: tags are `clinicall-<installation>-<id>`."""
    import time

    from clinicall.db import Database
    from clinicall.migrate import migrate
    from telephony.service import call_tag
    from tests.telephony.test_calllog_rig import cel_database

    cel = CelSource(str(cel_database("ended_while_disconnected", tmp_path / "master.db")))
    assert await cel.read(linkedids={"clinicall-201"})  # the earlier database's call 201, answered
    other = f"sqlite+aiosqlite:///{tmp_path}/other.db"
    await migrate(Database(other))
    tags = set()
    for url in (other, sqlite_url, sqlite_url):
        async for h in make_harness(url):
            tags.add((url, await h.log.installation()))
    assert len(tags) == 2 and len({tag for _, tag in tags}) == 2  # one per database, kept across restarts
    async for h in make_harness(sqlite_url, agent_channel="Local/{ext}@agents"):
        tag = call_tag(201, await h.log.installation())
        async with h.db.transaction() as s:
            s.add(Call(id=201, direction="outbound", origin="click_to_call", state="dialing", action_id=tag,
                       channel_id=tag, dial_string="Local/1001@agents",
                       created_at=dt.datetime.fromtimestamp(time.time() - 5, dt.UTC)))
        async with h.db.session() as s:
            h.log.register(await s.get(Call, 201))  # type: ignore[arg-type]
        h.log.cel_source = cel
        h.log.cel_catch_up = 0.3
        h.log.link_lost()
        assert await h.log.reconcile(set(), time.time(), []) == [201]
        (row,) = await h.rows()
        assert (row.disposition, row.answered_at, row.talk_seconds or 0) == ("interrupted", None, 0)
