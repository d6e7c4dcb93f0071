"""Debian's chromium, driven headless by Playwright: for the course's screenshots and the page tests.

Playwright's own browser download needs a host these machines cannot reach, so the project drives the
system's chromium (``apt-get install chromium``, or ``make browser``) through ``executable_path``.
The flags keep chromium from calling home: on a closed network its background connections fail by the
dozen and slow every start.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fraudops.errors import UserError

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM_FLAGS = (
    "--no-sandbox",  # chromium refuses to run as root with its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTALL_HINT = "install it with `make browser` (Debian: apt-get install chromium) or set FRAUDOPS_CHROMIUM"


def chromium_path() -> str | None:
    """The chromium binary: ``FRAUDOPS_CHROMIUM`` when set, else the first on PATH (None when absent)."""
    explicit = os.environ.get("FRAUDOPS_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """A headless chromium for the duration of the block; a clear error when none is installed."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise UserError(f"no chromium found: {INSTALL_HINT}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()
