"""A random clinic day through the HTTP API of a real app, with what nobody may ever see checked after every step.

Services A (consult), B (lab), C (ultrasound), D (X-ray); rooms consult 1 (A), consult 2 (A, C), lab 1 (B) and
imaging 1 (C, D). Each step is one of: a walk-in ticket of any class (emergency included), call-next in any room,
done or a transfer to the lab or X-ray (the page's defaults: back to the same doctor), start, recall, skip, hold of
the current patient, hold or call of a given waiting number, resume, restore or call of a set-aside one, and a
consult room closing or opening (one of the two stays open). After every step, once the estimates are stored:

- no answer is a 5xx;
- every ticket of the day is done, a no-show, set aside (held, skipped: the room page lists them) or visible:
  each waiting ticket in exactly one line of GET /api/queue, each called one as exactly one room's current;
- no two open tickets share a number;
- down every line the wait and its range never decrease;
- a patient back from the lab is called only by their doctor's room while it is open (within the hold time).

    .venv/bin/python scripts/clinic_day.py --steps 400 --seed 1 [--database postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from clinicall.app import create_app  # noqa: E402
from clinicall.auth import service as auth_service  # noqa: E402
from clinicall.db import Database  # noqa: E402
from clinicall.keys import DB_KEY  # noqa: E402
from clinicall.migrate import migrate  # noqa: E402
from clinicall.settings import Settings  # noqa: E402
from queue_display.runtime import RUNTIME_KEY  # noqa: E402

OPEN = ("waiting", "called", "in_service", "held", "skipped")
SERVICES = (("A", "Khám tổng quát"), ("B", "Xét nghiệm"), ("C", "Siêu âm"), ("D", "Chụp X-quang"))
ROOMS = (("consult1", "consult", 1, "A"), ("consult2", "consult", 2, "AC"), ("lab1", "lab", 1, "B"),
         ("imaging1", "imaging", 1, "CD"))
CONSULTS = ("consult1", "consult2")


class Day:
    def __init__(self, client: TestClient, headers: dict[str, dict[str, str]], seed: int) -> None:
        self.client, self.headers, self.rng = client, headers, random.Random(seed)
        self.services: dict[str, int] = {}
        self.rooms: dict[str, int] = {}
        self.open = {name: True for name, *_ in ROOMS}
        self.log: list[str] = []
        self.statuses: Counter[int] = Counter()

    async def call(self, method: str, path: str, body: Any = None, who: str = "doctor") -> tuple[int, Any]:
        async with self.client.request(method, path, json=body, headers=self.headers[who]) as response:
            data = await response.json(content_type=None)
            self.statuses[response.status] += 1
            if response.status >= 500:
                raise AssertionError(f"{method} {path} -> {response.status} {data}; last steps {self.log[-5:]}")
            return response.status, data

    async def setup(self) -> None:
        for prefix, name in SERVICES:
            _, data = await self.call("POST", "/api/services", {"prefix": prefix, "names": {"vi": name}}, "admin")
            self.services[prefix] = data["service"]["id"]
        for name, kind, number, prefixes in ROOMS:
            body = {"kind": kind, "number": number, "service_ids": [self.services[p] for p in prefixes]}
            _, data = await self.call("POST", "/api/rooms", body, "admin")
            self.rooms[name] = data["room"]["id"]

    async def step(self, index: int) -> None:
        _, queue = await self.call("GET", "/api/queue")
        _, listed = await self.call("GET", "/api/tickets")
        rooms = {r["id"]: r for r in queue["rooms"]}
        waiting = [t for s in queue["services"] for t in s["waiting"]]
        name = self.rng.choice(list(self.rooms))
        room_id = self.rooms[name]
        current = rooms[room_id]["current"]
        roll = self.rng.random()
        if roll < 0.25:
            await self.issue(index)
        elif roll < 0.5:
            await self.call_next(index, name, waiting)
        elif roll < 0.58 and current:
            await self.finish(index, name, current)
        elif roll < 0.63 and current:
            operation = self.rng.choice(["start", "recall", "recall", "skip", "hold"])
            status, _ = await self.call("POST", f"/api/tickets/{current['id']}/{operation}")
            self.log.append(f"{index} {operation} {current['number']} -> {status}")
        elif roll < 0.7:
            await self.set_aside(index, listed["tickets"], rooms)
        elif roll < 0.75 and waiting:
            ticket = self.rng.choice(waiting)
            operation, body = ("hold", None) if self.rng.random() < 0.5 else ("call", {"room_id": room_id})
            status, _ = await self.call("POST", f"/api/tickets/{ticket['id']}/{operation}", body)
            self.log.append(f"{index} {operation} {ticket['number']} ({name}) -> {status}")
        elif roll < 0.8 and name in CONSULTS:
            other = CONSULTS[1 - CONSULTS.index(name)]
            if not self.open[name] or self.open[other]:
                self.open[name] = not self.open[name]
                await self.call("PATCH", f"/api/rooms/{room_id}", {"open": self.open[name]})
                self.log.append(f"{index} {name} open={self.open[name]}")

    async def issue(self, index: int) -> None:
        prefix = self.rng.choice("AAAAACCB")
        priority = self.rng.choice(["normal"] * 6 + ["elderly", "pregnant", "disabled", "emergency"])
        await self.call("POST", "/api/tickets", {"service_id": self.services[prefix], "priority": priority}, "reception")
        self.log.append(f"{index} issue {prefix} {priority}")

    async def call_next(self, index: int, name: str, waiting: list[dict[str, Any]]) -> None:
        status, data = await self.call("POST", f"/api/rooms/{self.rooms[name]}/call-next")
        called = data.get("ticket") if status == 200 else None
        self.log.append(f"{index} call-next {name} -> {status} {called and called['number']}")
        before = next((t for t in waiting if called and t["id"] == called["id"]), None)
        back = before and before["back_to"]
        if back and back["now"] and back["room"] and back["room"]["id"] != self.rooms[name]:
            doctor = next(n for n, i in self.rooms.items() if i == back["room"]["id"])
            assert not self.open[doctor], f"{called['number']} was taken from {doctor}'s line: {self.log[-5:]}"

    async def finish(self, index: int, name: str, current: dict[str, Any]) -> None:
        if name in CONSULTS and current["service_id"] == self.services["A"] and not current["returning"]:
            target = self.services[self.rng.choice("BD")]
            status, data = await self.call("POST", f"/api/tickets/{current['id']}/transfer", {"service_id": target})
            self.log.append(f"{index} transfer {current['number']} -> {status} {(data.get('ticket') or {}).get('number')}")
        else:
            status, _ = await self.call("POST", f"/api/tickets/{current['id']}/done")
            self.log.append(f"{index} done {current['number']} -> {status}")

    async def set_aside(self, index: int, listed: list[dict[str, Any]], rooms: dict[int, Any]) -> None:
        aside = [t for t in listed if t["status"] in ("held", "skipped", "noshow")]
        if not aside:
            return
        ticket = self.rng.choice(aside)
        choices = {"held": ["resume"], "skipped": ["restore", "call"], "noshow": ["restore"]}[ticket["status"]]
        operation = self.rng.choice(choices)
        body = None
        if operation == "call":
            serving = [i for i, r in rooms.items() if ticket["service_id"] in r["service_ids"] and r["open"]]
            body = {"room_id": self.rng.choice(serving or list(rooms))}
        status, _ = await self.call("POST", f"/api/tickets/{ticket['id']}/{operation}", body)
        self.log.append(f"{index} {operation} {ticket['number']} ({ticket['status']}) -> {status}")

    async def check(self) -> None:
        await self.client.app[RUNTIME_KEY].settled()
        _, queue = await self.call("GET", "/api/queue")
        _, listed = await self.call("GET", "/api/tickets")
        where = f"last steps {self.log[-5:]}"
        in_lines: Counter[int] = Counter()
        for service in queue["services"]:
            floor = (0.0, 0.0, 0.0)
            for ticket in service["waiting"]:
                in_lines[ticket["id"]] += 1
                if ticket["estimated_wait_seconds"] is not None and ticket["estimated_wait_range"]:
                    shown = (ticket["estimated_wait_seconds"], *ticket["estimated_wait_range"])
                    assert all(a >= b for a, b in zip(shown, floor, strict=True)), (ticket["number"], floor, shown, where)
                    floor = shown
        currents = Counter(r["current"]["id"] for r in queue["rooms"] if r["current"])
        assert all(n == 1 for n in currents.values()), (currents, where)
        numbers: Counter[str] = Counter()
        for ticket in listed["tickets"]:
            if ticket["status"] == "waiting":
                assert in_lines[ticket["id"]] == 1, (ticket["number"], "waiting but not in one line", where)
            elif ticket["status"] in ("called", "in_service"):
                assert currents[ticket["id"]] == 1, (ticket["number"], "called but no room shows it", where)
            if ticket["status"] in OPEN:
                numbers[ticket["number"]] += 1
        assert all(n == 1 for n in numbers.values()), (numbers.most_common(2), where)


async def main(steps: int, seed: int, database: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database or f"sqlite+aiosqlite:///{tmp}/day.db"
        settings = Settings(data_dir=tmp, database={"url": url}, telephony={"agi_enabled": False},  # type: ignore[arg-type]
                            audio={"cache_dir": f"{tmp}/audio", "engines": ["espeak"]})
        fresh = Database(url)
        await migrate(fresh)
        await fresh.dispose()
        app = create_app(settings)
        async with TestClient(TestServer(app)) as client:
            headers = {}
            for role in ("admin", "reception", "doctor"):
                user = await auth_service.create_user(app[DB_KEY], f"day-{role}", "day-password-123", [role])
                token = await auth_service.create_api_token(app[DB_KEY], user.id, "clinic day")
                headers[role] = {"Authorization": f"Bearer {token}"}
            day = Day(client, headers, seed)
            await day.setup()
            for index in range(steps):
                await day.step(index)
                await day.check()
            _, listed = await day.call("GET", "/api/tickets")
            print(f"{steps} steps, seed {seed}: {len(listed['tickets'])} tickets "
                  f"{dict(Counter(t['status'] for t in listed['tickets']))}; answers {dict(day.statuses)}; "
                  "every check held")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", help="a database URL (default: a throwaway SQLite file)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.steps, args.seed, args.database))
