from collections.abc import Callable
from pathlib import Path

from aiohttp.test_utils import TestClient

from clinicall.app import create_app
from clinicall.keys import DB_KEY
from clinicall.settings import Settings
from telephony.models import Call
from tests.conftest import STAFF, Staff


async def test_recordings_are_served_to_who_may_see_the_call(aiohttp_client: Callable[..., object],
                                                             make_settings: Callable[..., Settings], sqlite_url: str,
                                                             tmp_path: Path) -> None:
    from clinicall.auth import service as auth

    folder = tmp_path / "monitor"
    folder.mkdir()
    client: TestClient = await aiohttp_client(create_app(make_settings(  # type: ignore[operator]
        sqlite_url, telephony={"recording_dir": str(folder), "record_calls": True})))
    db = client.app[DB_KEY]
    tokens, ids = {}, {}
    for name in ("agent", "agent2", "supervisor"):
        roles, ext = STAFF[name]
        user = await auth.create_user(db, name, "correct-horse-battery", roles, name, ext)
        ids[name], tokens[name] = user.id, await auth.create_api_token(db, user.id, "t")
    staff = Staff(tokens=tokens, ids=ids)
    async with db.transaction() as s:
        kept = Call(direction="outbound", state="ended", disposition="answered", agent_id=ids["agent"],
                    recording_path=str(folder / "clinicall-1.wav"))
        missing = Call(direction="outbound", state="ended", disposition="answered", agent_id=ids["agent"],
                       recording_path=str(folder / "clinicall-2.wav"))
        outside = Call(direction="outbound", state="ended", disposition="answered", agent_id=ids["agent"],
                       recording_path=str(tmp_path / "elsewhere.wav"))
        s.add_all([kept, missing, outside])
    (folder / "clinicall-1.wav").write_bytes(b"RIFF....WAVEfmt ")
    (tmp_path / "elsewhere.wav").write_bytes(b"RIFF")

    listed = await client.get(f"/api/calls/{kept.id}", headers=staff.headers("agent"))
    assert (await listed.json())["call"]["recording_url"] == f"/api/calls/{kept.id}/recording"
    played = await client.get(f"/api/calls/{kept.id}/recording", headers=staff.headers("agent"))
    assert played.status == 200 and played.content_type == "audio/wav"
    assert await played.read() == b"RIFF....WAVEfmt "
    assert (await client.get(f"/api/calls/{kept.id}/recording", headers=staff.headers("supervisor"))).status == 200
    assert (await client.get(f"/api/calls/{kept.id}/recording", headers=staff.headers("agent2"))).status == 403
    gone = await client.get(f"/api/calls/{missing.id}/recording", headers=staff.headers("agent"))
    assert gone.status == 404 and "share that folder" in (await gone.json())["detail"]
    assert (await client.get(f"/api/calls/{outside.id}/recording", headers=staff.headers("agent"))).status == 404
    assert (await client.get("/api/calls/1/recording")).status == 401
