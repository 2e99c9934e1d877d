from aiohttp.test_utils import TestClient

from tests.conftest import PASSWORD, Staff, db_url_on_both_for

db_url = db_url_on_both_for("test_healthz_reports_database_and_bus")


async def test_healthz_reports_database_and_bus(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["bus"]["kind"] == "in-process"


async def test_api_needs_login(client: TestClient) -> None:
    response = await client.get("/api/me")
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    assert "Log in" in (await response.json())["detail"]


async def test_pages_redirect_to_login(client: TestClient) -> None:
    response = await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].startswith("/login?next=")


async def test_login_cookie_and_logout(client: TestClient, staff: Staff) -> None:
    response = await client.post("/api/login", json={"username": "agent", "password": PASSWORD})
    assert response.status == 200
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = await (await client.get("/api/me")).json()
    assert me["username"] == "agent" and me["extension"] == "1001"
    await client.post("/logout", allow_redirects=False)
    assert (await client.get("/api/me")).status == 401


async def test_login_form(client: TestClient, staff: Staff) -> None:
    response = await client.post("/login", data={"username": "admin", "password": PASSWORD, "next": "/"},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
    own = {"Origin": str(client.make_url("/").origin())}
    bad = await client.post("/login", data={"username": "admin", "password": "nope", "next": "//evil"},
                            headers=own, allow_redirects=False)
    assert bad.status == 303 and bad.headers["Location"].startswith("/login?error=1")


async def test_wrong_password_is_a_clear_401(client: TestClient, staff: Staff) -> None:
    response = await client.post("/api/login", json={"username": "agent", "password": "wrong-password"})
    assert response.status == 401
    assert "wrong" in (await response.json())["detail"]


async def test_cross_site_write_refused(client: TestClient, staff: Staff) -> None:
    await client.post("/api/login", json={"username": "admin", "password": PASSWORD})
    response = await client.post("/api/users", json={"username": "x1", "password": "x" * 12, "roles": ["agent"]},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403


async def test_roles_enforced(client: TestClient, staff: Staff) -> None:
    body = {"username": "newbie", "password": "long-enough-pw", "roles": ["agent"]}
    assert (await client.post("/api/users", json=body, headers=staff.headers("agent"))).status == 403
    created = await client.post("/api/users", json=body, headers=staff.headers("admin"))
    assert created.status == 201
    assert (await client.post("/api/users", json=body, headers=staff.headers("admin"))).status == 409


async def test_malformed_bodies_get_problem_json(client: TestClient, staff: Staff) -> None:
    h = staff.headers("admin")
    for data, ctype in [(b"{not json", "application/json"), (b"\xff\xfe", "application/json"),
                        (b"[]", "application/json"), (b"a=b", "application/x-www-form-urlencoded"),
                        (b'{"username": 5, "roles": "x"}', "application/json")]:
        response = await client.post("/api/users", data=data, headers={**h, "Content-Type": ctype})
        assert 400 <= response.status < 500, data
        assert response.content_type == "application/problem+json"
        assert (await response.json())["detail"]


async def test_unknown_path_and_bad_id(client: TestClient, staff: Staff) -> None:
    response = await client.get("/api/nothing-here", headers=staff.headers("admin"))
    assert response.status == 404 and response.content_type == "application/problem+json"
    response = await client.patch("/api/users/abc", json={}, headers=staff.headers("admin"))
    assert response.status == 404


async def test_display_token_reads_only_the_feed(client: TestClient, staff: Staff) -> None:
    created = await client.post("/api/display-tokens", json={"name": "TV hall"}, headers=staff.headers("admin"))
    token = (await created.json())["token"]
    response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 403


async def test_metrics_for_admins(client: TestClient, staff: Staff) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics", headers=staff.headers("admin"))
    assert response.status == 200
    assert "clinicall_http_requests_total" in await response.text()
    assert (await client.get("/metrics", headers=staff.headers("agent"))).status == 403


async def test_bad_display_token_is_explained(client: TestClient) -> None:
    page = await client.get("/tv?token=nope", headers={"Accept": "text/html"}, allow_redirects=False)
    assert page.status == 401
    assert "display token" in await page.text()
    feed = await client.get("/api/display/snapshot?token=nope")
    assert feed.status == 401 and feed.content_type == "application/problem+json"
