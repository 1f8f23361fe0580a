"""Which addresses a fetch may connect to: public unicast only, unless the caller says otherwise."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from api.fetch.errors import UrlFetchError

log = logging.getLogger("winnow.api.fetch")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressCheck = Callable[[IPAddress], bool]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
REFUSED = "the host does not resolve to a public address"


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses.

    Refuses loopback, private, link-local (cloud metadata 169.254.169.254), multicast, reserved,
    unspecified, CGNAT 100.64/10, IPv6 unique-local and site-local, and IPv6 forms embedding a
    non-public IPv4 (mapped, compatible, 6to4, Teredo, NAT64).
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id or address.is_site_local:
            return False
        if not all(is_public_address(v4) for v4 in _embedded_ipv4(address)):
            return False
    elif address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def allow_any(_address: IPAddress) -> bool:
    return True


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_peer(stream: Any, is_allowed: AddressCheck) -> None:
    """Refuse a connection whose actual peer fails the address check."""
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        raise UrlFetchError("could not verify the address connected to", 502)
    address = ipaddress.ip_address(str(peer[0]))
    if not is_allowed(address):
        log.warning("refusing connection: peer %s is not allowed", address)
        raise UrlFetchError(f"refusing to fetch: {REFUSED}")
