"""The Evidently report monitoring writes renders in a browser, offline, and shows the verdict it stands for.

A report is a page of JavaScript that draws itself from embedded data: a file that exists can still
be blank (a script that fails, a library fetched from a CDN a closed network cannot reach). The test
writes a small real report with the project's own drift code (:func:`monitoring.drift.detect_drift`),
opens it in Debian's chromium with every request outside the file refused, and reads the rendered page:
the dataset verdict, the share of drifted columns and each column's row must say what the
:class:`~monitoring.drift.DriftResult` says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraudops.browser import INSTALL_HINT, chromium_path, headless_chromium
from monitoring.drift import detect_drift

ROWS = 400


@pytest.fixture
def chromium() -> None:
    if chromium_path() is None:
        reason = f"no chromium for the Evidently report test: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must provide it: make test runs make browser first)")
        pytest.skip(reason)


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two small windows: the amount moves (a season's bigger baskets), the daily count does not."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(3, 2 * ROWS).astype(float)
    reference = pd.DataFrame({"tx_amount": rng.normal(50, 10, ROWS), "customer_nb_tx_1day": counts[:ROWS]})
    current = pd.DataFrame({"tx_amount": rng.normal(90, 10, ROWS), "customer_nb_tx_1day": counts[ROWS:]})
    return reference, current


@pytest.mark.usefixtures("chromium")
def test_drift_report_renders_its_verdict_offline(tmp_path: Path) -> None:
    reference, current = frames()
    result = detect_drift(reference, current, list(reference.columns), tmp_path / "drift.html")
    assert result.drifted and result.drifted_columns == ["tx_amount"]  # the story the page must tell
    assert result.html_path is not None

    outside: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            request_route.continue_()
        else:  # refused at once, as a closed network would (and noted: the report must not need it)
            outside.append(url)
            request_route.abort()

    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route("**/*", route)
        page.goto(result.html_path.as_uri(), wait_until="load")
        try:
            page.get_by_text("Data Drift Summary").wait_for(state="visible", timeout=30_000)
        except Exception as exc:
            raise AssertionError(
                f"the report did not render: {errors=}, requests refused: {outside}"
            ) from exc
        text = " ".join(page.inner_text("body").split())
        rows = {
            column: " ".join(page.locator("tr", has_text=column).first.inner_text().split())
            for column in reference.columns
        }
        page.close()

    assert errors == [] and outside == [], f"{errors=}; the report fetched from another host: {outside}"
    assert f"Dataset Drift is detected. Dataset drift detection threshold is {result.drift_share}" in text
    n_drifted, n_columns = len(result.drifted_columns), result.n_columns
    assert (
        f"Drift is detected for {100 * result.share:.1f}% of columns ({n_drifted} out of {n_columns})" in text
    )
    for column, test in result.column_scores.items():
        verdict = "Detected" if test.drifted else "Not Detected"
        assert f"{column} num {verdict} {test.method}" in rows[column], rows[column]
        assert float(rows[column].split()[-1]) == pytest.approx(test.score, abs=1e-5), rows[column]
