"""A reminder campaign on the demo PBX: calls per minute at N channels, attempts lost (must be 0), CPU per
attempt.

    .venv/bin/python bench/reminder_campaign.py                       # 200 patients (make bench)
    .venv/bin/python bench/reminder_campaign.py --patients 2000 --channels 10
    .venv/bin/python bench/reminder_campaign.py --patients 200 --speech   # with the spoken message rendered

The whole service runs in this process (create_app on a fresh SQLite file, the dialler, the AMI link
to the demo PBX over 127.0.0.1 TCP, the demo PBX running each answered call's FastAGI session against
our FastAGI server over TCP), so the CPU figure counts both ends of every socket. The demo PBX's ring
and no-answer times are multiplied by --time-scale (default 0.01: 15 ms ring, 120 ms no answer) so the
figure is not dominated by sleeps. Each patient is booked tomorrow with a number 09NNNNNNNN: by its last
digit the demo patient presses 1 (0-5), 2 (6, 7), nothing (8, retried), or is busy once then presses 1 (9).
Without --speech no message is rendered (espeak per unique name would dominate; see the figure with it).

Lost attempts = targets not in a final state when the campaign ends + Originates the PBX received that
have no attempt row + attempt rows whose call never ended.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from clinicall.app import create_app  # noqa: E402
from clinicall.db import Database  # noqa: E402
from clinicall.keys import DB_KEY  # noqa: E402
from clinicall.migrate import migrate  # noqa: E402
from clinicall.settings import Settings  # noqa: E402
from crm_bridge.models import Patient  # noqa: E402
from crm_bridge.patients import PatientIn, PhoneIn, create_patient  # noqa: E402
from reminders import service  # noqa: E402
from reminders.keys import DIALLER_KEY  # noqa: E402
from reminders.models import FINAL_STATES, Attempt, Campaign, Target  # noqa: E402
from telephony.keys import AMI_LINK_KEY, DEMO_PBX_KEY  # noqa: E402
from telephony.models import Call  # noqa: E402
from telephony.wire import first  # noqa: E402


def cpu_seconds() -> float:
    """This process and its finished children (espeak-ng, sox)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


async def seed(url: str, patients: int, zone: str) -> None:
    db = Database(url)
    await migrate(db)
    for i in range(patients):
        await create_patient(db, PatientIn(full_name=f"Bệnh nhân {i}", phones=[PhoneIn(number=f"09{10_000_000 + i:08d}")]),
                             None)
    tomorrow = dt.datetime.now(Settings(clinic={"timezone": zone}).clinic.zone()).date() + dt.timedelta(days=1)
    async with db.transaction() as s:
        await s.execute(update(Patient).values(booking_date=tomorrow))
    await db.dispose()


async def run(patients: int, channels: int, attempts: int, time_scale: float, speech: bool, tmp: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    await seed(url, patients, "Asia/Ho_Chi_Minh")
    settings = Settings(data_dir=str(tmp), database={"url": url}, http={"cookie_secure": False},
                        telephony={"demo_pbx": True, "agi_enabled": True, "agi_port": 0, "demo_time_scale": time_scale},
                        audio={"cache_dir": str(tmp / "audio"), "engines": ["espeak"]},
                        reminders={"daily_kinds": [], "calling_hours": ["00:00-24:00"], "max_channels": channels,
                                   "max_attempts": attempts, "retry_minutes": 0, "key_timeout_seconds": 0.05})
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        link, pbx, dialler = app[AMI_LINK_KEY], app[DEMO_PBX_KEY], app[DIALLER_KEY]
        assert link is not None and pbx is not None
        await link.wait_ready()
        if not speech:
            dialler.renderer = None
        db = app[DB_KEY]
        today = service.clinic_now(settings).date()
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        campaign = await service.build_campaign(db, settings, "appointment", today=today, source="bench")
        dialler.wake.set()
        while True:
            async with db.session() as s:
                state = await s.scalar(select(Campaign.state).where(Campaign.id == campaign.id))
            if state == "done":
                break
            await asyncio.sleep(0.2)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        async with db.session() as s:
            targets = dict((await s.execute(select(Target.state, func.count()).group_by(Target.state))).all())
            rows = (await s.execute(select(Call.action_id, Attempt.ended_at)
                                    .join(Call, Call.id == Attempt.call_id))).all()
            spans = (await s.execute(select(Call.created_at, Call.ended_at).where(Call.ended_at.is_not(None)))).all()
            settle = (await s.execute(select(Call.ended_at, Attempt.ended_at).join(Attempt, Attempt.call_id == Call.id)
                                      .where(Attempt.ended_at.is_not(None), Call.ended_at.is_not(None)))).all()
        originated = {first(a, "ActionID") for a in pbx.received if first(a, "Action") == "Originate"}
        recorded = {action_id for action_id, _ in rows}  # clinicall-<installation>-<call id>
        unfinished = sum(n for st, n in targets.items() if st not in FINAL_STATES)
        lost = unfinished + len(originated - recorded) + sum(1 for _, ended in rows if ended is None)
        print("bench/reminder_campaign.py: one reminder campaign (tomorrow's bookings) on the demo PBX, the whole "
              "service in this process (dialler, AMI link, call log, FastAGI server) and the PBX beside it")
        print(f"patients {patients}, channels {channels}, max attempts {attempts}, demo time scale {time_scale}, "
              f"speech {'on' if speech else 'off'}")
        print(f"targets by state: {dict(sorted(targets.items()))}")
        print(f"attempts {len(rows)} in {wall:.1f} s: {len(rows) / wall * 60:.0f} calls/minute")
        print(f"attempts lost: {lost}")
        call_s = sum((e - c).total_seconds() for c, e in spans) / max(1, len(spans))
        settle_s = sum((a - c).total_seconds() for c, a in settle) / max(1, len(settle))
        print(f"mean call {call_s:.2f} s (Originate written to the call's end); settled {settle_s:.2f} s after")
        print(f"CPU {cpu:.1f} s: {cpu / max(1, len(rows)) * 1000:.1f} ms per attempt (service, PBX, FastAGI, espeak-ng and sox)")
        load = os.getloadavg()
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores "
              "(other work on the machine slows the figure)")
    finally:
        await runner.cleanup()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--attempts", type=int, default=2, help="reminders.max_attempts")
    parser.add_argument("--time-scale", type=float, default=0.01, help="the demo PBX's ring and no-answer times x this")
    parser.add_argument("--speech", action="store_true", help="render each spoken message (espeak-ng, 8 kHz copy)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clinicall-bench-") as tmp:
        asyncio.run(run(args.patients, args.channels, args.attempts, args.time_scale, args.speech, Path(tmp)))


if __name__ == "__main__":
    main()
