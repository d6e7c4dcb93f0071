"""The course's screenshots and plots, made by one command: ``make screenshots`` (``python -m fraudops.screenshots``).

The pictures must show what the project really does, so they are taken from a real run, never drawn:

1. clone the repository's committed tree into a temporary folder and run ``fraudops demo`` there (the
   user's data/, stores/ and reports/ are never touched; the demo's API gets its own port);
2. start the MLflow UI and the Prefect UI on that clone's stores (as ``make mlflow-ui`` and
   ``make prefect-ui`` do, on other ports);
3. drive Debian's chromium through Playwright (:func:`fraudops.browser.headless_chromium`) at a fixed
   viewport, wait on each page for text only real content has, and save the shot into docs/images/;
4. copy the two plots the run wrote (training's precision-recall curve, monitoring's timeline).

``--reuse DIR`` skips 1 and shoots a clone where the demo already ran (``--keep`` leaves one behind).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudops.browser import headless_chromium
from fraudops.errors import UserError

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1400, "height": 900}
TRAINING_EXPERIMENT, MONITORING_EXPERIMENT, MODEL = "fraudops", "fraudops-monitoring", "fraud-detector"
TOOL_ENV = {  # what the Makefile exports for every target
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def say(text: str) -> None:
    """One progress line, at once (the demo alone takes minutes)."""
    print(f"[screenshots] {text}", flush=True)


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else one the system picks (several demos may run)."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise UserError("no free port on 127.0.0.1")


def clone_env(clone: Path) -> dict[str, str]:
    """The clone's code and project folder first; this interpreter's tools (mlflow, prefect, dvc) on PATH.

    The virtual environment is reused rather than built again in the clone: the clone's modules win
    through ``PYTHONPATH`` and the settings' project folder is the clone.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUDOPS_", "PREFECT_", "MLFLOW_"))}
    env |= TOOL_ENV
    env["PYTHONPATH"] = str(clone)
    env["FRAUDOPS_PROJECT_DIR"] = str(clone)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def clone_repository(target: Path) -> Path:
    """``git clone`` of the repository's committed tree (uncommitted edits are not in the pictures)."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def run_demo(clone: Path, port: int, log_path: Path) -> None:
    """``fraudops demo`` in the clone, its output in ``log_path``; each step's heading is echoed."""
    command = [sys.executable, "-m", "fraudops", "demo", "--port", str(port)]
    say(f"running the demo in {clone} (API on port {port}; log {log_path})")
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=clone,
            env=clone_env(clone),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            heading = line.strip(" ─\n")
            if line.startswith("─") and heading[:1].isdigit():
                say(f"  demo step {heading}")
        if process.wait() != 0:
            raise UserError(f"the demo failed (exit {process.returncode}): see {log_path}")


def wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until ``url`` answers 200; a clear error when the server died or never answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            raise UserError(f"{url}: the server exited with code {process.returncode}: see {log_path}")
        if time.monotonic() > deadline:
            raise UserError(f"{url} did not answer within {timeout_s:.0f} s: see {log_path}")
        time.sleep(1.0)


@contextmanager
def server(
    command: list[str], env: dict[str, str], health_url: str, log_path: Path, timeout_s: float = 180.0
) -> Iterator[None]:
    """A UI server for the block: started, waited for, then stopped (its own process group)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(health_url, timeout_s, process, log_path)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


@dataclass(frozen=True)
class Shot:
    """One picture: where it goes and what it shows."""

    name: str
    what: str


@dataclass(frozen=True)
class Targets:
    """The ids the pages are found by, read from the clone's stores."""

    training_experiment: str
    monitoring_experiment: str
    training_run: str
    retrain_flow_run: str
    monitor_flow_run: str
    drift_report: Path


def mlflow_ids(tracking_uri: str) -> tuple[str, str, str]:
    """The two experiments' ids and the champion's training run (its page has every metric)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiments = {}
    for name in (TRAINING_EXPERIMENT, MONITORING_EXPERIMENT):
        found = client.get_experiment_by_name(name)
        if found is None:
            raise UserError(f"no MLflow experiment {name!r} in {tracking_uri}: did the demo finish?")
        experiments[name] = str(found.experiment_id)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    return experiments[TRAINING_EXPERIMENT], experiments[MONITORING_EXPERIMENT], str(champion.run_id)


def prefect_post(api: str, path: str, body: dict[str, Any]) -> Any:
    """POST to the Prefect API (the filters are POSTs)."""
    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def prefect_ids(api: str) -> tuple[str, str]:
    """The newest completed retrain flow run and the monitor flow run that started it."""
    flows = {f["name"]: f["id"] for f in prefect_post(api, "/flows/filter", {})}
    if "retrain" not in flows:
        raise UserError("no retrain flow run in the clone's Prefect store: did the demo's retraining happen?")
    runs = prefect_post(
        api,
        "/flow_runs/filter",
        {"flows": {"id": {"any_": [flows["retrain"]]}}, "sort": "START_TIME_DESC", "limit": 1},
    )
    retrain = runs[0]
    task_run = prefect_get(api, f"/task_runs/{retrain['parent_task_run_id']}")
    return retrain["id"], task_run["flow_run_id"]


def prefect_get(api: str, path: str) -> Any:
    with urllib.request.urlopen(f"{api}{path}", timeout=30) as response:
        return json.loads(response.read())


def drifted_report(clone: Path) -> Path:
    """The Evidently data-drift report of the first monitoring run that found the dataset drifted."""
    history = clone / "stores" / "monitoring" / "decisions.jsonl"
    for line in history.read_text(encoding="utf-8").splitlines():
        run = json.loads(line)
        drift = run.get("drift") or {}
        path = (run.get("reports") or {}).get("drift_html")
        if drift.get("drifted") and path and Path(path).exists():
            return Path(path)
    raise UserError(f"no drifted run with a report in {history}")


def mlflow_classic_view(page: Page, runs_url: str) -> None:
    """MLflow 3 opens on its GenAI pages with an assistant panel: switch to "Model training", close the panel.

    Both choices persist in the browser's storage, so every later MLflow page shows the classic view.
    """
    page.goto(runs_url, wait_until="domcontentloaded")
    page.get_by_text("train-").first.wait_for(state="visible", timeout=90_000)
    page.get_by_text("Model training", exact=True).first.click()
    close = page.locator("button[aria-label='Close']")
    if close.count() and close.first.is_visible():
        close.first.click()
    page.wait_for_timeout(1000)


def shoot(page: Page, url: str, wait_for: str, out: Path, height: int | None = None) -> None:
    """Open ``url``, wait until ``wait_for`` (text) is visible and the network is quiet, save the shot.

    ``height``: a taller viewport for a page whose content is long (the run page's metrics).
    """
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height or VIEWPORT["height"]})
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text(wait_for).first.wait_for(state="visible", timeout=90_000)
    # a UI that polls never goes idle: the awaited text is the real check, this only lets images load
    with contextlib.suppress(Exception):
        page.wait_for_load_state("networkidle", timeout=15_000)
    page.wait_for_timeout(1500)  # charts animate in
    page.screenshot(path=str(out))


def take_shots(clone: Path, out_dir: Path, mlflow_port: int, prefect_port: int) -> list[Shot]:
    """Start both UIs on the clone's stores and shoot every page; the shots written."""
    env = clone_env(clone)
    tracking_uri = f"sqlite:///{clone / 'stores' / 'mlflow' / 'mlflow.db'}"
    bin_dir = Path(sys.executable).parent
    mlflow_url, prefect_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{prefect_port}"
    logs = clone / "reports" / "screenshots"
    logs.mkdir(parents=True, exist_ok=True)
    mlflow_cmd = [str(bin_dir / "mlflow"), "ui", "--backend-store-uri", tracking_uri]
    mlflow_cmd += ["--host", "127.0.0.1", "--port", str(mlflow_port)]
    prefect_cmd = [
        str(bin_dir / "prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(prefect_port),
    ]
    # the UI asks its API at PREFECT_UI_API_URL, 127.0.0.1:4200 unless told: this server's own port
    prefect_env = env | {
        "PREFECT_HOME": str(clone / "stores" / "prefect"),
        "PREFECT_UI_API_URL": f"{prefect_url}/api",
    }
    shots: list[Shot] = []
    say(f"starting the MLflow UI on {mlflow_url} and the Prefect UI on {prefect_url}")
    with (
        server(mlflow_cmd, env, f"{mlflow_url}/health", logs / "mlflow-ui.log"),
        server(prefect_cmd, prefect_env, f"{prefect_url}/api/health", logs / "prefect-ui.log"),
    ):
        training_exp, monitoring_exp, champion_run = mlflow_ids(tracking_uri)
        retrain_run, monitor_run = prefect_ids(f"{prefect_url}/api")
        report = drifted_report(clone)
        plan: list[tuple[str, str, str, str, int | None]] = [
            # name, url, text that only real content has, what it shows, viewport height (None: 900)
            (
                "mlflow-training-runs.png",
                f"{mlflow_url}/#/experiments/{training_exp}/runs",
                "train-",
                'MLflow: experiment "fraudops", its training runs',
                None,
            ),
            (
                "mlflow-run.png",
                f"{mlflow_url}/#/experiments/{training_exp}/runs/{champion_run}",
                "test_average_precision",
                "MLflow: the champion's training run (metrics, params, tags)",
                1800,
            ),
            (
                "mlflow-registered-model.png",
                f"{mlflow_url}/#/models/{MODEL}",
                "champion",
                f"MLflow: registered model {MODEL}, its versions and aliases",
                None,
            ),
            (
                "mlflow-monitoring-runs.png",
                f"{mlflow_url}/#/experiments/{monitoring_exp}/runs",
                "monitor-",
                'MLflow: experiment "fraudops-monitoring", one run per monitoring day',
                None,
            ),
            ("prefect-flow-runs.png", f"{prefect_url}/runs", "retrain", "Prefect: the flow runs", None),
            (
                "prefect-monitor-flow-run.png",
                f"{prefect_url}/runs/flow-run/{monitor_run}",
                "live AP",
                "Prefect: the monitor flow run that started a retrain",
                None,
            ),
            (
                "prefect-retrain-flow-run.png",
                f"{prefect_url}/runs/flow-run/{retrain_run}",
                "gate: promote",
                "Prefect: the retrain flow run it started",
                None,
            ),
            (
                "evidently-drift-report.png",
                report.as_uri(),
                "Dataset Drift",
                f"Evidently: data-drift report {report.name}",
                None,
            ),
        ]
        with headless_chromium() as browser:
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            page = context.new_page()
            mlflow_classic_view(page, f"{mlflow_url}/#/experiments/{training_exp}/runs")
            for name, url, wait_for, what, height in plan:
                say(f"shooting {name} ({url})")
                shoot(page, url, wait_for, out_dir / name, height)
                shots.append(Shot(name, what))
            context.close()
    return shots


def copy_plots(clone: Path, out_dir: Path) -> list[Shot]:
    """The two PNGs the run drew itself (pipelines.plots, monitoring.plots)."""
    copies = (
        (
            "pr-curve.png",
            clone / "metrics" / "pr_curve.png",
            "training's precision-recall curve and baselines",
        ),
        (
            "monitoring-timeline.png",
            clone / "reports" / "monitoring" / "timeline.png",
            "drift share and live AP over the simulated days",
        ),
    )
    shots = []
    for name, source, what in copies:
        if not source.exists():
            raise UserError(f"{source} is missing: the run did not draw it")
        say(f"copying {source.relative_to(clone)} to {name}")
        shutil.copyfile(source, out_dir / name)
        shots.append(Shot(name, what))
    return shots


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header."""
    header = path.read_bytes()[:24]
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def print_table(shots: list[Shot], out_dir: Path) -> None:
    """The files written, their size and what each shows."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"written to {out_dir}")
    for column in ("file", "pixels", "KiB", "shows"):
        table.add_column(column)
    for shot in shots:
        path = out_dir / shot.name
        width, height = png_size(path)
        table.add_row(shot.name, f"{width}x{height}", f"{path.stat().st_size / 1024:.0f}", shot.what)
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the demo in a clone (or reuse one), shoot, copy, print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m fraudops.screenshots", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    parser.add_argument("--reuse", type=Path, help="a clone where the demo already ran (no new demo)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone (its path is printed)")
    parser.add_argument("--api-port", type=int, default=8104)
    parser.add_argument("--mlflow-port", type=int, default=5104)
    parser.add_argument("--prefect-port", type=int, default=4204)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    workdir: Path | None = None
    try:
        if args.reuse:
            clone = args.reuse.resolve()
            say(f"reusing the demo run in {clone}")
        else:
            workdir = Path(tempfile.mkdtemp(prefix="fraudops-screenshots-"))
            clone = clone_repository(workdir / "fraudops")
            say(f"cloned {ROOT} into {clone}")
            run_demo(clone, free_port(args.api_port), workdir / "demo.log")
        shots = take_shots(clone, args.out, free_port(args.mlflow_port), free_port(args.prefect_port))
        shots += copy_plots(clone, args.out)
    except UserError as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        if workdir is not None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif workdir is not None:
            say(f"kept the clone: {workdir / 'fraudops'} (reuse it with --reuse)")
    print_table(shots, args.out)
    say(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
