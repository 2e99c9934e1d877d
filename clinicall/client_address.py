"""The client's address: the peer, or, when the peer is a trusted proxy (http.trusted_proxies),
the nearest untrusted address in X-Forwarded-For (read from the right, so a client cannot forge it)."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from clinicall.keys import SETTINGS_KEY

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: str, networks: list[Network]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in networks)


def forwarded_client(peer: str, forwarded_for: str, networks: list[Network]) -> str:
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if _parse(hop) is None:
            return peer  # a malformed hop: trust nothing the proxy passed on
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_address(request: web.Request) -> str:
    networks = request.app[SETTINGS_KEY].http.trusted_proxy_networks()
    return forwarded_client(request.remote or "?", request.headers.get("X-Forwarded-For", ""), networks)
