"""`fraudops demo --phase`: compose.yaml runs the story as setup, then traffic against its API service.

A second `docker compose up` on the same volumes reruns both one-shot services: each must find its
work done and exit cleanly, never redo it on top of its own leftovers. (The whole stack is proven by
`make docker-check`; these pin the rules on a project folder, without servers.)
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from core.settings import Settings
from fraudops.demo import DemoConfig, run_demo, setup_marker, summary_path
from fraudops.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens there: a phase that calls the API fails


def project(tmp_path: Path) -> Settings:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return Settings(project_dir=tmp_path)


def run(settings: Settings, **cfg: object) -> str:
    out = io.StringIO()
    run_demo(settings, DemoConfig(**cfg), Console(file=out, width=200))  # type: ignore[arg-type]
    return out.getvalue()


def test_traffic_before_setup_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--phase setup"):
        run(project(tmp_path), phase="traffic", api_url=CLOSED_PORT_URL)


def test_a_finished_setup_is_kept_not_redone(tmp_path: Path) -> None:
    settings = project(tmp_path)
    setup_marker(settings).write_text("{}", encoding="utf-8")
    kept = settings.raw_dir / "2026-01-01.parquet"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"data setup ingested")

    printed = run(settings, phase="setup")

    assert "Setup already done" in printed
    assert kept.read_bytes() == b"data setup ingested"  # no clean slate over the API's data


def test_a_finished_demo_prints_its_summary_again_without_calling_the_api(tmp_path: Path) -> None:
    settings = project(tmp_path)
    setup_marker(settings).write_text("{}", encoding="utf-8")
    figures = {"run": "healthy", "served_version": "2", "models_trained": 2, "alerts_raised": 1}
    summary_path(settings).write_text(json.dumps(figures), encoding="utf-8")

    printed = run(settings, phase="traffic", api_url=CLOSED_PORT_URL)

    assert "already finished" in printed
    assert "version served at the end" in printed and "healthy" in printed
