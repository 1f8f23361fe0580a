"""SSRF-safe URL fetching: public addresses only, pinned connections, size cap and deadline.

Everything runs on loopback. An autouse guard refuses (and records) every socket connection to a
non-loopback address, so even a broken fetcher never sends traffic off this machine; a canary
listener on loopback counts the connections that should never have happened.
"""

from __future__ import annotations

import gzip
import ipaddress
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from api.fetch import UrlFetchError, fetch_url, is_public_address

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
SECOND_LOOPBACK = ipaddress.ip_address("127.0.0.2")


def only_second_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Address check that treats 127.0.0.2 as the one 'public' host."""
    return address == SECOND_LOOPBACK


# --- fixtures: guard, canary, local HTTP servers, fake DNS -------------------------------------


@pytest.fixture(autouse=True)
def outside_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    attempts: list[Any] = []
    real_create_connection = socket.create_connection

    def guarded(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        try:
            loopback = ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            attempts.append(address)
            raise OSError(f"test guard: refusing to connect to {address}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    yield attempts
    assert attempts == [], f"tried to connect off loopback: {attempts}"


class Canary:
    """Listens on 127.0.0.1 (and ::1 on the same port when possible), counting connections."""

    def __init__(self, port: int = 0) -> None:
        self.v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.v4.bind(("127.0.0.1", port))
        self.v4.listen(16)
        self.port = self.v4.getsockname()[1]
        self.v6: socket.socket | None = None
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            v6.bind(("::1", self.port))
            v6.listen(16)
            self.v6 = v6
        except OSError:
            pass
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def _sockets(self) -> list[socket.socket]:
        return [s for s in (self.v4, self.v6) if s is not None]

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self._sockets, [], [], 0.05)
            for listener in ready:
                self._accept(listener)

    def _accept(self, listener: socket.socket) -> bool:
        try:
            conn, _ = listener.accept()
        except OSError:
            return False
        self.connections += 1
        conn.close()
        return True

    def stop_and_count(self) -> int:
        """Stop, then also count connections still waiting in the backlog."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5)
            for listener in self._sockets:
                listener.setblocking(False)
                while self._accept(listener):
                    pass
                listener.close()
        return self.connections


@pytest.fixture
def canary() -> Iterator[Canary]:
    trap = Canary()
    yield trap
    trap.stop_and_count()


class _Handler(BaseHTTPRequestHandler):
    server: _StatefulServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} Test"] + [f"{k}: {v}" for k, v in headers.items()]
        self.wfile.write(("\r\n".join([*lines, "Connection: close", "", ""])).encode())

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self._head(status, {**headers, "Content-Length": str(len(body))})
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        state = self.server.state
        state.requests.append((self.path, self.headers.get("Host")))
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route, _, arg = parts.path.strip("/").partition("/")
        png = {"Content-Type": "image/png"}
        try:
            if route == "image":
                self._send(200, png, IMAGE)
            elif route == "redirect":
                self._send(302, {"Location": query["to"]})
            elif route == "hops":
                hops = int(arg)
                self._send(302, {"Location": f"/hops/{hops - 1}"}) if hops else self._send(
                    200, png, IMAGE
                )
            elif route == "loop":
                self._send(302, {"Location": "/loop"})
            elif route == "no-location":
                self._send(302, {})
            elif route == "html":
                self._send(200, {"Content-Type": "text/html"}, b"<html>not an image</html>")
            elif route == "gzip":
                self._send(200, {**png, "Content-Encoding": "gzip"}, gzip.compress(IMAGE))
            elif route == "endless":
                self._endless(query)
            elif route == "drip-body":
                self._head(200, png)
                self._drip(b"x")
            elif route == "drip-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                self._drip(b"y")
            else:
                self._send(404, {"Content-Type": "text/plain"}, b"missing")
        except OSError:
            pass  # the client hung up, as it should for the endless and dripping routes

    def _endless(self, query: dict[str, str]) -> None:
        state = self.server.state
        chunked = "chunked" in query
        headers = {"Content-Type": "image/png"}
        if "declare" in query:
            headers["Content-Length"] = query["declare"]
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        self._head(200, headers)
        block = b"z" * 65536
        try:
            while not state.stop.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                state.sent += len(block)
        finally:
            state.endless_done.set()

    def _drip(self, byte: bytes) -> None:
        # Each byte comes well within any read timeout: only an overall deadline stops this.
        # It ends after 3 s, so a fetcher without one fails its test instead of hanging.
        give_up = time.monotonic() + 3
        while not self.server.state.stop.wait(0.02) and time.monotonic() < give_up:
            self.wfile.write(byte)
            self.wfile.flush()


class _StatefulServer(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalServer


class LocalServer:
    """A tiny HTTP(S) server on a loopback address, recording (path, Host) of each request."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.requests: list[tuple[str, str | None]] = []
        self.stop = threading.Event()
        self.endless_done = threading.Event()
        self.sent = 0
        self.httpd = _StatefulServer((host, 0), _Handler)
        self.httpd.state = self
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def second_server() -> Iterator[LocalServer]:
    """A server on 127.0.0.2, the address ``only_second_loopback`` lets through."""
    try:
        local = LocalServer("127.0.0.2")
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 on this machine")
    yield local
    local.close()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], list[str]]]:
    """Names resolved by the test (value: a function giving the current answer), else real."""
    records: dict[str, Callable[[], list[str]]] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in records:
            return real_getaddrinfo(host, port, *args, **kwargs)
        answer = []
        for ip in records[host]():
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if ":" in ip else (ip, port)
            answer.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return answer

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return records


def fetch_error(url: str, **kwargs: Any) -> UrlFetchError:
    with pytest.raises(UrlFetchError) as caught:
        fetch_url(url, **kwargs)
    return caught.value


# --- the address check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::7f00:1", "fe80::1", "fc00::1", "fd00::1",
        "fec0::1", "ff02::1", "2002:7f00:1::1", "2002:a00:1::1", "64:ff9b::a9fe:a9fe",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# --- refusals before any connection ------------------------------------------------------------

INTERNAL_TARGETS = [
    "http://127.0.0.1:{port}/",
    "https://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7f.1:{port}/",
    "http://017700000001:{port}/",
    "http://127.1:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::]:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1:{port}/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[2002:7f00:1::1]:{port}/",
    "http://224.0.0.1/",
]


@pytest.mark.parametrize("template", INTERNAL_TARGETS)
def test_internal_targets_are_refused_before_connecting(
    template: str, canary: Canary, outside_connections: list[Any]
) -> None:
    if "[::1]" in template and canary.v6 is None:
        pytest.skip("no IPv6 loopback")
    error = fetch_error(template.format(port=canary.port), timeout=2)
    assert error.status == 400
    if "127.0.0.1" not in template:  # the resolved address is not told to the client
        assert "127.0.0.1" not in error.message
    assert canary.stop_and_count() == 0
    assert outside_connections == []


def test_default_check_refuses_a_loopback_server(server: LocalServer) -> None:
    assert fetch_error(server.url("/image"), timeout=2).status == 400
    assert server.requests == []


def test_every_resolved_address_must_pass(
    canary: Canary, fake_dns: dict[str, Callable[[], list[str]]]
) -> None:
    fake_dns["mixed.test"] = lambda: ["127.0.0.2", "127.0.0.1"]
    error = fetch_error(
        f"http://mixed.test:{canary.port}/", timeout=2, is_allowed_address=only_second_loopback
    )
    assert error.status == 400
    assert canary.stop_and_count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "gopher://127.0.0.1:70/_stats",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "http:///path",
        "http://",
        "//127.0.0.1/x",
        "127.0.0.1/x",
        "",
        "http://user:pass@127.0.0.1/",
        "http://user@127.0.0.1/",
        "http://127.0.0.1:99999/",
        "http://%31%32%37.0.0.1/",
        "http://exa mple.com/",
        "http://" + "a" * 5000 + ".com/",
    ],
)
def test_bad_urls_are_refused_even_when_private_is_allowed(
    url: str, outside_connections: list[Any]
) -> None:
    error = fetch_error(url, timeout=2, allow_private=True)
    assert error.status == 400
    assert outside_connections == []


# --- pinning, redirects and the peer re-check --------------------------------------------------


def test_allow_private_fetches_local_server(server: LocalServer) -> None:
    assert fetch_url(server.url("/image"), timeout=5, allow_private=True) == IMAGE
    assert server.requests == [("/image", f"127.0.0.1:{server.port}")]


REDIRECT_TARGETS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_x",
]


@pytest.mark.parametrize("template", REDIRECT_TARGETS)
def test_redirect_to_internal_target_is_refused(
    template: str, second_server: LocalServer, canary: Canary
) -> None:
    if "[::1]" in template and canary.v6 is None:
        pytest.skip("no IPv6 loopback")
    target = template.format(port=canary.port)
    url = second_server.url("/redirect?to=" + quote(target, safe=""))
    error = fetch_error(url, timeout=2, is_allowed_address=only_second_loopback)
    assert error.status == 400
    assert len(second_server.requests) == 1  # the first hop was allowed and followed
    assert canary.stop_and_count() == 0


def test_redirect_within_allowed_host_is_followed(second_server: LocalServer) -> None:
    url = second_server.url("/redirect?to=/image")
    assert fetch_url(url, timeout=5, is_allowed_address=only_second_loopback) == IMAGE
    assert len(second_server.requests) == 2


def test_connection_is_pinned_to_the_checked_address(
    second_server: LocalServer, fake_dns: dict[str, Callable[[], list[str]]]
) -> None:
    """DNS rebinding: the name answers 127.0.0.2 for the check, then 127.0.0.1 (canary)."""
    try:
        trap = Canary(port=second_server.port)
    except OSError:
        pytest.skip("port taken on 127.0.0.1")
    lookups: list[str] = []

    def rebinding() -> list[str]:
        lookups.append("rebind.test")
        return ["127.0.0.2"] if len(lookups) == 1 else ["127.0.0.1"]

    fake_dns["rebind.test"] = rebinding
    url = f"http://rebind.test:{second_server.port}/image"
    try:
        assert fetch_url(url, timeout=5, is_allowed_address=only_second_loopback) == IMAGE
    finally:
        connections = trap.stop_and_count()
    assert connections == 0
    assert lookups == ["rebind.test"]
    assert second_server.requests == [("/image", f"rebind.test:{second_server.port}")]


def test_connected_peer_is_checked_again(server: LocalServer) -> None:
    checks: list[object] = []

    def first_check_only(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        checks.append(address)
        return len(checks) == 1

    error = fetch_error(server.url("/image"), timeout=2, is_allowed_address=first_check_only)
    assert error.status == 400
    assert len(checks) == 2
    assert server.requests == []  # refused at connect time, before the request was sent


def test_falls_back_to_next_address_when_connect_fails(
    server: LocalServer, fake_dns: dict[str, Callable[[], list[str]]]
) -> None:
    fake_dns["two.test"] = lambda: ["127.0.0.3", "127.0.0.1"]  # nothing listens on .3
    url = f"http://two.test:{server.port}/image"
    assert fetch_url(url, timeout=5, allow_private=True) == IMAGE


def test_redirect_limit(server: LocalServer) -> None:
    assert fetch_url(server.url("/hops/3"), timeout=5, allow_private=True) == IMAGE
    assert fetch_error(server.url("/hops/4"), timeout=5, allow_private=True).status == 422
    assert fetch_error(server.url("/hops/1"), allow_private=True, max_redirects=0).status == 422
    server.requests.clear()
    assert fetch_error(server.url("/loop"), timeout=5, allow_private=True).status == 422
    assert len(server.requests) == 4  # the URL plus three redirects, then it gives up


@pytest.mark.parametrize("path", ["/missing", "/html", "/gzip", "/no-location"])
def test_unusable_answers_are_422(server: LocalServer, path: str) -> None:
    assert fetch_error(server.url(path), timeout=5, allow_private=True).status == 422


# --- size cap and deadline ---------------------------------------------------------------------


def test_body_at_the_cap_passes_and_one_byte_more_fails(server: LocalServer) -> None:
    url = server.url("/image")
    assert fetch_url(url, allow_private=True, max_bytes=len(IMAGE)) == IMAGE
    assert fetch_error(url, allow_private=True, max_bytes=len(IMAGE) - 1).status == 413


@pytest.mark.parametrize("query", ["declare=10000000", "", "chunked=1"])
def test_oversized_body_is_refused_and_download_stops(server: LocalServer, query: str) -> None:
    """An endless body: without the cap this would run into the 5 s deadline (504)."""
    started = time.monotonic()
    error = fetch_error(
        server.url(f"/endless?{query}"), timeout=5, allow_private=True, max_bytes=100_000
    )
    assert error.status == 413
    assert time.monotonic() - started < 3
    assert server.endless_done.wait(timeout=5), "the server kept sending after the refusal"


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_slow_drip_hits_the_overall_deadline(server: LocalServer, path: str) -> None:
    started = time.monotonic()
    error = fetch_error(server.url(path), timeout=0.5, allow_private=True)
    elapsed = time.monotonic() - started
    assert error.status == 504
    assert 0.4 < elapsed < 1.5


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        fetch_url("http://127.0.0.1/", timeout=0)
    with pytest.raises(ValueError):
        fetch_url("http://127.0.0.1/", max_redirects=-1)


# --- TLS: the certificate is checked against the hostname, not the pinned IP ------------------


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=winnow.test",
         "-addext", "subjectAltName=DNS:winnow.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def test_https_verifies_the_real_hostname(
    tls_files: tuple[Path, Path], fake_dns: dict[str, Callable[[], list[str]]]
) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    sni_seen: list[str] = []

    def record_sni(_sock: ssl.SSLObject, name: str, _ctx: ssl.SSLContext) -> None:
        sni_seen.append(name)

    server_context.sni_callback = record_sni
    client_context = ssl.create_default_context(cafile=str(cert))
    fake_dns["winnow.test"] = lambda: ["127.0.0.1"]
    fake_dns["other.test"] = lambda: ["127.0.0.1"]
    local = LocalServer(tls=server_context)
    try:
        url = f"https://winnow.test:{local.port}/image"
        assert fetch_url(url, timeout=5, allow_private=True, ssl_context=client_context) == IMAGE
        assert local.requests == [("/image", f"winnow.test:{local.port}")]
        assert sni_seen == ["winnow.test"]
        for wrong in (f"https://other.test:{local.port}/image", f"https://127.0.0.1:{local.port}/"):
            error = fetch_error(wrong, timeout=5, allow_private=True, ssl_context=client_context)
            assert error.status == 502
        assert len(local.requests) == 1
    finally:
        local.close()
