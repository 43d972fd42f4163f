"""The client's address, honouring ``X-Forwarded-For`` only from the proxies in ``TRUSTED_PROXIES``.

Behind a reverse proxy every request arrives from the proxy's address, so a per-address limit
would treat all users as one. ``TRUSTED_PROXIES`` lists the proxies' addresses or networks
(``10.0.0.5``, ``172.18.0.0/16``). When the connection comes from one of them, the
``X-Forwarded-For`` list is read from the right (each proxy appends the address it received the
request from) and the first address that is not a trusted proxy is the client. Entries further
left were written by the client itself and are never believed; from any other peer the header
is ignored entirely. The sign-in lock-out, the anonymous API throttle and the audit log all use
this address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

UNKNOWN = "unknown"


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "1.2.3.4:5678"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def _trusted(address, networks) -> bool:
    return any(address in network for network in networks)


def client_address(request) -> str:
    """The address of the client that sent ``request`` (``"unknown"`` without one)."""
    if request is None:
        return UNKNOWN
    remote = request.META.get("REMOTE_ADDR") or ""
    peer = _parse(remote)
    if peer is None:
        return remote or UNKNOWN
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    if not networks or not _trusted(peer, networks):
        return str(peer)
    hop = peer
    for entry in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _parse(entry)
        if address is None:
            break  # garbage: the last proxy we trust is all we know
        hop = address
        if not _trusted(address, networks):
            break
    return str(hop)


def audit_address(request) -> str | None:
    """The client address for an audit entry (``None`` when it is not known)."""
    address = client_address(request)
    return None if address == UNKNOWN else address
