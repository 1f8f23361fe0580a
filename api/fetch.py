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
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpcore
import httpx

log = logging.getLogger("winnow.api.fetch")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressCheck = Callable[[IPAddress], bool]

MAX_URL_LENGTH = 4096
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Types a server may use for image bytes; the decoder checks the bytes themselves later.
_IMAGE_LIKE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
# A hostname after IDNA encoding: no percent-escapes, spaces or other getaddrinfo surprises.
_HOSTNAME = re.compile(r"^[a-z0-9_.-]+$")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_REFUSED = "the host does not resolve to a public address"
_HEADERS = {"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "winnow-url-fetch"}


class UrlFetchError(Exception):
    """Why an image URL could not be fetched, with the HTTP status winnow should answer.

    - 400: the URL is malformed or refused (scheme, credentials, host, non-public address,
      also for a redirect target) or its host does not resolve.
    - 413: the body is larger than ``max_bytes``.
    - 422: the server answered, but not with usable image bytes (HTTP error status, non-image
      content type, compressed body, too many redirects, redirect without ``Location``).
    - 502: the server could not be reached or spoke broken HTTP/TLS.
    - 504: the overall deadline passed (connect, TLS, headers and body together).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


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


def _allow_any(_address: IPAddress) -> bool:
    return True


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
    is_allowed = _allow_any if allow_private else (is_allowed_address or is_public_address)
    deadline = _Deadline(timeout)
    transport = _PinnedTransport(
        _GuardedBackend(deadline, is_allowed), ssl_context or _default_ssl_context()
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
    if not _is_ip_literal(host) and not _HOSTNAME.match(host):
        raise UrlFetchError("URL host is not a valid hostname")
    port = url.port or (443 if url.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise UrlFetchError("URL port is out of range")
    return _Target(url=url, host=host, port=port)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(target: _Target, is_allowed: AddressCheck) -> list[IPAddress]:
    """Every address of the host, refused unless all of them pass ``is_allowed``."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        log.info("refusing %s: cannot resolve (%s)", target.host, exc)
        raise UrlFetchError(f"refusing to fetch {target.host}: {_REFUSED}") from exc
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
        raise UrlFetchError(f"refusing to fetch {target.host}: {_REFUSED}")
    return addresses


def _check_peer(stream: Any, is_allowed: AddressCheck) -> None:
    """Refuse a connection whose actual peer fails the address check."""
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        raise UrlFetchError("could not verify the address connected to", 502)
    address = ipaddress.ip_address(str(peer[0]))
    if not is_allowed(address):
        log.warning("refusing connection: peer %s is not allowed", address)
        raise UrlFetchError(f"refusing to fetch: {_REFUSED}")


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
                _check_peer(response.extensions.get("network_stream"), is_allowed)
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


class _Deadline:
    """One wall-clock budget that caps every socket operation's own timeout."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def clip(self, timeout: float | None) -> float:
        remaining = self._end - time.monotonic()
        if remaining <= 0:
            raise httpcore.TimeoutException("overall deadline exceeded")
        return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clip(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clip(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._deadline.clip(timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """TCP only, under the deadline, and never to a peer that fails the address check."""

    def __init__(self, deadline: _Deadline, is_allowed: AddressCheck) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._is_allowed = is_allowed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if not _is_ip_literal(host):
            raise UrlFetchError("refusing to connect to an unpinned hostname", 502)
        stream = self._inner.connect_tcp(
            host, port, self._deadline.clip(timeout), local_address, socket_options
        )
        try:
            _check_peer(stream, self._is_allowed)
        except BaseException:
            stream.close()
            raise
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise UrlFetchError("refusing to connect to a unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _PinnedTransport(httpx.BaseTransport):
    """httpx transport over an httpcore pool that uses the guarded backend (no proxies)."""

    def __init__(self, backend: _GuardedBackend, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=backend, retries=0
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        core_response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(cast(Iterable[bytes], core_response.stream)),  # sync pool
            extensions=core_response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
