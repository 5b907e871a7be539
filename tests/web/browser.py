"""What the browser tests share: Debian's Chromium (never a downloaded browser) and the real app
served by uvicorn on a free local port in a background thread."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from trustlive.app import create_app
from trustlive.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip without /usr/bin/chromium, or fail under TRUSTLIVE_TEST_REQUIRE_SERVICES=1."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} not found (install Debian's chromium; browsers are never downloaded)"
    if os.environ.get("TRUSTLIVE_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; TRUSTLIVE_TEST_REQUIRE_SERVICES=1 makes this a failure", pytrace=False)
    pytest.skip(message)


def launch(playwright):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Run the app for ``settings`` and yield its base URL; stop it cleanly afterwards."""
    require_chromium()
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-browser-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start", pytrace=False)
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
