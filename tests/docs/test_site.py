"""The course site: it builds strictly, and it works offline in a real browser.

``mkdocs build --strict`` is the site's link check: a link to a missing page or anchor, or a page
left out of the nav, fails it. The built pages must load nothing from another host (workshops run on
closed networks, and Material fetches mermaid from unpkg unless the site serves its own). The browser
test opens the architecture page in Debian's chromium, served by a local HTTP server, and waits for
mermaid to draw its diagrams: a diagram that fails to parse, or a script that never loads, shows up
here and nowhere else.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fraudops.browser import INSTALL_HINT, chromium_path, headless_chromium

ROOT = Path(__file__).resolve().parents[2]
# another config (a copy with a shorter nav) only to work on a few pages while others are missing
CONFIG = Path(os.environ.get("FRAUDOPS_DOCS_CONFIG", ROOT / "mkdocs.yml"))
ARCHITECTURE_SOURCE = ROOT / "docs" / "architecture.md"
# words from each of the architecture page's two diagrams, as they must appear once drawn
DIAGRAM_LABELS = (
    "prediction log",
    "Prefect server",
    "polls champion alias",
    "core/",
    "retrain subflow",
    "POST /v1/feedback",
    "hot swap to version 2",
)
# tags and attributes that make a browser fetch something (plain <a href> links do not)
FETCHING_ATTRIBUTES = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "iframe": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "link": ("href",),  # stylesheets, fonts (preload), icons, manifests; rel="canonical" is skipped below
}
EXTERNAL_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
CSS_FETCH = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)


class FetchedUrls(HTMLParser):
    """The URLs a page's markup makes the browser fetch: scripts, styles, fonts, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link" and values.get("rel", "").lower() in {"canonical", "alternate", "prev", "next"}:
            return
        for name in FETCHING_ATTRIBUTES.get(tag, ()):
            if name in values:
                # srcset: "a.png 1x, b.png 2x"
                self.urls.extend(part.split()[0] for part in values[name].split(",") if part.strip())
        if "style" in values:
            self.inline_css.append(values["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.inline_css.append(data)


def external_references(site: Path) -> list[str]:
    """Every reference in the built site that would fetch from another host, as 'file: url'."""
    found: list[str] = []
    for page in sorted(site.rglob("*.html")):
        parser = FetchedUrls()
        parser.feed(page.read_text(encoding="utf-8"))
        rel = page.relative_to(site)
        found += [f"{rel}: {url}" for url in parser.urls if EXTERNAL_URL.match(url)]
        found += [f"{rel}: {url}" for css in parser.inline_css for url in CSS_FETCH.findall(css)]
    for sheet in sorted(site.rglob("*.css")):
        rel = sheet.relative_to(site)
        found += [f"{rel}: {url}" for url in CSS_FETCH.findall(sheet.read_text(encoding="utf-8"))]
    return found


def build_site(out: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` with the project's own mkdocs (the venv the tests run in)."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [str(mkdocs), "build", "--strict", "--config-file", str(CONFIG), "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = build_site(out)
    problems = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems or [result.stderr])
    return out


def test_site_builds_strictly_and_references_no_other_host(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "architecture" / "index.html").is_file()
    assert (site / "assets" / "javascripts" / "mermaid.min.js").is_file(), "the vendored mermaid is missing"
    assert external_references(site) == []


@pytest.fixture
def local_server(site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1 (mermaid and the search index need http, not file://)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chromium() -> None:
    if chromium_path() is None:
        reason = f"no chromium for the page test: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must provide it: make test runs make browser first)")
        pytest.skip(reason)


@pytest.mark.usefixtures("chromium")
def test_architecture_diagrams_render_offline_in_chromium(local_server: str) -> None:
    source = ARCHITECTURE_SOURCE.read_text(encoding="utf-8")
    assert source.count("```mermaid") == 2
    for label in DIAGRAM_LABELS:
        assert label in source, f"{label!r} is no longer in a diagram of {ARCHITECTURE_SOURCE.name}"

    requested: list[str] = []
    outside: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        requested.append(url)
        if url.startswith(local_server + "/") or url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:  # refused at once: a closed network would only make the page wait
            outside.append(url)
            request_route.abort()

    with headless_chromium() as browser:
        page = browser.new_page()
        # Material draws each diagram into a closed shadow root; opened here so the test can read it
        page.add_init_script(
            "const attach = Element.prototype.attachShadow;"
            "Element.prototype.attachShadow = function (init) {"
            " return attach.call(this, { ...init, mode: 'open' }); };"
        )
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route("**/*", route)
        page.goto(f"{local_server}/architecture/", wait_until="load")
        svgs = page.locator("div.mermaid svg")
        try:
            page.wait_for_function(
                "() => [...document.querySelectorAll('div.mermaid')]"
                ".filter(d => d.shadowRoot && d.shadowRoot.querySelector('svg')).length === 2",
                timeout=30_000,
            )
        except Exception as exc:
            raise AssertionError(
                f"the diagrams did not render: {errors=}, requests outside the site: {outside}"
            ) from exc
        drawn = " ".join(" ".join((svgs.nth(i).text_content() or "").split()) for i in range(svgs.count()))
        page.close()

    assert errors == []
    for label in DIAGRAM_LABELS:
        assert label in drawn, f"{label!r} missing from the rendered diagrams"
    assert outside == [], f"the page fetched from another host: {outside}"
    assert any(url.endswith("/assets/javascripts/mermaid.min.js") for url in requested)
