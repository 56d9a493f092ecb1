"""The dashboard as a server of its own: `streamlit run dashboard/app.py` on a free port, handed over once it answers
and stopped whatever happens meanwhile. The real-browser tests and `bench/draw_load.py` both drive one; starting
and waiting the same way keeps a slow start (Streamlit imports for seconds, more on a busy machine) one problem."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


class ServerError(RuntimeError):
    """The server exited or never answered; its log says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@contextmanager
def serving(env: dict[str, str], log: IO[bytes], start_timeout: float = 300) -> Iterator[tuple[subprocess.Popen, str]]:
    """A dashboard server with environment ``env``, its output into ``log``: yields the process and its URL once
    Streamlit's health endpoint answers (its scripts run only when a session opens)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port",
                               str(port), "--server.headless", "true"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        url = f"http://localhost:{port}"
        wait_healthy(url, server, start_timeout)
        yield server, url
    finally:
        stop(server)


def wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerError(f"streamlit exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise ServerError(f"streamlit did not answer at {url} within {timeout:.0f} s")


def stop(server: subprocess.Popen) -> None:
    """Streamlit stops on SIGTERM within a second or two; a server that hangs is killed."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
