"""Fetch an image URL for a client without letting it reach our own network (SSRF protection).

Every hop (the URL and each redirect) is checked, then pinned: the host is resolved once, every
address it resolves to must pass the address check, and the connection goes to that exact IP,
with the original ``Host`` header and TLS SNI/certificate check on the real hostname. A DNS answer
that changes between check and connect (DNS rebinding) therefore cannot redirect us. The connected
peer is checked again at connect time and once the response arrives, as defence in depth.

Every socket operation is bounded by one overall deadline, so a server that drips bytes (in the
headers or in the body) cannot hold a worker longer than ``timeout``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
import ssl
from dataclasses import dataclass

import httpcore
import httpx

from api.fetch.addresses import (
    REFUSED,
    AddressCheck,
    IPAddress,
    allow_any,
    check_peer,
    is_ip_literal,
    is_public_address,
)
from api.fetch.errors import UrlFetchError
from api.fetch.transport import Deadline, GuardedBackend, PinnedTransport

log = logging.getLogger("winnow.api.fetch")

MAX_URL_LENGTH = 4096
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Types a server may use for image bytes; the decoder checks the bytes themselves later.
_IMAGE_LIKE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
# A hostname after IDNA encoding: no percent-escapes, spaces or other getaddrinfo surprises.
_HOSTNAME = re.compile(r"^[a-z0-9_.-]+$")
_HEADERS = {"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "winnow-url-fetch"}


def fetch_url(
    url: str,
    *,
    timeout: float = 10.0,
    max_bytes: int = 20 * 1024 * 1024,
    allow_private: bool = False,
    max_redirects: int = 3,
    is_allowed_address: AddressCheck | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """Download ``url`` (http/https only) and return its body; raise ``UrlFetchError`` otherwise.

    Args:
        url: absolute http(s) URL without credentials.
        timeout: overall deadline in seconds for all hops (connect, TLS, headers, body).
        max_bytes: largest body accepted; bigger ones are refused (413) without reading further.
        allow_private: skip the address check (tests, air-gapped internal deployments); schemes,
            size cap, redirect limit and deadline still apply.
        max_redirects: redirects followed at most; each target is validated like the URL.
        is_allowed_address: address check to use instead of ``is_public_address`` (ignored when
            ``allow_private`` is true).
        ssl_context: TLS context, e.g. one trusting an internal CA; the system default otherwise.
    """
    if timeout <= 0 or max_bytes < 0 or max_redirects < 0:
        raise ValueError("timeout must be > 0, max_bytes and max_redirects >= 0")
    is_allowed = allow_any if allow_private else (is_allowed_address or is_public_address)
    deadline = Deadline(timeout)
    transport = PinnedTransport(
        GuardedBackend(deadline, is_allowed), ssl_context or _default_ssl_context()
    )
    try:
        with httpx.Client(
            transport=transport, trust_env=False, timeout=timeout, headers=_HEADERS
        ) as client:
            target = _parse_target(url)
            for _hop in range(max_redirects + 1):
                result = _fetch_hop(client, target, is_allowed, max_bytes)
                if isinstance(result, bytes):
                    return result
                target = result
            raise UrlFetchError(f"more than {max_redirects} redirects", 422)
    except httpx.InvalidURL as exc:  # e.g. a scoped IPv6 address that cannot be put in a URL
        raise UrlFetchError("malformed URL") from exc
    except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
        raise UrlFetchError(f"fetching the URL took longer than {timeout:g} s", 504) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpx.TransportError) as exc:
        raise UrlFetchError(
            "could not fetch the URL: the server is unreachable or broken", 502
        ) from exc


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~0.1 s; a context is safe to share between threads.
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class _Target:
    url: httpx.URL  # as the caller wrote it: gives Host, SNI and the base for redirects
    host: str  # ASCII (IDNA) host, IPv6 without brackets
    port: int


def _parse_target(raw: str) -> _Target:
    if len(raw) > MAX_URL_LENGTH:
        raise UrlFetchError(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        url = httpx.URL(raw)
        host = url.raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, UnicodeError, TypeError) as exc:
        raise UrlFetchError("malformed URL") from exc
    if url.scheme not in ("http", "https"):
        raise UrlFetchError("only http and https URLs can be fetched")
    if url.userinfo:
        raise UrlFetchError("URLs with credentials (user:password@) are not allowed")
    if not host:
        raise UrlFetchError("URL has no host")
    if not is_ip_literal(host) and not _HOSTNAME.match(host):
        raise UrlFetchError("URL host is not a valid hostname")
    port = url.port or (443 if url.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise UrlFetchError("URL port is out of range")
    return _Target(url=url, host=host, port=port)


def _resolve(target: _Target, is_allowed: AddressCheck) -> list[IPAddress]:
    """Every address of the host, refused unless all of them pass ``is_allowed``."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        log.info("refusing %s: cannot resolve (%s)", target.host, exc)
        raise UrlFetchError(f"refusing to fetch {target.host}: {REFUSED}") from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(str(sockaddr[0]))
            if address not in addresses:
                addresses.append(address)
    refused = [a for a in addresses if not is_allowed(a)]
    if refused or not addresses:
        # The addresses go to the log only: telling the client would map our network for it.
        log.warning("refusing %s: resolves to %s", target.host, refused or "nothing")
        raise UrlFetchError(f"refusing to fetch {target.host}: {REFUSED}")
    return addresses


def _fetch_hop(
    client: httpx.Client, target: _Target, is_allowed: AddressCheck, max_bytes: int
) -> bytes | _Target:
    """The body of one hop, or the validated target it redirects to."""
    addresses = _resolve(target, is_allowed)
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    for index, address in enumerate(addresses):
        pinned = httpx.URL(
            scheme=target.url.scheme,
            host=str(address),
            port=target.port,
            raw_path=target.url.raw_path,
        )
        headers = {"Host": target.url.netloc.decode("ascii")}
        try:
            with client.stream("GET", pinned, headers=headers, extensions=extensions) as response:
                check_peer(response.extensions.get("network_stream"), is_allowed)
                if response.status_code in _REDIRECT_STATUSES:
                    return _redirect_target(target, response)
                return _read_body(response, max_bytes)
        except (httpcore.ConnectError, httpx.ConnectError):
            if index == len(addresses) - 1:
                raise
    raise AssertionError("unreachable: _resolve returns at least one address")


def _redirect_target(current: _Target, response: httpx.Response) -> _Target:
    location = response.headers.get("location")
    if not location:
        raise UrlFetchError(f"the server answered {response.status_code} without Location", 422)
    try:
        joined = current.url.join(location)
    except httpx.InvalidURL as exc:
        raise UrlFetchError("the server redirected to a malformed URL") from exc
    return _parse_target(str(joined))


def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    if not response.is_success:
        raise UrlFetchError(f"the server answered HTTP {response.status_code}", 422)
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UrlFetchError(f"the server sent a {encoding!r}-encoded body, not plain bytes", 422)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not content_type.startswith(_IMAGE_LIKE_TYPES):
        raise UrlFetchError(f"the URL returned {content_type!r}, not an image", 422)
    too_large = UrlFetchError(f"the image is larger than {max_bytes} bytes", 413)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)
