"""The API contract: /api/openapi.json describes every route, and schemathesis drives every operation
of the real app (over real TCP) with every role's credentials, a display token and no credentials:
no 5xx, and every response conforms to the description (status, content type, body schema).
Valid and invalid examples (schemathesis' positive and negative modes) per operation:
CLINICALL_FUZZ_EXAMPLES (2 in the suite; `make fuzz` runs many more)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.openapi import build_spec, documented_routes
from clinicall.settings import Settings
from tests.conftest import PASSWORD, STAFF

EXAMPLES = int(os.environ.get("CLINICALL_FUZZ_EXAMPLES", "2"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


async def test_every_route_is_described(client: TestClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.1")
    assert {"cookieAuth", "bearerAuth", "displayToken"} <= set(spec["components"]["securitySchemes"])
    missing = []
    for method, path, _route, _params in documented_routes(client.app):
        operation = spec["paths"].get(path, {}).get(method.lower())
        if operation is None:
            missing.append(f"{method} {path}")
            continue
        problem = operation["responses"]["422"]["content"]["application/problem+json"]["schema"]
        assert problem == {"$ref": "#/components/schemas/Problem"}
    assert not missing, f"routes missing from /api/openapi.json: {missing}"
    problem_schema = spec["components"]["schemas"]["Problem"]
    assert "code" in problem_schema["required"]
    for name, route in ((r.method, r.resource.canonical) for r in client.app.router.routes() if r.resource):
        if name not in ("HEAD", "OPTIONS") and not route.startswith("/static/"):
            assert any(path == route or path.startswith(route) for path in spec["paths"]), route
    patients = spec["paths"]["/api/patients"]["post"]
    assert patients["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PatientIn"}
    assert patients["x-roles"] == ["agent", "supervisor"]
    page = await client.get("/api/docs")
    assert page.status == 200 and "/api/openapi.json" in await page.text()


class LiveApp:
    """The real app on a real port, in its own thread and event loop (schemathesis calls it synchronously)."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app)
        self.url = ""
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def start(self) -> None:
        self.thread.start()
        self.run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.run(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


async def credentials(app: web.Application) -> dict[str, dict[str, str]]:
    db = app[DB_KEY]
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for name, (roles, ext) in STAFF.items():
        user = await auth_service.create_user(db, name, PASSWORD, roles, name.title(), ext)
        headers[name] = {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 'contract')}"}
    _, display = await auth_service.create_display_token(db, "contract screen")
    headers["display"] = {"Authorization": f"Bearer {display}"}
    return headers


@pytest.fixture
def live(sqlite_url: str, make_settings: Callable[..., Settings]) -> Iterator[tuple[LiveApp, dict[str, dict[str, str]]]]:
    server = LiveApp(make_settings(sqlite_url))
    server.start()
    try:
        yield server, server.run(credentials(server.app))
    finally:
        server.stop()


SHARDS = 3  # the operations are split so that the workers share them


@pytest.mark.timeout(900 if EXAMPLES <= 5 else 7200)
@pytest.mark.parametrize("shard", range(SHARDS))
def test_schemathesis_every_operation_every_role(live: tuple[LiveApp, dict[str, dict[str, str]]], shard: int) -> None:
    server, who = live
    spec = server.run(_spec(server.app))
    schema = schemathesis.openapi.from_dict(spec)
    session = requests.Session()
    failures: list[str] = []
    operations = list(schema.get_all_operations())
    assert len(operations) >= 80
    for result in operations[shard::SHARDS]:
        operation = result.ok()
        exercise(operation, server.url, callers(operation.definition.raw, who), session, failures)()
    assert not failures, "\n".join(failures[:40])


def callers(operation: dict[str, Any], who: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Every role the operation admits, no credentials, one role it refuses, and the display token where a
    display may call: the refusal happens before the handler, so the other refused roles add nothing."""
    roles = operation.get("x-roles")
    if not roles or "any user" in roles:
        return who
    admitted = [name for name, (own, _) in STAFF.items() if "admin" in own or set(own) & set(roles)]
    refused = [name for name in STAFF if name not in admitted][:1]
    display = ["display"] if operation.get("x-access") == "display" else []
    return {name: who[name] for name in ["anonymous", *admitted, *refused, *display]}


def exercise(operation: Any, url: str, who: dict[str, dict[str, str]], session: requests.Session,
             failures: list[str]) -> Callable[[], None]:
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)))
    def run(case: schemathesis.Case) -> None:
        for name, headers in who.items():
            session.cookies.clear()
            response = case.call(base_url=url, session=session, headers=headers, timeout=60, allow_redirects=False)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # one line per failing role and operation; the run goes on
                failures.append(f"{operation.label} as {name}: {type(exc).__name__}: {str(exc)[:600]}")
                return

    return run


async def _spec(app: web.Application) -> dict[str, Any]:
    return build_spec(app)
