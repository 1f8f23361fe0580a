"""Run the service for real: in a background thread (uvicorn) or as a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bench.live import free_port, threaded_server, wait_until

REPO = Path(__file__).resolve().parents[2]
__all__ = ["REPO", "ServiceProcess", "free_port", "threaded_server", "wait_until"]


class ServiceProcess:
    """``winnow serve`` in a child process, so a test can SIGKILL it."""

    def __init__(self, data_dir: Path, *args: str, headers: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = headers or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        command = [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), "--log-level", "warning", *self.args]
        log = open(self.data_dir.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=log, env=os.environ.copy()
        )
        wait_until(self._healthy, timeout=120, interval=0.1, what="service health")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"service exited with {self.process.returncode}")
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers=self.headers)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing — a crash."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
