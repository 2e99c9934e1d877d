"""The call journal, measured on the real Asterisk 22 traces (each repetition renamed, so every replay is
a new set of calls, not an idempotent repeat):

  machine   the state machine alone (telephony.calltrack + projection), traces x --rounds, no I/O
  journal   AMI events -> journal (call_events) -> call rows, on PostgreSQL, in batches of 500 like the
            AMI link; sustained events/s, and a check that no event was lost (journal rows == events)
  rebuild   `clinicall calls rebuild` of every call the journal run made (--rebuild-rounds more for a
            larger log)

  rebuild at scale (--rebuild-calls N): a journal of N calls written straight into call_events, then
            rebuilt into an empty call log; calls/s, progress and the process's peak RSS

    .venv/bin/python bench/telephony_journal.py --rounds 50 --journal-rounds 400 [--database-url URL]
    .venv/bin/python bench/telephony_journal.py --rounds 1 --journal-rounds 0 --rebuild-calls 100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from clinicall.db import Database  # noqa: E402
from clinicall.migrate import migrate  # noqa: E402
from clinicall.settings import TelephonySettings  # noqa: E402
from telephony import journal  # noqa: E402
from telephony.calllog import CallLog, make_tracker  # noqa: E402
from telephony.calltrack import CallSpec  # noqa: E402
from telephony.models import Call, CallEvent  # noqa: E402
from telephony.rebuild import RebuildReport, rebuild  # noqa: E402
from telephony.wire import StreamParser  # noqa: E402

FIXTURES = Path(os.environ.get("CLINICALL_ASTERISK_FIXTURES", ROOT / "tests" / "fixtures" / "asterisk"))
TRACES = ["inbound_call", "inbound_call_e164", "inbound_call_with_name", "inbound_call_agi_down",
          "inbound_call_anonymous"]
IDS = ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid", "UniqueID", "LinkedID", "BridgeUniqueid")
SETTINGS = TelephonySettings(agent_channel="Local/{ext}@agents")


def events_of(name: str) -> list[dict[str, str]]:
    raw = (FIXTURES / f"{name}.recv.raw").read_bytes()
    _, _, body = raw.partition(b"\r\n")
    return [m for m in StreamParser().feed(body) if "Event" in m and m["Event"] not in ("FullyBooted", "SuccessfulAuth")]


def workload(rounds: int) -> list[dict[str, str]]:
    base = [events_of(n) for n in TRACES]
    out: list[dict[str, str]] = []
    for r in range(rounds):
        for trace in base:
            out.extend({k: f"{v}-r{r}" if k in IDS and v and v != "<unknown>" else v for k, v in ev.items()}
                       for ev in trace)
    return out


def machine(rounds: int) -> None:
    events = workload(rounds)
    tracker = make_tracker(SETTINGS)
    started, cpu = time.perf_counter(), time.process_time()
    next_id = 1
    touched: set[int] = set()
    projections = 0
    for i, ev in enumerate(events):
        touched |= tracker.apply(ev, 1_800_000_000.0 + i * 0.001)
        linkedid = ev.get("Linkedid")
        if linkedid and (origin := tracker.call_candidate(linkedid)):
            tracker.register(CallSpec(call_id=next_id, direction="inbound", created_at=1_800_000_000.0,
                                      linkedid=linkedid, origin=origin))
            touched.add(next_id)
            next_id += 1
        if i % 500 == 499 or i == len(events) - 1:  # the AMI link hands the call log batches of up to 500
            for call_id in touched:
                tracker.project(call_id)
            projections += len(touched)
            touched = set()
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"machine: {len(events):,} events, {next_id - 1:,} calls, {projections:,} projections, {took:.2f} s, "
          f"{len(events) / took:,.0f} events/s; CPU {cpu:.2f} s: {len(events) / cpu:,.0f} events per CPU-second")


async def journal_run(url: str, rounds: int, rebuild_rounds: int) -> None:
    db = Database(url)
    await migrate(db)
    log = CallLog(db, None, SETTINGS)
    events = workload(rounds)
    started, cpu = time.perf_counter(), time.process_time()
    now = time.time()
    for start in range(0, len(events), 500):
        await log.handle_batch([(ev, now) for ev in events[start:start + 500]])
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    async with db.session() as s:
        stored = await s.scalar(select(func.count()).select_from(CallEvent))
        calls = await s.scalar(select(func.count()).select_from(Call))
        ended = await s.scalar(select(func.count()).select_from(Call).where(Call.state == "ended"))
    print(f"journal: {len(events):,} events -> {stored:,} journal rows, {calls:,} calls ({ended:,} ended) in "
          f"{took:.2f} s: {len(events) / took:,.0f} events/s; clinicall's own CPU {cpu:.2f} s: "
          f"{len(events) / cpu:,.0f} events per CPU-second")
    if rebuild_rounds:
        more = workload(rebuild_rounds)
        more = [{k: f"{v}-x" if k in IDS and v and v != "<unknown>" else v for k, v in ev.items()} for ev in more]
        for start in range(0, len(more), 2000):
            await log.handle_batch([(ev, now) for ev in more[start:start + 2000]])
    async with db.session() as s:
        calls = await s.scalar(select(func.count()).select_from(Call))
    await timed_rebuild(db, f"rebuild ({calls:,} rows there)")
    await db.dispose()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def timed_rebuild(db: Database, what: str) -> None:
    rss = peak_rss_mib()
    started, cpu = time.perf_counter(), time.process_time()

    def progress(report: RebuildReport) -> None:
        if report.events % 200_000 < 5000:
            print(f"  ... {report.events:,} events, {report.calls:,} calls written "
                  f"({report.calls / (time.perf_counter() - started):,.0f} calls/s, peak RSS {peak_rss_mib():,.0f} MiB)",
                  flush=True)

    report = await rebuild(db, SETTINGS, progress=progress)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{what}: {report.events:,} events, {report.calls:,} calls, {report.changed:,} rows written, {took:.2f} s: "
          f"{report.calls / took:,.0f} calls/s; CPU {cpu:.2f} s: {report.calls / cpu:,.0f} calls per CPU-second; "
          f"peak RSS {rss:,.0f} MiB before, {peak_rss_mib():,.0f} MiB after")


async def rebuild_run(url: str, calls: int) -> None:
    """A journal of `calls` calls written straight into call_events (no rows), then rebuilt into rows."""
    db = Database(url)
    await migrate(db)
    base = [events_of(n) for n in TRACES]
    started = time.perf_counter()
    batch: list[journal.Entry] = []
    now = time.time()
    seed = min(calls, 1000)  # journaled through journal.append; the rest are copies renamed by PostgreSQL
    for r in range(-(-seed // len(TRACES))):
        for trace in base:
            renamed = ({k: f"{v}-b{r}" if k in IDS and v and v != "<unknown>" else v for k, v in ev.items()}
                       for ev in trace)
            batch.extend(journal.entry(ev, now) for ev in renamed if journal.is_call_event(ev))
        if len(batch) >= 5000:
            await journal.append(db, batch)
            batch = []
    await journal.append(db, batch)
    async with db.transaction() as s:
        last = await s.scalar(select(func.max(CallEvent.id)))
        for copy in range(1, -(-calls // seed)):  # every id in a payload ends with -b<round>: -c<copy>-b<round>
            await s.execute(text(
                "INSERT INTO call_events (key, source, kind, linkedid, at, received_at, payload, problem) "
                "SELECT left(key, 56) || lpad(:n, 8, '0'), source, kind, linkedid || '-c' || :n, at, received_at, "
                "replace(payload, '-b', '-c' || :n || '-b'), problem FROM call_events WHERE id <= :last ORDER BY id"),
                {"n": str(copy), "last": last})
    async with db.session() as s:
        stored = await s.scalar(select(func.count()).select_from(CallEvent))
    print(f"journal of {calls:,} calls written: {stored:,} entries in {time.perf_counter() - started:.0f} s", flush=True)
    await timed_rebuild(db, "rebuild from an empty call log")
    await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50, help="state machine: traces x rounds")
    parser.add_argument("--journal-rounds", type=int, default=100, help="journal run: traces x rounds")
    parser.add_argument("--rebuild-rounds", type=int, default=0, help="more calls (traces x rounds) before rebuild")
    parser.add_argument("--rebuild-calls", type=int, default=0,
                        help="also: a journal of this many calls written directly, then rebuilt into an empty log")
    parser.add_argument("--database-url", help="postgresql+asyncpg:// URL (default: a pgserver of tests/servers.py)")
    args = parser.parse_args()
    machine(args.rounds)
    server = None
    base = args.database_url
    if base is None:
        from tests.servers import start_postgres

        server = start_postgres()
        base = server.url
    import asyncpg

    admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://", 1))
    for name in ("journal_bench", "rebuild_bench"):
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    try:
        if args.journal_rounds:
            await journal_run(server.database_url("journal_bench") if server else base, args.journal_rounds,
                              args.rebuild_rounds)
        if args.rebuild_calls:
            await rebuild_run(server.database_url("rebuild_bench") if server else base, args.rebuild_calls)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
