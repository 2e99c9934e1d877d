"""Phone lookup (lookup_caller) p50/p99 and name search p50/p99 with many patients on PostgreSQL.

    .venv/bin/python bench/crm_lookup.py --patients 1000000

Starts a throwaway PostgreSQL (pgserver) unless --database-url names one (a database this script
may drop and create), loads the patients with COPY, then measures through crm_bridge's own code."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time
from collections.abc import Iterator

from crm_common import database_url, landline, mobile, patient_name, percentile

from clinicall.auth.service import Principal, create_user, list_users
from clinicall.db import Database
from clinicall.migrate import migrate
from crm_bridge.names import fold, search_keys
from crm_bridge.patients import search_patients
from crm_bridge.service import agent_may_access, lookup_caller

CHUNK = 100_000


def rows(n: int, start: int, seed: int, agents: list[int]) -> Iterator[tuple[tuple, list[tuple], list[tuple]]]:
    rng = random.Random(seed + start)
    now = dt.datetime.now(dt.UTC)
    folded_names: dict[str, str] = {}  # names repeat a lot: fold each once
    for pid in range(start + 1, start + n + 1):
        name = patient_name(rng)
        folded = folded_names.get(name) or folded_names.setdefault(name, fold(name))
        created = now - dt.timedelta(minutes=pid)
        patient = (pid, name, folded, dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(30000)),
                   rng.choice(("male", "female")), "", "", "", rng.choice(("new", "in_treatment", "treatment_finished")),
                   rng.choice(agents) if rng.random() < 0.8 else None, "", f"HIS{pid}", created, created, created)
        phones = [(pid, "+84" + mobile(pid)[1:], mobile(pid), "")]  # national 0XXXXXXXXX -> +84XXXXXXXXX
        if pid % 10 == 0:
            phones.append((pid, "+84" + landline(pid)[1:], landline(pid), "nhà"))
        yield patient, phones, [(pid, k) for k in search_keys(folded)]


PATIENT_COLUMNS = ["id", "full_name", "name_folded", "date_of_birth", "gender", "address", "referring_doctor",
                   "service_of_interest", "care_status", "assigned_agent_id", "notes", "his_id", "last_activity_at",
                   "created_at", "updated_at"]


async def load(url: str, n: int, agents: list[int]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    started = time.perf_counter()
    try:
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            patients, phones, keys = [], [], []
            for patient, patient_phones, patient_keys in rows(size, start, 1, agents):
                patients.append(patient)
                phones += patient_phones
                keys += patient_keys
            await conn.copy_records_to_table("patients", records=patients, columns=PATIENT_COLUMNS)
            await conn.copy_records_to_table("patient_phones", records=[(*p, dt.datetime.now(dt.UTC)) for p in phones],
                                             columns=["patient_id", "e164", "raw", "label", "created_at"])
            await conn.copy_records_to_table("patient_name_keys", records=keys, columns=["patient_id", "key"])
            done = start + size
            rate = done / (time.perf_counter() - started)
            print(f"  loaded {done:,}/{n:,} patients ({rate:,.0f}/s)", flush=True)
        await conn.execute("SELECT setval(pg_get_serial_sequence('patients', 'id'), (SELECT max(id) FROM patients))")
        print("  ANALYZE ...", flush=True)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def timed(calls: list, label: str) -> list[float]:
    times = []
    for call in calls:
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    print(f"{label}: n={len(times)} p50={percentile(times, 50):.2f} ms p99={percentile(times, 99):.2f} ms "
          f"max={max(times):.2f} ms")
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--database-url", help="postgresql+asyncpg:// URL of a server to use instead of pgserver")
    parser.add_argument("--pgdata", help="keep pgserver's data in this directory (with --reuse: load only once)")
    parser.add_argument("--reuse", action="store_true", help="reuse an already loaded database of this size")
    args = parser.parse_args()

    server = None
    if args.database_url:
        base = args.database_url
    elif args.pgdata:
        import pgserver

        server = pgserver.get_server(args.pgdata, cleanup_mode=None)
        base = server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)
    else:
        from tests.servers import start_postgres

        server = start_postgres()
        base = server.url
    import asyncpg

    name = f"crm_bench_{args.patients}"
    admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://", 1))
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    reuse = bool(exists) and args.reuse
    if not reuse:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    url = database_url(base, name)
    db = Database(url)
    try:
        await migrate(db)
        if reuse:
            print(f"reusing database {name} in {args.pgdata}")
            agents = [u.id for u in await list_users(db) if u.username.startswith("agent")]
        else:
            agents = [(await create_user(db, f"agent{i}", "bench-password-1", ["agent"], f"Agent {i}",
                                         f"10{i:02d}")).id for i in range(1, 11)]
            print(f"loading {args.patients:,} patients into PostgreSQL ...", flush=True)
            started = time.perf_counter()
            await load(url, args.patients, agents)
            print(f"loaded in {time.perf_counter() - started:.1f} s")

        rng = random.Random(99)
        known = [rng.randrange(1, args.patients + 1) for _ in range(args.lookups)]
        forms = (lambda s: s, lambda s: "+84" + s[1:], lambda s: "84" + s[1:], lambda s: f"{s[:3]} {s[3:6]} {s[6:]}")
        lookups = []
        for pid in known:
            form = rng.choice(forms)(mobile(pid))
            lookups.append(lambda form=form, pid=pid: _check_lookup(db, form, pid))
        unknown = [lambda n=n: lookup_caller(db, f"09{n:08d}"[:10]) for n in rng.sample(range(10**7), args.lookups // 5)]
        for call in lookups[:50]:
            await call()  # warm the pool and caches
        print()
        print(f"== {args.patients:,} patients ==")
        await timed(lookups, "phone lookup, known numbers (lookup_caller, mixed written forms)")
        await timed(unknown, "phone lookup, unknown numbers")

        names = [fold(patient_name(rng)) for _ in range(args.searches)]
        words = [n.split() for n in names]
        queries = (
            [n[: rng.randrange(len(n) // 2, len(n) + 1)].strip() for n in names[: args.searches // 4]]  # full-name prefix
            + [" ".join(w[1:]) for w in words[: args.searches // 4]]  # without the family name
            + [w[-1][:3] for w in words[: args.searches // 4]]  # a given-name prefix
            + [f"{w[0]} {w[-1]}" for w in words[: args.searches // 4]]  # family + given name (words skipped)
        )
        await timed([lambda q=q: search_patients(db, q) for q in queries], "name search, supervisor (top 50)")
        agent = Principal(kind="user", user_id=agents[0], roles=frozenset({"agent"}))
        await timed([lambda q=q: search_patients(db, q, agent_scope=agent.user_id) for q in queries],
                    "name search, one agent's own + unassigned (top 50)")
        for kind, chunk in (("prefix", queries[: len(queries) // 4]), ("no family name", queries[len(queries) // 4:
                            len(queries) // 2]), ("given-name prefix", queries[len(queries) // 2: 3 * len(queries) // 4]),
                            ("words skipped", queries[3 * len(queries) // 4:])):
            await timed([lambda q=q: search_patients(db, q) for q in chunk], f"  name search by {kind}")
        await timed([lambda pid=pid: agent_may_access(db, agent, pid) for pid in known[:1000]], "agent_may_access")
    finally:
        await db.dispose()
        if server is not None and not args.pgdata:
            server.stop()


async def _check_lookup(db: Database, number: str, pid: int) -> None:
    match = await lookup_caller(db, number)
    assert match is not None and match.patient_id == pid, (number, pid, match)


if __name__ == "__main__":
    asyncio.run(main())
