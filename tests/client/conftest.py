"""The client's tests talk to a real service over HTTP (uvicorn in a thread, tiny backbone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.settings import Settings
from tests.api.live import threaded_server


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """The URL of a fresh service on the test settings (admin key ``tests.conftest.ADMIN_KEY``)."""
    with threaded_server(settings) as url:
        yield url
