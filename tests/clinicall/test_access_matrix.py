"""The authorisation matrix: every route of the app (read from its router) x every role, a display
token and an anonymous visitor (the kiosk). A route missing from MATRIX fails the test, so a new route
needs its row here. Letters: A admin, S supervisor, G agent, R reception, D doctor, T display token,
K anonymous (kiosk, patient's own pages); "*" is everyone. Whoever is listed passes the access check
(any status but 401/403 and never 5xx); whoever is not gets 401 (anonymous) or 403."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.auth import service as auth_service
from clinicall.keys import DB_KEY
from clinicall.openapi import documented_routes
from clinicall.settings import Settings
from tests.conftest import PASSWORD

USERS = {"A": ["admin"], "S": ["supervisor"], "G": ["agent"], "R": ["reception"], "D": ["doctor"], "F": ["referrer"],
         "P": ["patient"]}
SCREENS = "ASGRDT"  # the waiting-room screens (numbers, masked names): staff and screens, not referrers or patients
STAFF = "ASGRD"
USER = STAFF + "FP"  # any logged-in user: F referrer (a doctor outside the clinic), P a patient's own account
MATRIX: dict[tuple[str, str], str] = {
    ("GET", "/"): USER, ("GET", "/admin"): USER, ("GET", "/admin/{section}"): "A", ("GET", "/agent"): "ASG",
    ("GET", "/reception"): "AR", ("GET", "/room"): "ARD", ("GET", "/tv"): SCREENS, ("GET", "/door"): SCREENS,
    ("GET", "/kiosk"): "*", ("GET", "/kiosk/services"): "*", ("GET", "/login"): "*", ("POST", "/login"): "*",
    ("POST", "/logout"): "*", ("GET", "/healthz"): "*", ("GET", "/livez"): "*", ("GET", "/readyz"): "*", ("GET", "/metrics"): "A",
    ("GET", "/t/{token}"): "*", ("GET", "/t/{token}/qr.svg"): "*", ("GET", "/api/t/{token}"): "*",
    ("GET", "/api/openapi.json"): "*", ("GET", "/api/docs"): "*",
    ("GET", "/static/admin/{filename}"): "*", ("GET", "/static/clinicall/{filename}"): "*",
    ("GET", "/static/crm_bridge/{filename}"): "*", ("GET", "/static/queue_display/{filename}"): "*",
    ("GET", "/static/reception/reception.js"): "*", ("GET", "/static/reception/slip.js"): "*",
    ("GET", "/reception/tickets/{id}/slip"): "AR",
    ("GET", "/ws/agent"): "ASG", ("GET", "/ws/display"): SCREENS, ("GET", "/audio/clips/{name}.wav"): SCREENS,
    ("GET", "/api/display/snapshot"): SCREENS,
    # auth
    ("POST", "/api/login"): "*", ("GET", "/api/me"): USER, ("GET", "/api/users"): "AS", ("POST", "/api/users"): "A",
    ("PATCH", "/api/users/{user_id}"): "A", ("POST", "/api/users/{user_id}/tokens"): "A",  # another user's id
    ("GET", "/api/display-tokens"): "A", ("POST", "/api/display-tokens"): "A",
    ("DELETE", "/api/display-tokens/{token_id}"): "A",
    # crm_bridge
    ("GET", "/api/patients"): "ASG", ("POST", "/api/patients"): "ASG", ("GET", "/api/patients/{id}"): STAFF,
    ("PATCH", "/api/patients/{id}"): "ASG", ("POST", "/api/patients/{id}/phones"): "ASG",
    ("DELETE", "/api/patients/{id}/phones/{phone_id}"): "ASG", ("POST", "/api/patients/{id}/notes"): "ASG",
    ("GET", "/api/patients/{id}/notes"): "ASG", ("POST", "/api/patients/{id}/assign"): "ASG",
    ("POST", "/api/patients/{id}/transfer-requests"): "ASG", ("POST", "/api/patients/{id}/follow-ups"): "ASG",
    ("GET", "/api/customer-statuses"): STAFF, ("POST", "/api/customer-statuses"): "A",
    ("PATCH", "/api/customer-statuses/{id}"): "A", ("GET", "/api/worklists"): "ASG",
    ("GET", "/api/worklists/{kind}"): "ASG", ("GET", "/api/transfers"): "ASG",
    ("POST", "/api/transfers/{id}/{decision}"): "AS", ("PATCH", "/api/follow-ups/{id}"): "ASG",
    ("GET", "/api/follow-ups"): "ASG", ("GET", "/api/arrivals"): STAFF, ("GET", "/api/duplicates"): "AS",
    ("POST", "/api/merges"): "AS", ("GET", "/api/templates"): "ASG", ("POST", "/api/templates"): "AS",
    ("PATCH", "/api/templates/{id}"): "AS", ("DELETE", "/api/templates/{id}"): "AS",
    ("GET", "/api/templates/{id}/render"): "ASG", ("POST", "/api/imports/patients"): "AS", ("GET", "/api/audit"): "A",
    ("GET", "/api/agents"): "ASG", ("GET", "/care"): USER,
    ("GET", "/care/{section}"): USER,  # a section name that is no care list: 404 for every logged-in user
    # crm_bridge: the care loop (referrers and patients get 404 for what is not theirs)
    ("GET", "/referrer"): "AF", ("GET", "/treatment"): "ASGD", ("GET", "/me"): "*",
    ("GET", "/api/patients/{id}/care"): "ASGD", ("POST", "/api/patients/{id}/treatment"): "ASGD",
    ("PATCH", "/api/treatment/{id}"): "ASGD", ("POST", "/api/patients/{id}/files"): "ASGD",
    ("PATCH", "/api/files/{id}"): "ASGD", ("GET", "/api/files/{id}"): USER, ("POST", "/api/referrals"): "AF",
    ("GET", "/api/referrals"): "ASF", ("GET", "/api/referrals/{id}"): "ASF", ("POST", "/api/patient/login"): "*",
    ("POST", "/api/patient/password"): "AP", ("GET", "/api/patient/me"): "AP", ("GET", "/api/patient-accounts"): "A",
    ("POST", "/api/patient-accounts/{id}/reset"): "A", ("PATCH", "/api/patient-accounts/{id}"): "A",
    ("GET", "/api/stats/referrals"): "AS",
    ("POST", "/api/referrer-invites"): "A", ("POST", "/api/referrer-invites/accept"): "*", ("GET", "/referrer/join"): "*",
    # telephony
    ("POST", "/api/calls"): "AG", ("GET", "/api/calls"): "ASG", ("GET", "/api/calls/{id}"): "ASG",
    ("GET", "/api/calls/{id}/recording"): "ASG", ("POST", "/api/calls/{id}/hangup"): "ASG",
    ("POST", "/api/calls/{id}/outcome"): "ASG", ("POST", "/api/calls/{id}/patient"): "ASG", ("POST", "/api/demo/inbound"): "AG",
    ("GET", "/api/callers/identify"): "ASG", ("GET", "/api/stats/calls"): "AS",
    # queue_display
    ("GET", "/api/services"): USER, ("POST", "/api/services"): "A", ("PATCH", "/api/services/{id}"): "A",
    ("GET", "/api/rooms"): USER, ("POST", "/api/rooms"): "A", ("PATCH", "/api/rooms/{id}"): "ARD", ("DELETE", "/api/rooms/{id}"): "A",
    ("POST", "/api/tickets"): "AR", ("POST", "/api/kiosk/tickets"): "*", ("POST", "/api/checkins"): "AR",
    ("GET", "/api/tickets"): "ASRD", ("GET", "/api/tickets/{id}"): "ASRD", ("POST", "/api/tickets/{id}/slip"): "AR", ("GET", "/api/queue"): "ASRD",
    ("POST", "/api/rooms/{id}/call-next"): "ARD", ("POST", "/api/tickets/{id}/call"): "ARD",
    ("POST", "/api/tickets/{id}/{operation}"): "ARD", ("POST", "/api/tickets/{id}/transfer"): "ARD",
    ("GET", "/api/stats/queue"): "AS", ("GET", "/api/stats/bookings"): "AS", ("GET", "/api/patient-tickets"): STAFF,
    # messaging
    ("POST", "/api/patients/{id}/messages"): "ASG", ("GET", "/api/patients/{id}/messages"): "ASG",
    ("GET", "/api/messages"): "AS", ("GET", "/api/messaging/gateway"): "AS", ("POST", "/api/turn-near"): "AR",
    ("POST", "/api/t/{token}/turn-near"): "*", ("GET", "/ws/messages"): "ASG", ("GET", "/messages"): "AS",
    ("GET", "/static/messaging/{filename}"): "*", ("POST", "/api/messaging/receipts"): "*",
    ("GET", "/api/turn-near/channel"): "*",
    # reminders
    ("GET", "/reminders"): "AS", ("GET", "/static/reminders/{filename}"): "*",
    ("GET", "/api/reminders/campaigns"): "AS", ("POST", "/api/reminders/campaigns"): "AS",
    ("GET", "/api/reminders/campaigns/{campaign_id}"): "AS", ("POST", "/api/reminders/campaigns/{campaign_id}/state"): "AS",
}
PATH_VALUES = {"id": "999999", "user_id": "999999", "token_id": "999999", "phone_id": "999999", "section": "users",
               "kind": "new", "decision": "approve", "operation": "recall", "token": "x" * 22, "name": "0" * 64,
               "filename": "nope.css", "campaign_id": "999999"}


def concrete(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: PATH_VALUES[m.group(1)], path)


@pytest.fixture
async def matrix_client(aiohttp_client: Callable[..., object], sqlite_url: str,
                        make_settings: Callable[..., Settings]) -> tuple[TestClient, dict[str, dict[str, str]]]:
    client: TestClient = await aiohttp_client(create_app(make_settings(sqlite_url)))  # type: ignore[operator]
    db = client.app[DB_KEY]
    who: dict[str, dict[str, str]] = {"K": {}}
    for letter, roles in USERS.items():
        user = await auth_service.create_user(db, f"matrix{letter.lower()}", PASSWORD, roles)
        who[letter] = {"Authorization": f"Bearer {await auth_service.create_api_token(db, user.id, 'matrix')}"}
    _, display = await auth_service.create_display_token(db, "matrix screen")
    who["T"] = {"Authorization": f"Bearer {display}"}
    return client, who


def test_every_route_has_a_row() -> None:
    app = create_app(Settings())
    routes = {(method, path) for method, path, _route, _params in documented_routes(app)}
    assert routes - set(MATRIX) == set(), "add these routes to MATRIX with who may call them"
    assert set(MATRIX) - routes == set(), "these MATRIX rows have no route any more"


async def test_access_matrix(matrix_client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, who = matrix_client
    wrong = []
    for (method, path), allowed in sorted(MATRIX.items()):
        url = concrete(path)
        for letter, headers in who.items():
            body = {"json": {}} if method in ("POST", "PATCH", "PUT") else {}
            response = await client.request(method, url, headers={**headers, "Accept": "application/json"},
                                            allow_redirects=False, **body)
            status = response.status
            await response.read()
            if allowed == "*" or letter in allowed:
                ok = status not in (401, 403) and status < 500
            else:
                ok = status == (401 if letter == "K" else 403)
            if not ok:
                wrong.append(f"{method} {path} as {letter}: {status} (allowed: {allowed})")
    assert not wrong, "\n".join(wrong)
