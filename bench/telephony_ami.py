"""AMI events to call logs, sustained events/s, replaying the real Asterisk 22 traces many times over.

Three figures:

  tracker   the pure state machine (telephony.calltrack), no I/O
  calllog   the call log with its SQLite writes and call.updated events (in-process bus)
  tcp       the same events written by a TCP peer on 127.0.0.1 as raw AMI bytes, read by the AMI
            link (panoramisk Manager) and fed to the call log: first byte sent -> last event logged

Every repetition renames the identities in the trace (ActionID, Uniqueid, Linkedid, ChannelId...)
so each replay is a new set of calls, not an idempotent repeat.

    .venv/bin/python bench/telephony_ami.py --rounds 200

Click to Originate on the wire (HTTP POST /api/calls -> the Originate bytes arriving at a TCP AMI
peer) is in bench/telephony_click.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clinicall.bus import InProcessBus  # noqa: E402
from clinicall.db import Database  # noqa: E402
from clinicall.migrate import migrate  # noqa: E402
from clinicall.settings import TelephonySettings  # noqa: E402
from telephony.ami import AmiLink  # noqa: E402
from telephony.calllog import CallLog  # noqa: E402
from telephony.calltrack import CallSpec  # noqa: E402
from telephony.models import Call  # noqa: E402
from telephony.wire import parse_actions, split_stream  # noqa: E402

FIXTURES = Path(os.environ.get("CLINICALL_ASTERISK_FIXTURES", ROOT / "tests" / "fixtures" / "asterisk"))
TRACES = ["click_to_call_answered", "click_to_call_agent_busy", "click_to_call_no_answer",
          "click_to_call_channelid_answered", "click_to_call_channelid_busy", "click_to_call_concurrent",
          "click_to_call_agent_busy_cdr_unanswered_no", "click_to_call_answered_cdr_unanswered_no",
          "inbound_call", "inbound_call_e164", "inbound_call_agi_down"]
IDENTITY = re.compile(r"^((?:Dest)?(?:Uniqueid|Linkedid)|UniqueID|ActionID): ([^\r\n]+)", re.M)


def load_stream(name: str) -> tuple[str, list[list[tuple[str, str]]]]:
    raw = (FIXTURES / f"{name}.recv.raw").read_bytes().decode()
    _, _, body = raw.partition("\r\n")  # greeting
    # only the call part: from the first Originate response on, without Login/Logoff replies
    blocks = [b for b in body.split("\r\n\r\n") if b and "ActionID: login" not in b and "logoff" not in b
              and not b.startswith(("Event: FullyBooted", "Event: SuccessfulAuth"))]
    actions = [a for a in parse_actions((FIXTURES / f"{name}.sent.raw").read_bytes())
               if a[0][1] == "Originate" and dict(a).get("Exten")]  # not the recorder's simulated inbound caller
    return "\r\n\r\n".join(blocks) + "\r\n\r\n", actions


def renamed(text: str, suffix: str) -> str:
    return IDENTITY.sub(lambda m: m.group(0) if m.group(2) == "<unknown>" else f"{m.group(1)}: {m.group(2)}{suffix}",
                        text)


async def new_database(path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{path}")
    await migrate(db)
    return db


async def register(log: CallLog, db: Database, actions: list[list[tuple[str, str]]], suffix: str,
                   with_db: bool) -> None:
    for action in actions:
        head = dict(action)
        channel_id = head.get("ChannelId")
        spec = dict(action_id=head["ActionID"] + suffix, channel_id=channel_id + suffix if channel_id else None,
                    dial_string=head.get("Channel"))
        if with_db:
            async with db.transaction() as s:
                call = Call(direction="outbound", state="dialing", **spec)
                s.add(call)
                await s.flush()
                log.register(call)
        else:
            call_id = len(log.tracker.calls) + 1
            log.tracker.register(CallSpec(call_id=call_id, direction="outbound", created_at=time.time(),
                                          other_channel_id=spec["channel_id"] + "-2" if spec["channel_id"] else None,
                                          **spec))


async def bench_tracker(rounds: int, streams: dict[str, tuple[str, list]]) -> tuple[int, float]:
    settings = TelephonySettings(agent_channel="Local/{ext}@agents")
    log = CallLog(None, None, settings)  # type: ignore[arg-type]  # tracker only
    events = 0
    elapsed = 0.0
    for i in range(rounds):
        for k, (text, actions) in enumerate(streams.values()):
            await register(log, None, actions, f"#{i}.{k}", with_db=False)  # type: ignore[arg-type]
            messages = list(split_stream(renamed(text, f"#{i}.{k}")))
            start = time.perf_counter()
            for ev in messages:
                touched = log.tracker.apply(ev, time.time())
                for call_id in touched:
                    log.tracker.project(call_id)
            elapsed += time.perf_counter() - start
            events += len(messages)
    return events, elapsed


async def bench_calllog(rounds: int, streams: dict[str, tuple[str, list]], tmp: Path,
                        batched: bool) -> tuple[int, float, int]:
    db = await new_database(tmp / f"calllog-{batched}.db")
    bus = InProcessBus()
    await bus.start()
    log = CallLog(db, bus, TelephonySettings(agent_channel="Local/{ext}@agents"))
    events = 0
    elapsed = 0.0
    for i in range(rounds):
        for k, (text, actions) in enumerate(streams.values()):
            await register(log, db, actions, f"#{i}.{k}", with_db=True)
            messages = list(split_stream(renamed(text, f"#{i}.{k}")))
            start = time.perf_counter()
            if batched:
                now = time.time()
                await log.handle_batch([(ev, now) for ev in messages])
            else:
                for ev in messages:
                    await log.handle(ev)
            elapsed += time.perf_counter() - start
            events += len(messages)
    await bus.drain()
    async with db.session() as s:
        from sqlalchemy import func, select

        calls = await s.scalar(select(func.count()).select_from(Call).where(Call.state == "ended")) or 0
    await bus.close()
    await db.dispose()
    return events, elapsed, calls


async def bench_tcp(rounds: int, streams: dict[str, tuple[str, list]], tmp: Path) -> tuple[int, float, int]:
    db = await new_database(tmp / "tcp.db")
    bus = InProcessBus()
    await bus.start()
    log = CallLog(db, bus, TelephonySettings(agent_channel="Local/{ext}@agents"))
    payload = []
    for i in range(rounds):
        for k, (text, actions) in enumerate(streams.values()):
            await register(log, db, actions, f"#{i}.{k}", with_db=True)
            payload.append(renamed(text, f"#{i}.{k}"))
    data = "".join(payload).encode()
    total = sum(1 for p in payload for m in split_stream(p) if "Event" in m)
    ready = asyncio.Event()
    sent_at: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = await reader.readuntil(b"\r\n\r\n")
        action_id = re.search(rb"ActionID: (\S+)", login).group(1).decode()  # type: ignore[union-attr]
        writer.write(f"Response: Success\r\nActionID: {action_id}\r\nMessage: Authentication accepted\r\n\r\n"
                     "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\nLastReload: 5\r\n"
                     "Status: Fully Booted\r\n\r\n".encode())
        await ready.wait()
        sent_at.append(time.perf_counter())
        for start in range(0, len(data), 16384):
            writer.write(data[start:start + 16384])
            await writer.drain()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    link = AmiLink(host="127.0.0.1", port=server.sockets[0].getsockname()[1], username="b", secret="b",
                   calllog=log)
    await link.start()
    await link.wait_ready()
    await asyncio.sleep(0.2)
    base = log.events_seen
    ready.set()
    while log.events_seen - base < total:  # noqa: ASYNC110 - polling a counter is the measurement
        await asyncio.sleep(0.01)
    await link.drain()
    elapsed = time.perf_counter() - sent_at[0]
    async with db.session() as s:
        from sqlalchemy import func, select

        calls = await s.scalar(select(func.count()).select_from(Call).where(Call.state == "ended")) or 0
    await link.stop()
    server.close()
    await bus.close()
    await db.dispose()
    return total, elapsed, calls


async def main(args: argparse.Namespace) -> None:
    streams = {name: load_stream(name) for name in TRACES}
    print(f"traces: {len(streams)} ({', '.join(streams)}); rounds: {args.rounds}")
    events, elapsed = await bench_tracker(args.rounds, streams)
    print(f"tracker  (pure state machine):        {events:8d} events in {elapsed:6.2f} s = {events / elapsed:9.0f} events/s")
    with tempfile.TemporaryDirectory() as tmp:
        for batched in (False, True):
            events, elapsed, calls = await bench_calllog(args.rounds, streams, Path(tmp), batched)
            label = "one trace per transaction" if batched else "one event per transaction"
            print(f"calllog  (SQLite, {label}): {events:8d} events in {elapsed:6.2f} s = "
                  f"{events / elapsed:9.0f} events/s, {calls} calls ended")
        events, elapsed, calls = await bench_tcp(args.rounds, streams, Path(tmp))
        print(f"tcp      (AMI link over 127.0.0.1):   {events:8d} events in {elapsed:6.2f} s = "
              f"{events / elapsed:9.0f} events/s, {calls} calls ended")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--rounds", type=int, default=100, help="replays of the whole set of traces")
    arguments = cli.parse_args()
    if not FIXTURES.is_dir():
        sys.exit(f"no traces under {FIXTURES}; set CLINICALL_ASTERISK_FIXTURES")
    asyncio.run(main(arguments))
