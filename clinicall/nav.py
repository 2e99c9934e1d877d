"""Links to each room's pages, shown on the home page to the roles that may open them."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class NavLink:
    path: str
    label_vi: str
    label_en: str
    roles: tuple[str, ...]
    label_zh: str = ""

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "label_vi": self.label_vi, "label_en": self.label_en,
                "label_zh": self.label_zh or self.label_en}


NAV_KEY = web.AppKey("nav", list[NavLink])
