"""Headless Chromium for the map browser tests (Debian's chromium, driven by playwright).

``scripts/install-browser.sh`` installs /usr/bin/chromium; playwright never downloads a
browser of its own here. Pages may load only file:// URLs: every other request is aborted,
so tiles fail quietly and a map that still needed a CDN would break the test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("GEOALLOC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class Loaded:
    """A page opened from a file, with everything that went wrong while it ran."""

    page: Any
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def js_errors(self) -> list[str]:
        """Uncaught exceptions and console errors, except the aborted tile/network loads."""
        console = [m for m in self.console_errors if "Failed to load resource" not in m]
        return self.page_errors + console


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium with a fresh, throw-away profile (``--user-data-dir``) per test module.

    Not per session: playwright's sync API keeps an asyncio loop running while it is open, and
    tests that run after the browser tests and call ``asyncio.run`` would find it.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh (the Makefile's test target does)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="geoalloc-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True, locale="zh-CN",
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def open_file(browser: Any) -> Iterator[Any]:
    pages = []

    def _open(path: Path) -> Loaded:
        page = browser.new_page()
        pages.append(page)
        loaded = Loaded(page)
        page.on("pageerror", lambda e: loaded.page_errors.append(str(e)))
        page.on("console", lambda m: loaded.console_errors.append(m.text) if m.type == "error" else None)

        def on_dialog(d: Any) -> None:
            loaded.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)

        def route(r: Any) -> None:
            if r.request.url.startswith("file:"):
                r.continue_()
            else:
                loaded.blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(Path(path).resolve().as_uri(), wait_until="load")
        page.wait_for_function("window.geoalloc && Object.keys(window.geoalloc.maps).length > 0")
        return loaded

    yield _open
    for page in pages:
        page.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
