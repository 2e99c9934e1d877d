"""Replay every recorded Asterisk session (tests/fixtures/asterisk and its rig/) into the call log as recorded
and under each mutation of tests/telephony/mutations.py, and report any row that differs (or a crash).

    .venv/bin/python scripts/trace_mutations.py [--seeds N] [NAME ...]

Exit status 1 when a mutation changed a row. Each replay runs on a fresh migrated SQLite database."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic import command  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from clinicall.migrate import alembic_config  # noqa: E402
from tests.telephony.conftest import make_harness  # noqa: E402
from tests.telephony.mutations import MUTATIONS, replay, summary  # noqa: E402
from tests.telephony.traces import FIXTURES, load  # noqa: E402

SETTINGS = {"agent_channel": "Local/{ext}@agents", "inbound_contexts": ["inbound", "from-pstn", "from-trunk"]}
# sessions that are one part of a longer run (the next session, or one cut short on purpose)
PARTS = ("_after_restart", "_after_stop", "_after_graceful", "_reconnect", ".all")


def sessions(names: list[str]) -> list[str]:
    found = sorted({p.name.removesuffix(".recv.raw") for folder in (FIXTURES, FIXTURES / "rig")
                    for p in folder.glob("*.recv.raw") if ".fastagi." not in p.name})
    found = [n if (FIXTURES / f"{n}.recv.raw").exists() else f"rig/{n}" for n in found
             if not n.endswith(PARTS) and "_after_" not in n]
    return [n for n in found if not names or n.split("/")[-1] in names]


def template(folder: Path) -> Path:
    path = folder / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    cfg = alembic_config(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    return path


async def rows(db: Path, name: str, base: float, mutation: str | None, seed: int) -> list[dict[str, object]]:
    trace = load(name)
    out: list[dict[str, object]] = []
    async for h in make_harness(f"sqlite+aiosqlite:///{db}", **SETTINGS):
        for index in range(len(trace.originates())):
            await h.outbound_from_trace(trace, index, base=base)
        await replay(h, trace, base, mutation, seed)
        out = [summary(r) for r in await h.rows()]
    return out


def same(reference: list[dict[str, object]] | str, rows: list[dict[str, object]] | str, run: str) -> bool:
    """Equal rows; after a reconnect, a row the session leaves open (its end is not in the recording, or it is
    a click-to-call whose refusal came back as the action's reply, which only the link sees) may instead be
    settled `interrupted`: no end was seen."""
    if isinstance(reference, str) or isinstance(rows, str) or len(reference) != len(rows):
        return reference == rows
    pairs = zip(reference, rows, strict=True)
    return all(before == after or (run.startswith("reconnect") and before["state"] != "ended"
                                   and after["disposition"] == "interrupted") for before, after in pairs)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    changed = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        empty = template(folder)
        for name in sessions(args.names):
            runs: dict[str, list[dict[str, object]] | str] = {}
            base = time.time() - 3600  # in the recent past: a reconcile's own clock comes after every event
            for mutation in (None, *MUTATIONS):
                for seed in range(args.seeds if mutation else 1):
                    db = folder / f"run-{mutation}-{seed}.db"
                    shutil.copyfile(empty, db)
                    try:
                        runs[f"{mutation}/{seed}"] = await rows(db, name, base, mutation, seed)
                    except Exception:  # a crash is a finding too
                        runs[f"{mutation}/{seed}"] = traceback.format_exc(limit=3)
            reference = runs.pop("None/0")
            bad = {k: v for k, v in runs.items() if not same(reference, v, k)}
            changed += bool(bad)
            print(f"{'CHANGED' if bad else 'same   '} {name} ({len(reference)} rows)", flush=True)
            for key, value in bad.items():
                if isinstance(value, str) or isinstance(reference, str):
                    print(f"  {key}: {value if isinstance(value, str) else reference}")
                    continue
                for before, after in zip(reference, value, strict=False):
                    diff = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
                    if diff:
                        print(f"  {key}: {diff}")
                if len(reference) != len(value):
                    print(f"  {key}: {len(reference)} rows -> {len(value)}")
    print(f"{changed} session(s) changed by a mutation")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
