"""Shared fixtures: real PostgreSQL and Redis, a fresh migrated database per test, the app and
logged-in API callers. Tests that take `db_url` or `client` run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import functools
import itertools
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.db import Database
from clinicall.keys import DB_KEY
from clinicall.migrate import migrate
from clinicall.settings import Settings
from tests.servers import Postgres, RedisServer, start_postgres, start_redis

# live_server, browser, page, new_page (tests/browser.py); the real Asterisk rig, one per test session for every
# module that uses it (tests/telephony/real_asterisk.py)
pytest_plugins = ["tests.browser", "tests.telephony.real_asterisk"]

# The longest tests (node ids, from a quiet run's --durations=0: 7 s and over) start first and the others
# follow; with `--maxschedchunk 1` (Makefile) each worker takes the next one when it is free, so no long test
# is left to run alone at the end. Order only: what they assert is untouched.
LONGEST_FIRST = (
    "tests/queue_display/test_morning.py::test_the_scripted_morning_loses_nobody",
    "tests/consoles/test_care_loop.py::test_referral_to_results_walk",
    "tests/reminders/test_real_asterisk.py::test_reminder_calls_on_the_real_asterisk",
    "tests/consoles/test_pages.py::test_agent_card_tools_outcome_and_care_lists",
    "tests/clinicall/test_operations.py::test_user_list_passwd_disable_end_sessions",
    "tests/consoles/test_pages.py::test_supervisor_pages_and_refusals",
    "tests/consoles/test_reception.py::test_checkin_walkin_queue_and_tv",
    "tests/consoles/test_admin.py::test_admin_console",
    "tests/clinicall/test_api_contract.py::test_schemathesis_every_operation_every_role[2]",
    "tests/clinicall/test_api_contract.py::test_schemathesis_every_operation_every_role[0]",
    "tests/clinicall/test_operations.py::test_backup_purge_restore_postgresql",
    "tests/queue_display/test_room_page.py::test_every_operation_from_the_room_page_with_its_key",
    "tests/consoles/test_reminders.py::test_supervisor_starts_a_campaign_and_sees_it_progress",
    "tests/telephony/test_real_asterisk.py::test_restart_and_stop_mid_call_leave_finished_calls_exactly_as_they_were",
    "tests/clinicall/test_api_contract.py::test_schemathesis_every_operation_every_role[1]",
    "tests/clinicall/test_cli.py::test_user_add_reads_password_and_refuses_short_ones",
    "tests/queue_display/test_sim.py::test_estimator_beats_every_baseline_on_a_seeded_small_clinic",
    "tests/queue_display/test_status_page.py::test_status_page_follows_the_ticket",
    "tests/consoles/test_calls.py::test_click_to_call_live_state_and_outcome",
    "tests/clinicall/test_operations.py::test_backup_purge_restore_sqlite",
    "tests/queue_display/test_clinic_day_pages.py::test_a_late_doctor_a_lab_and_xray_round_trip_and_lunch",
    "tests/messaging/test_card_browser.py::test_agent_sends_a_template_from_the_card_and_sees_it_delivered",
    "tests/queue_display/test_room_page.py::test_reception_arrivals_follow_another_desks_check_in",
    "tests/clinicall/test_operations.py::test_unreachable_database_is_one_line_and_exit_2",
    "tests/consoles/test_calls.py::test_inbound_screenpops_known_and_unknown",
    "tests/clinicall/test_security_browser.py::test_api_reference_page",
    "tests/clinicall/test_startup.py::test_a_lost_database_is_503_with_retry_after",
    "tests/clinicall/test_cli.py::test_a_taken_port_is_a_clear_message",
    "tests/telephony/test_real_asterisk.py::test_click_to_call_answered_busy_and_no_answer",
    "tests/queue_display/test_call_order_heads.py::test_the_head_of_the_line_orders_and_calls_as_the_whole_line_does[postgresql]",
    "tests/queue_display/test_concurrency.py::test_two_instances_on_one_postgres_never_call_the_same_ticket",
    "tests/clinicall/test_probes.py::test_nul_characters_are_refused_before_the_database",
    "tests/consoles/test_agent.py::test_worklists_search_card_note_and_keyboard",
    "tests/queue_display/test_pages.py::test_call_next_on_the_room_page_is_seen_on_the_tv_and_the_door",
    "tests/queue_display/test_range_pages.py::test_tv_door_and_patient_page_show_the_wait_range",
    "tests/queue_display/test_demo_stats.py::test_demo_history_warms_estimator_and_feeds_stats[sqlite]",
    "tests/clinicall/test_startup.py::test_instances_starting_together_on_one_postgresql",
    "tests/clinicall/test_access_matrix.py::test_access_matrix",
    "tests/telephony/test_real_asterisk.py::test_a_call_that_ends_while_clinicall_is_killed_gets_its_true_end_from_cel",
    "tests/clinicall/test_startup.py::test_instances_starting_together_on_one_sqlite_file",
    "tests/clinicall/test_cli.py::test_serve_answers_healthz_and_stops_cleanly",
    "tests/clinicall/test_hostile.py::test_a_doctor_works_only_their_own_rooms_queue",
    "tests/consoles/test_calls.py::test_hang_up_unanswered_call_then_not_reached_worklist",
)


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONGEST_FIRST))

    items.sort(key=rank)


PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session", autouse=True)
def argon2_once_per_password() -> Iterator[None]:
    """Argon2 costs about 0.25 s a hash by design, and the suite creates thousands of users with a handful
    of passwords: each worker runs the real hash once per password and the real verify once per
    (hash, password), and reuses them (every stored hash is still a real, salted argon2 hash)."""
    real_hash = auth_service.hash_password
    hashes: dict[str, str] = {}

    async def hash_once(password: str) -> str:
        if password not in hashes:
            hashes[password] = await real_hash(password)
        return hashes[password]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth_service, "hash_password", hash_once)
        patch.setattr(auth_service, "_verify", functools.lru_cache(maxsize=4096)(auth_service._verify))
        yield


_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = start_postgres(throwaway=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


async def _admin_execute(postgres: Postgres, sql: str) -> None:
    import asyncpg

    url = postgres.url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template(postgres: Postgres) -> str:
    name = "clinicall_template"

    async def build() -> None:
        await _admin_execute(postgres, f"DROP DATABASE IF EXISTS {name}")
        await _admin_execute(postgres, f"CREATE DATABASE {name}")
        db = Database(postgres.database_url(name))
        await migrate(db)
        await db.dispose()

    asyncio.run(build())
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"

    async def build() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await migrate(db)
        await db.dispose()

    asyncio.run(build())
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "clinicall.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def pg_url(postgres: Postgres, pg_template: str) -> AsyncIterator[str]:
    name = f"clinicall_t{next(_counter)}_{id(object()) % 100000}"
    await _admin_execute(postgres, f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield postgres.database_url(name)
    await _admin_execute(postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database: the test runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def db_url_on_both_for(*tests: str) -> Any:
    """A module's own `db_url`: only the named tests (what depends on the database) also run on
    PostgreSQL; the module's other tests run on SQLite."""

    @pytest.fixture(params=["sqlite", "postgresql"])
    def db_url(request: pytest.FixtureRequest) -> str:
        if request.param == "postgresql" and request.node.originalname not in tests:
            pytest.skip("database-independent; what depends on the database runs on PostgreSQL too")
        return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))

    return db_url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def make_settings(tmp_path: Path, speech_cache: Path) -> Callable[..., Settings]:
    def build(database_url: str, **overrides: object) -> Settings:
        base: dict[str, object] = {
            "data_dir": str(tmp_path / "var"),
            "database": {"url": database_url, "connect_timeout_seconds": 60.0},
            "http": {"cookie_secure": False},
            # a loaded test machine must not send a test's caller on unidentified
            "telephony": {"agi_enabled": False, "agi_lookup_timeout_seconds": 30.0},
            "audio": {"cache_dir": str(speech_cache), "engines": ["espeak"]},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}  # type: ignore[dict-item]
            else:
                base[key] = value
        return Settings(**base)  # type: ignore[arg-type]

    return build


@pytest.fixture(scope="session")
def speech_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One speech cache per worker, as an installation keeps one: a phrase is spoken by espeak-ng once,
    then read back (tests of the cache itself give their own directory)."""
    return tmp_path_factory.mktemp("speech-cache")


@pytest.fixture
def settings(db_url: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(db_url)


@pytest.fixture
async def client(aiohttp_client: Callable[..., object], settings: Settings) -> TestClient:
    return await aiohttp_client(create_app(settings))  # type: ignore[operator,no-any-return]


@dataclass
class Staff:
    """Users of every role with bearer tokens: `staff.headers("agent")`."""

    tokens: dict[str, str]
    ids: dict[str, int]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


STAFF = {
    "admin": (["admin"], None),
    "supervisor": (["supervisor", "agent"], "1009"),
    "agent": (["agent"], "1001"),
    "agent2": (["agent"], "1002"),
    "reception": (["reception"], None),
    "doctor": (["doctor"], None),
}


@pytest.fixture
async def staff(client: TestClient) -> Staff:
    db = client.app[DB_KEY]  # type: ignore[index]
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    for name, (roles, ext) in STAFF.items():
        user = await auth_service.create_user(db, name, PASSWORD, roles, name.title(), ext)
        ids[name] = user.id
        tokens[name] = await auth_service.create_api_token(db, user.id, "tests")
    return Staff(tokens=tokens, ids=ids)


async def health_details(client: TestClient) -> dict[str, object]:
    """/healthz as an admin reads it (everyone else sees each check's ok, optional, state and kind only)."""
    db = client.app[DB_KEY]  # type: ignore[index]
    user = await auth_service.user_by_name(db, "health-admin") or await auth_service.create_user(
        db, "health-admin", PASSWORD, ["admin"])
    token = await auth_service.create_api_token(db, user.id, "health")
    response = await client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
    return await response.json()  # type: ignore[no-any-return]
