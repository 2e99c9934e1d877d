"""What one call-next costs the database, counted (a count is behaviour, not speed): the operation, its
events and its reply in one short transaction of at most 8 statements; the estimate refresh that follows
reads the queue once and is shared by a burst; masked names for a screen in one query."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from clinicall.db import Database
from clinicall.keys import DB_KEY, SETTINGS_KEY
from queue_display import tickets
from queue_display.runtime import REFRESH_TASK, RUNTIME_KEY
from tests.queue_display.conftest import Clinic

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
WRITER = "writer thread"


@contextmanager
def statements_by_task(db: Database) -> Iterator[dict[str, list[str]]]:
    """SQL statements sent to the database, by the name of the asyncio task that sent them."""
    seen: dict[str, list[str]] = {}

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            try:
                task = asyncio.current_task()
            except RuntimeError:  # SQLite's writer thread (Database.run_sync): the task that awaits it
                task = None
            seen.setdefault(task.get_name() if task else WRITER, []).append(statement)

    def raw(record: Any) -> None:  # what is sent through asyncpg itself (Database.pg_transaction), on PostgreSQL
        before(None, None, record.query)

    def log_raw(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(raw)

    def stop_raw(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.remove_query_logger(raw)

    engines = {db.engine.sync_engine, db.read_engine.sync_engine, *([db.writer_engine] if db.writer_engine else [])}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
        if db.is_postgres:
            event.listen(engine, "checkout", log_raw)
            event.listen(engine, "checkin", stop_raw)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)
            if db.is_postgres:
                event.remove(engine, "checkout", log_raw)
                event.remove(engine, "checkin", stop_raw)


async def test_call_next_is_one_short_transaction_and_its_estimates_follow_once(clinic: Clinic) -> None:
    app = clinic.client.app
    db, settings, runtime = app[DB_KEY], app[SETTINGS_KEY], app[RUNTIME_KEY]  # type: ignore[index]
    first, second, third = [await clinic.issue("A") for _ in range(3)]
    assert (await clinic.call_next("consult1"))["id"] == first["id"]  # the room has a ticket to finish
    await runtime.settled()
    mine = asyncio.current_task().get_name()  # type: ignore[union-attr]

    with statements_by_task(db) as sent:
        outcome = await tickets.call_next(db, settings, clinic.rooms["consult1"])
        applied = await runtime.applied(outcome)  # the events and the reply, from the operation's view
        await runtime.settled()
    assert applied.ticket is not None and applied.ticket["id"] == second["id"]
    assert applied.ticket["status"] == "called" and applied.ticket["room"]["id"] == clinic.rooms["consult1"]
    assert [f["id"] for f in applied.finished] == [first["id"]] and applied.finished[0]["status"] == "done"
    assert applied.row is not None and applied.row.called_at is not None
    mine_or_writer = sent.get(mine, []) + sent.get(WRITER, [])  # nothing else writes meanwhile
    assert len(mine_or_writer) <= 8, mine_or_writer
    assert len(sent[REFRESH_TASK]) <= 5, sent[REFRESH_TASK]  # one read of the queue, one write of the waits

    queue = await clinic.get("/api/queue")  # what the refresh stored is what the next reader sees
    line = next(s for s in queue["services"] if s["id"] == clinic.services["A"])
    assert [t["id"] for t in line["waiting"]] == [third["id"]] and line["waiting"][0]["position"] == 1

    # a burst of call-nexts shares refreshes: never more refreshes than changes
    for _ in range(3):
        await clinic.issue("A")
    before = runtime.refreshes
    with statements_by_task(db) as sent:
        for _ in range(3):
            await runtime.applied(await tickets.call_next(db, settings, clinic.rooms["consult1"]))
        await runtime.settled()
    assert 1 <= runtime.refreshes - before <= 3
    assert len(sent.get(mine, []) + sent.get(WRITER, [])) <= 3 * 8


async def test_masked_names_for_a_screen_in_one_query(clinic: Clinic) -> None:
    from crm_bridge.patients import PatientIn, create_patient
    from queue_display import state as qstate
    from queue_display.service import get_ticket

    app = clinic.client.app
    db, settings = app[DB_KEY], app[SETTINGS_KEY]  # type: ignore[index]
    names = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Minh Châu")
    ids = [await create_patient(db, PatientIn(full_name=name), None) for name in names]
    issued = [await clinic.issue("A", who="admin", patient_id=patient_id) for patient_id in ids]
    rows = [await get_ticket(db, t["id"]) for t in issued]
    initials = settings.model_copy(update={"display": settings.display.model_copy(update={"name_mask": "initials"})})
    mine = asyncio.current_task().get_name()  # type: ignore[union-attr]
    with statements_by_task(db) as sent:
        masked = await qstate.masked_names(db, initials, rows)
    assert masked == dict(zip(ids, ("Nguyễn V. A.", "Trần T. B.", "Lê M. C."), strict=True))
    assert len(sent[mine]) == 1

    # call-next reads its tickets' masked names in its own transaction: nothing is read again to publish
    runtime = app[RUNTIME_KEY]  # type: ignore[index]
    with statements_by_task(db) as sent:
        outcome = await tickets.call_next(db, initials, clinic.rooms["consult1"])
        applied = await runtime.applied(outcome)
    assert outcome is not None and outcome.view is not None and outcome.view.names == {ids[0]: "Nguyễn V. A."}
    assert applied.ticket is not None and applied.ticket["masked_name"] == "Nguyễn V. A."
    assert len(sent.get(mine, []) + sent.get(WRITER, [])) <= 8, sent
    await runtime.settled()
