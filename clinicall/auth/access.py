"""Who may reach a handler. Every route needs a logged-in user unless it is marked otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from clinicall.auth.service import Principal
from clinicall.problem import Problem

H = TypeVar("H", bound=Callable[..., Any])
ACCESS_ATTR = "__clinicall_access__"
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def public(handler: H) -> H:
    """No login needed (kiosk, health, login page)."""
    setattr(handler, ACCESS_ATTR, "public")
    return handler


def display_feed(handler: H) -> H:
    """A read-only display token or a logged-in user."""
    setattr(handler, ACCESS_ATTR, "display")
    return handler


def scrape(handler: H) -> H:
    """The metrics scraper's bearer token (auth.metrics_token) or a logged-in user."""
    setattr(handler, ACCESS_ATTR, "scrape")
    return handler


def access_of(handler: Any) -> str:
    return getattr(handler, ACCESS_ATTR, "user")


def principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL_KEY)


def require(request: web.Request, *roles: str) -> Principal:
    """The current user, who must hold one of `roles` (admin always passes); none given: any user."""
    who = principal(request)
    if who is None or not who.is_user:
        raise Problem(401, "Login required", "Log in to use this page or API.")
    if roles and not who.has_any(*roles):
        raise Problem(403, "Not allowed", f"This needs the role {' or '.join(roles)}; ask an admin if you need it.",
                      code="role_required", roles=list(roles))
    return who
