"""The service run for real by benches and tests: a free port, polling with a deadline, the app
served by uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from service.settings import Settings

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.02,
    what: str | Callable[[], str] = "",
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds.

    ``what`` names the wait in the failure message; a callable is called then (to show state).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    described = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout}s waiting for {described or predicate}")


@contextmanager
def threaded_server(settings: Settings, port: int | None = None) -> Iterator[str]:
    """The app served by uvicorn in a thread (on ``port``, default a free one); yields its URL."""
    import uvicorn  # here, so that a bench needing only a port does not load the whole service

    from api.app import create_app

    port = port or free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    # start-up loads the backbone and measures its precision: slow on a loaded machine
    wait_until(lambda: server.started or not thread.is_alive(), timeout=120, what="server start")
    if not server.started:
        raise RuntimeError("the server stopped while starting (its error is logged above)")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
