"""Messages per second through SMPP to the local SMSC (tests/messaging/smsc.py, in a child process).

    .venv/bin/python bench/messaging_smpp.py                       # 2,000 messages, concurrency 16
    .venv/bin/python bench/messaging_smpp.py --messages 500 --concurrency 4

The app runs in this process on a throwaway SQLite database (migrated): MessagingService.send stores
each message (timed apart), then the dispatcher sends them through smpplib (its own thread) to the
SMSC, which answers submit_sm and sends a delivery receipt for each. Printed: store rate, submit rate
(queued -> sent) and delivery rate (queued -> delivered, receipts applied), the CPU time of this process
per message and the machine's load average. Phase 1 stores the messages with no gateway configured;
phase 2 starts the app with the SMSC configured and times the backlog from start-up (bind included)
until every message is delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_smsc(conn: multiprocessing.connection.Connection) -> None:
    from tests.messaging.smsc import Smsc

    async def main() -> None:
        smsc = Smsc()
        conn.send(await smsc.start())
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until the parent says stop
        conn.send(len(smsc.submitted))
        await smsc.stop()

    asyncio.run(main())


async def bench(messages: int, concurrency: int, port: int, data_dir: str) -> dict[str, float]:
    from aiohttp import web

    from clinicall.app import create_app
    from clinicall.db import Database
    from clinicall.migrate import migrate
    from clinicall.settings import Settings
    from messaging.keys import MESSAGING_KEY

    url = f"sqlite+aiosqlite:///{data_dir}/bench.db"
    db = Database(url)
    await migrate(db)
    await db.dispose()
    base = {"data_dir": data_dir, "database": {"url": url}, "telephony": {"agi_enabled": False}}
    # Phase 1: no gateway configured: the messages are stored and wait.
    app = create_app(Settings(**base))  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    t0 = time.perf_counter()
    for n in range(messages):
        await app[MESSAGING_KEY].send(text=f"Phòng khám nhắc lịch hẹn số {n}", to=f"+8491{n % 10_000_000:07d}",
                                      origin="bench")
    store = messages / (time.perf_counter() - t0)
    await runner.cleanup()
    # Phase 2: the SMSC is configured: the backlog drains through SMPP (bind, submit_sm, receipts).
    app = create_app(Settings(**base, messaging={  # type: ignore[arg-type]
        "adapter": "smpp", "smpp_host": "127.0.0.1", "smpp_port": port, "smpp_system_id": "clinicall",
        "smpp_password": "secret", "smpp_source_addr": "CLINIC", "concurrency": concurrency}))
    runner = web.AppRunner(app)
    cpu0, t0 = _cpu(), time.perf_counter()
    await runner.setup()
    service = app[MESSAGING_KEY]
    sent_at = delivered_at = None
    try:
        while delivered_at is None:
            counts = await service.counts()
            now = time.perf_counter()
            if sent_at is None and counts.get("queued", 0) == 0:
                sent_at = now
            if counts.get("delivered", 0) == messages:
                delivered_at = now
            if counts.get("failed", 0):
                raise SystemExit(f"{counts['failed']} message(s) failed")
            await asyncio.sleep(0.25)
        cpu = _cpu() - cpu0
    finally:
        await runner.cleanup()
    return {"store": store, "submit": messages / ((sent_at or delivered_at) - t0),
            "deliver": messages / (delivered_at - t0), "cpu_ms": cpu * 1000 / messages}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    smsc = multiprocessing.Process(target=run_smsc, args=(child,), daemon=True)
    smsc.start()
    port = parent.recv()
    with tempfile.TemporaryDirectory() as data_dir:
        figures = asyncio.run(bench(args.messages, args.concurrency, port, data_dir))
    parent.send("stop")
    received = parent.recv()
    smsc.join(10)
    load = os.getloadavg()
    print("bench/messaging_smpp.py: text messages through SMPP (smpplib) to the local SMSC (tests/messaging/smsc.py, "
          "another process, real TCP), the app on SQLite in this process")
    print(f"messages: {args.messages}, concurrency: {args.concurrency}, SMSC received {received} submit_sm")
    print(f"stored (MessagingService.send, SQLite, no gateway): {figures['store']:.0f} messages/s")
    print(f"through SMPP, backlog queued -> sent:      {figures['submit']:.0f} messages/s (from start-up and bind)")
    print(f"through SMPP, backlog queued -> delivered: {figures['deliver']:.0f} messages/s (receipts applied)")
    print(f"CPU of the app process while draining: {figures['cpu_ms']:.2f} ms per message")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
