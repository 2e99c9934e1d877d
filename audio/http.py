"""GET /audio/clips/{name}.wav: rendered announcements, for TV pages and speaker clients."""

from __future__ import annotations

from aiohttp import web

from audio.announcement import clip_path
from audio.service import clips_dir
from clinicall.auth.access import display_feed
from clinicall.keys import SETTINGS_KEY
from clinicall.problem import Problem

routes = web.RouteTableDef()


@routes.get("/audio/clips/{name}.wav")
@display_feed
async def get_clip(request: web.Request) -> web.StreamResponse:
    path = clip_path(clips_dir(request.app[SETTINGS_KEY].audio), request.match_info["name"])
    if path is None:
        raise Problem(404, "No such clip", "Clip names are the 64 hexadecimal characters given in announcement.ready.")
    if not path.is_file():
        raise Problem(404, "No such clip", "This announcement clip does not exist (any more); call the ticket again.")
    return web.FileResponse(path, headers={
        "Content-Type": "audio/wav",
        "Cache-Control": "public, max-age=31536000, immutable",
    })
