"""Serving throughput: our scoring API against ``mlflow models serve``, side by side in one run.

``python -m benchmarks.serving`` (part of ``make bench``; ``--help`` lists the durations and sizes).

1. Builds a throwaway project in a temporary folder (seeded, offline): a simulated history, ingested
   and validated, then the ``train`` stage and registration through the project's own training code,
   so the ``champion`` version carries the ONNX artifact and tags exactly as in production; the MLflow
   store is a sqlite file inside that folder.
2. Starts ``fraudops serve`` (one uvicorn worker) and ``mlflow models serve`` on the same champion,
   both pinned to one core with ``OMP_NUM_THREADS=1``; wrk (loopback, pinned to another core) loads them.
3. Alternates rounds (ours, mlflow, ours, mlflow, ...) with one transaction a request and with batches:
   ours gets raw transactions with unique ids and timestamps moving forward from the history's end
   (``/v1/score``; batches both as rows, ``/v1/score/batch``, and as columns, ``/v1/score/columns``),
   mlflow gets precomputed feature rows of the same simulated world (``/invocations``, dataframe_split). Reports per-target medians and the ratios against the goals.
4. Swaps the model under load: while wrk scores on our API, the champion is registered again as new
   versions, the alias moves to each and ``/admin/reload`` is called; counts failed requests and the
   versions that answered.

``--against redis`` measures, in place of mlflow, our API with its online feature state in Redis (team mode:
``FRAUDOPS_REDIS_URL``, a prefix of the run's, deleted afterwards) against the same API with the state in
its process, one replica each, the same traffic: what the shared state costs (no swap run then); and
two replicas on that Redis behind nginx (deploy/nginx/fraudops.conf, the compose scale profile's), all
three alternating in one run (`make bench-replicas`). The replicas share the servers' core, so the
third arm shows what balancing costs, not the capacity a second machine adds; its "server CPU" is
nginx's.

Figures go to a rich table and ``reports/bench_serving.json`` (``bench_serving_redis.json``). The wrk scripts are in ``benchmarks/wrk``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import (
    busy_cpu_seconds,
    core_or_none,
    describe_code,
    describe_machine,
    is_running,
    pin_to_core,
    pinned,
    process_tree,
    tree_cpu_seconds,
    tree_peak_rss_mb,
    waited_children_cpu_seconds,
)
from benchmarks.project import make_project, throwaway_folder, use_project

ROOT = Path(__file__).resolve().parents[1]
WRK_DIR = ROOT / "benchmarks" / "wrk"
BIN = Path(sys.executable).parent
HISTORY_START = dt.date(2026, 1, 1)
TRAFFIC_DAYS = 14  # simulated days after the history: the (customer, terminal, amount) traffic pool
MLFLOW_SINGLE_BODIES = 20_000
MLFLOW_BATCH_BODIES = 8
# rows/s assumed before a kind was measured (its warm-up): how far the simulated clock must allow
CLOCK_FLOOR_RATE = {"single": 3_000.0, "batch": 30_000.0, "columns": 60_000.0}
GOALS = {
    "single_rps_ratio": 15.0,  # ours / mlflow requests/s, one transaction a request
    "single_p99_ratio": 0.1,  # ours p99 / mlflow p99
    "batch_rows_ratio": 1.5,  # ours / mlflow rows/s, 1,000-row batches
}
# redis: ours again, its feature state in Redis (--against redis); replicas: two such replicas behind nginx
TARGETS = ("ours", "mlflow", "redis", "replicas")
# versions reported with the figures
PACKAGES = (
    "mlflow",
    "fastapi",
    "uvicorn",
    "scikit-learn",
    "onnxruntime",
    "pandas",
    "numpy",
    "uvloop",
    "httptools",
)
# what one round of a kind runs, in order: ours as rows and as columns against mlflow's one batch form
# (mlflow gets dataframe_split bodies, columns already)
ARMS = {
    "single": [("ours", "single"), ("mlflow", "single")],
    "batch": [("ours", "batch"), ("ours", "columns"), ("mlflow", "batch")],
}
# --against redis: our API with its feature state in the process against the same API with the state in
# Redis (team mode), both sending raw transactions: what the shared state costs one replica; then two
# replicas on that Redis behind nginx (the compose scale profile's shape, on this machine's server core)
REDIS_ARMS = {
    "single": [("ours", "single"), ("redis", "single"), ("replicas", "single")],
    "batch": [
        ("ours", "batch"),
        ("redis", "batch"),
        ("replicas", "batch"),
        ("ours", "columns"),
        ("redis", "columns"),
        ("replicas", "columns"),
    ],
}

app = typer.Typer(add_completion=False)
console = Console()
if not console.is_terminal:  # logs and pipes: wide enough for the tables
    console.width = 150


@dataclass(frozen=True)
class Config:
    """Sizes and durations of one benchmark run."""

    seconds: float = 15.0
    warmup_seconds: float = 3.0
    rounds: int = 2
    swap_seconds: float = 30.0
    swaps: int = 3
    connections: int = 8
    threads: int = 1
    batch_rows: int = 1000
    customers: int = 2000
    terminals: int = 4000
    history_days: int = 84
    seed: int = 7
    timeout_s: float = 30.0
    server_cpu: int = 0
    load_cpu: int = 1
    mlflow_access_log: bool = False
    reload_interval_s: float = 0.0
    single: bool = True
    batch: bool = True
    columns: bool = True
    swap: bool = True
    against: str = "mlflow"  # the other arm: mlflow models serve, or our API on Redis ("redis")
    redis_url: str = "redis://127.0.0.1:6379/0"


@dataclass
class Project:
    """The throwaway project, its champion and the traffic prepared for both servers."""

    dir: Path
    admin_key: str
    tracking_uri: str
    clock_file: Path
    model_name: str
    champion: str
    features: list[str]
    n_iter: int
    threshold: float
    data_version: str
    history_rows: int
    history_end_ts: int  # epoch seconds of the first instant after the simulated history
    step_s: float  # simulated seconds between two transactions (the history's mean rate)
    pool: Path  # "customer terminal amount" lines
    mlflow_single: Path  # one /invocations body a line, one row each
    mlflow_batch: Path  # one /invocations body a line, batch_rows rows each
    build_s: float = 0.0


# --------------------------------------------------------------------------- the throwaway project


@contextlib.contextmanager
def step(text: str) -> Iterator[None]:
    """Show a step while it runs, then its duration."""
    start = time.perf_counter()
    with console.status(text + "..."):
        yield
    console.print(f"{text}: {time.perf_counter() - start:.1f} s")


def build_project(cfg: Config, root: Path) -> Project:
    """Simulate, ingest and validate, train and register a champion; prepare both servers' traffic."""
    import pandas as pd

    from core.clock import set_today
    from core.params import load_params
    from core.registry import CHAMPION, read_model_info, registry_client
    from core.schemas import TRANSACTION_COLUMNS
    from core.simulator import SimulationConfig, write_simulation
    from fraudops.cli import configure
    from pipelines.features import build_feature_table
    from pipelines.ingest import find_batches, ingest_batch
    from pipelines.training import run_training
    from pipelines.versioning import ensure_dvc_repo, track_data

    start = time.perf_counter()
    admin_key = secrets.token_urlsafe(24)
    project_dir = make_project(root / "project")
    settings = use_project(
        project_dir,
        FRAUDOPS_ADMIN_API_KEY=admin_key,
        FRAUDOPS_FEEDBACK_API_KEY=secrets.token_urlsafe(24),  # set, so the API writes no .env
        FRAUDOPS_RELOAD_INTERVAL_S=str(cfg.reload_interval_s),
        FRAUDOPS_ENVIRONMENT="development",
    )
    os.chdir(project_dir)  # DVC resolves the local remote's relative url from the working directory
    configure()  # quiet tool logging, as the command line does
    params = load_params(project_dir / "params.yaml")
    world = root / "world"
    sim = SimulationConfig(
        customers=cfg.customers,
        terminals=cfg.terminals,
        days=cfg.history_days,
        start_date=HISTORY_START,
        seed=cfg.seed,
    )
    with step(f"simulate {cfg.history_days} days ({cfg.customers:,} customers, {cfg.terminals:,} terminals)"):
        _, history = write_simulation(world, sim)
    history_end = HISTORY_START + dt.timedelta(days=cfg.history_days)
    set_today(settings.clock_file, history_end)
    with step("ingest, validate and version the history (DVC)"):
        delay = params.data.label_delay_days
        for kind, path in find_batches([world]):  # the ingest flow's steps, without Prefect
            dest = settings.raw_dir if kind == "transactions" else settings.labels_dir
            batch = ingest_batch(kind, path, dest, history_end, delay)
            if batch.status == "rejected":
                raise RuntimeError(f"ingest rejected {path}: {batch.reason}")
        ensure_dvc_repo(project_dir)
        track_data(project_dir)
    with step("train: dvc repro (validate, features, train stage), MLflow run, gate, registration"):
        outcome = run_training(settings, params, "serving benchmark")
    if not outcome.decision.promote:
        raise RuntimeError(f"the model was not promoted ({outcome.decision.reasons}): try another --seed")
    client = registry_client(settings.tracking_uri)
    info = read_model_info(client, settings.model_name, CHAMPION)
    n_iter = int(client.get_run(info.run_id).data.metrics["n_iter"])
    console.print(
        f"champion: {info.name} version {info.version}, {n_iter} trees, threshold {info.threshold:.4f}, "
        f"{len(history):,} transactions of history ({cfg.history_days} days)"
    )

    with step(f"simulate {TRAFFIC_DAYS} more days as the traffic pool; their features for mlflow"):
        _, traffic = write_simulation(world, replace(sim, seed=cfg.seed + 1, days=TRAFFIC_DAYS))
        pool = root / "pool.txt"
        pool.write_text(
            "".join(
                f"{c} {t} {a:.2f}\n"
                for c, t, a in zip(
                    traffic["customer_id"], traffic["terminal_id"], traffic["tx_amount"], strict=True
                )
            ),
            encoding="utf-8",
        )
        validated = settings.validated_dir
        frame = pd.concat(
            [
                pd.read_parquet(validated / "transactions.parquet", columns=TRANSACTION_COLUMNS),
                traffic[TRANSACTION_COLUMNS],
            ],
            ignore_index=True,
        )
        table = build_feature_table(frame, pd.read_parquet(validated / "labels.parquet"), params)
        rows = table[table["transaction_id"].isin(set(traffic["transaction_id"]))][info.features]
        mlflow_single, mlflow_batch = root / "mlflow_single.txt", root / "mlflow_batch.txt"
        write_invocation_bodies(mlflow_single, rows.head(MLFLOW_SINGLE_BODIES), info.features, 1)
        batches = rows.head(cfg.batch_rows * MLFLOW_BATCH_BODIES)
        write_invocation_bodies(mlflow_batch, batches, info.features, cfg.batch_rows)
    return Project(
        dir=project_dir,
        admin_key=admin_key,
        tracking_uri=settings.tracking_uri,
        clock_file=settings.clock_file,
        model_name=info.name,
        champion=info.version,
        features=info.features,
        n_iter=n_iter,
        threshold=info.threshold,
        data_version=info.data_version,
        history_rows=len(history),
        history_end_ts=int(dt.datetime.combine(history_end, dt.time(), tzinfo=dt.UTC).timestamp()),
        step_s=86_400 * cfg.history_days / len(history),
        pool=pool,
        mlflow_single=mlflow_single,
        mlflow_batch=mlflow_batch,
        build_s=time.perf_counter() - start,
    )


def write_invocation_bodies(path: Path, rows: Any, columns: list[str], per_body: int) -> None:
    """``dataframe_split`` bodies of ``per_body`` feature rows each, one a line (float32 values)."""
    values = [[float(str(v)) for v in row] for row in rows.to_numpy(dtype="float32")]
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, len(values) - per_body + 1, per_body):
            body = {"dataframe_split": {"columns": columns, "data": values[start : start + per_body]}}
            fh.write(json.dumps(body, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process (session leader of its own process group) and where it answers."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    exit_code: int | None = None
    peak_rss_mb: float = 0.0
    killed: bool = False

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM to the server's process group; wait for every process of it, else SIGKILL.

        uvicorn shuts down gracefully on SIGTERM, then raises the signal again: exit code -15 is clean.
        """
        if self.proc.poll() is None:
            self.peak_rss_mb = tree_peak_rss_mb(self.proc.pid)
            pids = process_tree(self.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout_s)
            while time.monotonic() < deadline and any(is_running(pid) for pid in pids):
                time.sleep(0.1)
            if self.proc.poll() is None or any(is_running(pid) for pid in pids):
                console.print(f"[yellow]{self.name} did not stop within {timeout_s:.0f} s: SIGKILL[/]")
                self.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.exit_code = self.proc.returncode
        return self.exit_code


def start_server(
    name: str, cmd: list[str], env: dict[str, str], cwd: Path, port: int, ready: str, cfg: Config, logs: Path
) -> Server:
    """Start ``cmd`` pinned to the server core and wait until ``ready`` answers 200."""
    import httpx

    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pinned(core_or_none(cfg.server_cpu)),
        )
    server = Server(name, proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}: {tail(log_path)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.url + ready, timeout=2).status_code == 200:
                return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{name} was not ready within 180 s: {tail(log_path)}")


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def server_env(project: Project) -> dict[str, str]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": project.tracking_uri,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow execs `uvicorn`
    }
    env.pop("MLFLOW_REGISTRY_URI", None)
    return env


def start_ours(
    project: Project, cfg: Config, logs: Path, name: str = "ours", env: dict[str, str] | None = None
) -> Server:
    """``fraudops serve`` in the project (its settings come from the FRAUDOPS_ environment, plus ``env``)."""
    port = free_port()
    cmd = [str(BIN / "fraudops"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    environment = server_env(project) | (env or {})
    return start_server(name, cmd, environment, project.dir, port, "/health/ready", cfg, logs)


def start_ours_on_redis(project: Project, cfg: Config, logs: Path, prefix: str) -> Server:
    """Our API with its feature state in Redis under ``prefix`` (filled at start from the project's data)."""
    env = {"FRAUDOPS_REDIS_URL": cfg.redis_url, "FRAUDOPS_REDIS_PREFIX": prefix}
    return start_ours(project, cfg, logs, name="redis", env=env)


def nginx_conf(folder: Path, site: str) -> str:
    """A self-contained nginx.conf in ``folder`` (pid, logs, temp files) around ``site``'s server block."""
    temp = "\n".join(
        f"    {kind}_temp_path {folder}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"user root;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        f"events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n{temp}\n{site}\n}}\n"
    )


def start_replicas_behind_nginx(
    project: Project, cfg: Config, logs: Path, prefix: str, first: Server
) -> list[Server]:
    """A second replica on the same Redis state as ``first``, and nginx spreading requests over both with
    deploy/nginx/fraudops.conf (the compose scale profile's balancer), on a free port."""
    if shutil.which("nginx") is None:
        raise typer.BadParameter(
            "nginx is not installed: `apt-get install -y nginx-light` (make bench does it)"
        )
    env = {"FRAUDOPS_REDIS_URL": cfg.redis_url, "FRAUDOPS_REDIS_PREFIX": prefix}
    second = start_ours(project, cfg, logs, name="redis-b", env=env)
    folder = logs / "nginx"
    folder.mkdir()
    port = free_port()
    upstreams = "\n    ".join(
        f"server {server.url.removeprefix('http://')} max_fails=2 fail_timeout=5s;"
        for server in (first, second)
    )
    site = (ROOT / "deploy" / "nginx" / "fraudops.conf").read_text()
    site = site.replace("server replica:8000 max_fails=2 fail_timeout=5s;", upstreams)
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = folder / "nginx.conf"
    conf.write_text(nginx_conf(folder, site))
    cmd = ["nginx", "-p", str(folder), "-c", str(conf), "-g", "daemon off;"]
    lb = start_server("replicas", cmd, dict(os.environ), folder, port, "/health/ready", cfg, logs)
    return [second, lb]


def delete_redis_prefix(url: str, prefix: str) -> None:
    """Remove the benchmark's keys (all under the hash tag ``{prefix}``) from Redis."""
    import redis

    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])


def start_mlflow(project: Project, cfg: Config, logs: Path) -> Server:
    """``mlflow models serve`` of the same champion (uvicorn; its access log as configured)."""
    port = free_port()
    uri = f"models:/{project.model_name}@champion"
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "--workers", "1"]
    cmd += ["--port", str(port), "--host", "127.0.0.1"]
    env = server_env(project)
    env["UVICORN_ACCESS_LOG"] = "true" if cfg.mlflow_access_log else "false"  # uvicorn reads UVICORN_*
    return start_server("mlflow", cmd, env, project.dir, port, "/ping", cfg, logs)


# --------------------------------------------------------------------------- load generation


class Timeline:
    """Timestamps of our traffic: forward from the history's end at the history's rate.

    The service refuses transactions after the simulated clock's tomorrow, so before each run the
    clock moves far enough for the rows the run can send (at most 3x the fastest rate seen, or a
    floor before any was measured); rows past it are clamped in the wrk script and counted.
    """

    def __init__(self, project: Project) -> None:
        self.clock_file = project.clock_file
        self.cursor = float(project.history_end_ts)
        self.step = project.step_s
        self.best: dict[str, float] = {}

    def plan(self, kind: str, seconds: float) -> tuple[int, int]:
        """(first timestamp, last allowed timestamp) of a run; moves the clock when needed."""
        from core.clock import read_today, set_today

        rate = max(CLOCK_FLOOR_RATE[kind], 3 * self.best.get(kind, 0.0))
        planned_end = self.cursor + (seconds + 2) * rate * self.step
        day = dt.datetime.fromtimestamp(planned_end, dt.UTC).date()
        today = read_today(self.clock_file)
        if today is None or day > today:
            set_today(self.clock_file, day)
            today = day
        limit = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC).timestamp()
        return math.ceil(self.cursor), int(limit) - 3600

    def advance(self, kind: str, result: dict[str, Any]) -> None:
        """After a run: continue after its last timestamp; remember its rate."""
        last = max((t.get("last_ts") or 0 for t in result["threads"]), default=0)
        self.cursor = max(self.cursor, last + self.step)
        self.best[kind] = max(self.best.get(kind, 0.0), result["rows_per_s"])


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].split(" Copyright")[0].strip() if text else "unknown"


def run_wrk(
    cfg: Config,
    server: Server,
    script: str,
    env_extra: dict[str, str],
    seconds: float,
    rows_per_request: int,
    logs: Path,
    tag: str,
) -> dict[str, Any]:
    """One wrk run against ``server``; the script's JSON summary plus CPU figures of both sides."""
    cmd = ["wrk", "-t", str(cfg.threads), "-c", str(cfg.connections), "-d", f"{seconds:g}s"]
    cmd += ["--timeout", f"{cfg.timeout_s:g}s", "-s", str(WRK_DIR / script), server.url]
    env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR), "BENCH_THREADS": str(cfg.threads), **env_extra}
    before_wrk = waited_children_cpu_seconds()
    before_server = tree_cpu_seconds(server.proc.pid)
    before_busy = busy_cpu_seconds()
    start = time.perf_counter()
    out = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=pinned(core_or_none(cfg.load_cpu)),
    )
    wall = time.perf_counter() - start
    busy = {k: v - before_busy.get(k, 0.0) for k, v in busy_cpu_seconds().items()}
    server_cpu = tree_cpu_seconds(server.proc.pid) - before_server
    wrk_cpu = waited_children_cpu_seconds() - before_wrk
    (logs / f"wrk-{tag}.log").write_text(f"$ {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    raw = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    result = summarise_run(raw, rows_per_request, wall, wrk_cpu, server_cpu)
    # whatever else ran on the machine meanwhile (other processes compete for the same cores)
    result["other_cpu_pct"] = 100 * max(0.0, busy.get("cpu", 0.0) - server_cpu - wrk_cpu) / wall
    result["core_busy_pct"] = {k: round(100 * v / wall, 1) for k, v in busy.items() if k != "cpu"}
    # others on the servers' core take time from the server measured (those on wrk's core do not)
    server_core = busy.get(f"cpu{cfg.server_cpu}")
    result["other_on_server_core_pct"] = (
        100 * max(0.0, server_core - server_cpu) / wall if server_core is not None else None
    )
    result["loadavg_1m_after"] = os.getloadavg()[0]
    return result


def summarise_run(
    raw: dict[str, Any], rows_per_request: int, wall: float, wrk_cpu: float, server_cpu: float
) -> dict[str, Any]:
    """Requests/s, rows/s, latency in ms, errors by kind, CPU use of wrk and of the server."""
    seconds = raw["duration_us"] / 1e6
    threads = list(raw["threads"].values()) if isinstance(raw["threads"], dict) else raw["threads"]
    statuses: dict[str, int] = {}
    versions: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for t in threads:
        for key, n in (t.get("statuses") or {}).items():
            statuses[key] = statuses.get(key, 0) + int(n)
        for key, n in (t.get("versions") or {}).items():
            versions[key] = versions.get(key, 0) + int(n)
        for key, ts in (t.get("first_seen") or {}).items():
            first_seen[key] = min(first_seen.get(key, ts), ts)
    errors = {k: int(v) for k, v in raw["errors"].items()}
    socket_errors = sum(errors[k] for k in ("connect", "read", "write", "timeout"))
    non_2xx = sum(n for s, n in statuses.items() if not 200 <= int(s) < 300) if statuses else errors["status"]
    ok = sum(n for s, n in statuses.items() if 200 <= int(s) < 300) if statuses else raw["requests"] - non_2xx
    lat = raw["latency_us"]
    return {
        "seconds": seconds,
        "requests": raw["requests"],
        "ok_requests": ok,
        "requests_per_s": raw["requests"] / seconds,
        "rows_per_s": ok * rows_per_request / seconds,
        "rows_per_request": rows_per_request,
        "latency_ms": {k: (v / 1000 if v is not None else None) for k, v in lat.items()},
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "errors": errors,
        "statuses": statuses,
        "versions": versions,
        "first_seen_epoch": first_seen,
        "first_error": next((t["first_error"] for t in threads if t.get("first_error")), ""),
        "clamped_rows": sum(int(t.get("clamped") or 0) for t in threads),
        "threads": [{"last_ts": t.get("last_ts"), "rows": t.get("rows")} for t in threads],
        "wall_s": wall,
        "wrk_cpu_s": wrk_cpu,
        "wrk_cpu_pct": 100 * wrk_cpu / wall,
        "server_cpu_s": server_cpu,
        "server_cpu_pct": 100 * server_cpu / wall,
        "bytes": raw["bytes"],
    }


@dataclass
class Bench:
    """Everything a run needs: config, project, both servers, the timeline, where logs go."""

    cfg: Config
    project: Project
    servers: dict[str, Server]
    timeline: Timeline
    logs: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0

    def load(
        self, target: str, kind: str, seconds: float, phase: str, count_versions: bool = False
    ) -> dict[str, Any]:
        """One wrk run of ``kind`` (single or batch) against ``target``; recorded in ``runs``."""
        self.counter += 1
        tag = f"{self.counter:02d}-{phase.replace(' ', '')}-{target}-{kind}"
        rows = 1 if kind == "single" else self.cfg.batch_rows
        if target != "mlflow":  # our API, in-process or on Redis: raw transactions on the timeline
            start_ts, max_ts = self.timeline.plan(kind, seconds)
            env = {
                "BENCH_MODE": kind,
                "BENCH_BATCH_ROWS": str(rows),
                "BENCH_START_TS": str(start_ts),
                "BENCH_STEP_S": repr(self.project.step_s),
                "BENCH_MAX_TS": str(max_ts),
                "BENCH_RUN_TAG": f"b{self.counter}",
                "BENCH_POOL": str(self.project.pool),
                "BENCH_COUNT_VERSIONS": "1" if count_versions else "0",
            }
            script = "score.lua"
        else:
            bodies = self.project.mlflow_single if kind == "single" else self.project.mlflow_batch
            env = {"BENCH_BODIES": str(bodies), "BENCH_ROWS": str(rows)}
            script = "invocations.lua"
        result = run_wrk(self.cfg, self.servers[target], script, env, seconds, rows, self.logs, tag)
        if target != "mlflow":
            self.timeline.advance(kind, result)
            last = max((t.get("last_ts") or 0 for t in result["threads"]), default=0)
            result["tx_datetime_range"] = [
                dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() for ts in (int(env["BENCH_START_TS"]), last)
            ]
        result |= {"target": target, "kind": kind, "phase": phase}
        self.runs.append(result)
        lat = result["latency_ms"]
        bad = result["non_2xx"] + result["socket_errors"]
        console.print(
            f"  {phase:<7} {target:<6} {kind:<7} {result['requests_per_s']:>9,.1f} req/s "
            f"{result['rows_per_s']:>10,.0f} rows/s  p50 {lat['p50']:>8.2f} ms  p99 {lat['p99']:>8.2f} ms  "
            f"errors {bad}  CPU: server {result['server_cpu_pct']:.0f}%, wrk {result['wrk_cpu_pct']:.0f}%, "
            f"others {result['other_cpu_pct']:.0f}% ({result['other_on_server_core_pct'] or 0:.0f}% on the servers' core)"
            + (f"  [red]{result['first_error'][:120]}[/]" if result["first_error"] else "")
            + (
                f"  [yellow]{result['clamped_rows']:,} timestamps clamped[/]"
                if result["clamped_rows"]
                else ""
            )
        )
        return result


def alternate(bench: Bench, group: str) -> None:
    """Warm-up of each arm of ``group`` (:data:`ARMS`), then rounds alternating them: ours, mlflow,
    ours, mlflow, ..."""
    cfg = bench.cfg
    arms = [
        (t, k)
        for t, k in (REDIS_ARMS if cfg.against == "redis" else ARMS)[group]
        if k != "columns" or cfg.columns
    ]
    if cfg.warmup_seconds > 0:
        for target, kind in arms:
            bench.load(target, kind, cfg.warmup_seconds, "warm-up")
    for r in range(cfg.rounds):
        for target, kind in arms:
            bench.load(target, kind, cfg.seconds, f"round {r + 1}")


# --------------------------------------------------------------------------- swap under load


def register_copy(project: Project) -> str:
    """Register the original champion's model again as a new version with the same tags."""
    from core.registry import registry_client

    client = registry_client(project.tracking_uri)
    mv = client.get_model_version(project.model_name, project.champion)
    new = client.create_model_version(
        project.model_name,
        source=mv.source,
        run_id=mv.run_id,
        tags=dict(mv.tags),
        model_id=getattr(mv, "model_id", None),
    )
    return str(new.version)


def swap_under_load(bench: Bench) -> dict[str, Any]:
    """Load /v1/score for swap_seconds while the champion moves to new versions and /admin/reload runs."""
    import httpx

    from core.registry import CHAMPION, registry_client

    cfg, project = bench.cfg, bench.project
    url = bench.servers["ours"].url
    events: list[dict[str, Any]] = []
    started = threading.Event()

    def swapper() -> None:
        started.wait()
        t0 = time.monotonic()
        client = registry_client(project.tracking_uri)
        for k in range(1, cfg.swaps + 1):
            time.sleep(max(0.0, t0 + k * cfg.swap_seconds / (cfg.swaps + 1) - time.monotonic()))
            event: dict[str, Any] = {"at_s": round(time.monotonic() - t0, 2)}
            try:
                t = time.perf_counter()
                version = register_copy(project)
                client.set_registered_model_alias(project.model_name, CHAMPION, version)
                event |= {"version": version, "register_s": round(time.perf_counter() - t, 3)}
                t = time.perf_counter()
                resp = httpx.post(
                    f"{url}/admin/reload", headers={"X-API-Key": project.admin_key}, timeout=120
                )
                event |= {
                    "reload_s": round(time.perf_counter() - t, 3),
                    "reload_status": resp.status_code,
                    "reload_body": resp.json()
                    if resp.headers.get("content-type", "").startswith("application/json")
                    else resp.text[:200],
                }
            except Exception as exc:  # reported, never fatal: the figures say what happened
                event["error"] = f"{type(exc).__name__}: {exc}"
            events.append(event)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    start_epoch = time.time()
    started.set()
    result = bench.load("ours", "single", cfg.swap_seconds, "swap", count_versions=True)
    thread.join(timeout=120)
    served = httpx.get(f"{url}/v1/metadata", timeout=10).json().get("version")
    return {
        "seconds": cfg.swap_seconds,
        "requests": result["requests"],
        "failed_requests": result["non_2xx"] + result["socket_errors"],
        "statuses": result["statuses"],
        "versions_answered": result["versions"],
        "version_first_seen_s": {
            v: round(ts - start_epoch) for v, ts in sorted(result["first_seen_epoch"].items())
        },
        "reloads": events,
        "served_after": served,
        "requests_per_s": result["requests_per_s"],
        "latency_ms": result["latency_ms"],
    }


# --------------------------------------------------------------------------- report


def median_of(runs: list[dict[str, Any]], key: str, sub: str | None = None) -> float:
    values = [r[key][sub] if sub else r[key] for r in runs]
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else float("nan")


def summarise_rounds(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per kind and target: medians over the measured rounds (warm-ups left out)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in ("single", "batch", "columns"):
        for target in TARGETS:
            rounds = [
                r
                for r in runs
                if r["kind"] == kind and r["target"] == target and r["phase"].startswith("round")
            ]
            if not rounds:
                continue
            out.setdefault(kind, {})[target] = {
                "rounds": len(rounds),
                "requests_per_s": median_of(rounds, "requests_per_s"),
                "requests_per_s_rounds": [round(r["requests_per_s"], 1) for r in rounds],
                "rows_per_s": median_of(rounds, "rows_per_s"),
                "p50_ms": median_of(rounds, "latency_ms", "p50"),
                "p99_ms": median_of(rounds, "latency_ms", "p99"),
                "errors": sum(r["non_2xx"] + r["socket_errors"] for r in rounds),
                "server_cpu_pct": median_of(rounds, "server_cpu_pct"),
                "wrk_cpu_pct": median_of(rounds, "wrk_cpu_pct"),
                "other_cpu_pct": median_of(rounds, "other_cpu_pct"),
                "clamped_rows": sum(r["clamped_rows"] for r in rounds),
            }
    return out


def goal(name: str, measured: float, target: float, unit: str, met: bool) -> dict[str, Any]:
    return {"goal": name, "measured": measured, "target": target, "unit": unit, "met": met}


def goals(summary: dict[str, dict[str, dict[str, Any]]], swap: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each goal with its measured value and whether it is met."""
    rows: list[dict[str, Any]] = []
    single, batch, columns = (summary.get(kind, {}) for kind in ("single", "batch", "columns"))
    if "ours" in single and "mlflow" in single:
        o, m = single["ours"], single["mlflow"]
        ratio, p99 = o["requests_per_s"] / m["requests_per_s"], o["p99_ms"] / m["p99_ms"]
        rps_goal, p99_goal = GOALS["single_rps_ratio"], GOALS["single_p99_ratio"]
        rows.append(goal("single: ours req/s ≥ 15× mlflow's", ratio, rps_goal, "×", ratio >= rps_goal))
        rows.append(goal("single: ours p99 ≤ a tenth of mlflow's", p99, p99_goal, "×", p99 <= p99_goal))
        rows.append(goal("single: zero errors (ours)", o["errors"], 0, "", o["errors"] == 0))
    mlflow_batch = batch.get("mlflow")
    for label, ours in (("batch as rows", batch.get("ours")), ("batch as columns", columns.get("ours"))):
        if ours is None or mlflow_batch is None:
            continue
        ratio = ours["rows_per_s"] / mlflow_batch["rows_per_s"]
        target = GOALS["batch_rows_ratio"]
        rows.append(goal(f"{label}: ours rows/s ≥ 1.5× mlflow's", ratio, target, "×", ratio >= target))
        rows.append(goal(f"{label}: zero errors (ours)", ours["errors"], 0, "", ours["errors"] == 0))
    for kind, label in (("single", "single"), ("batch", "batch as rows"), ("columns", "batch as columns")):
        local = summary.get(kind, {}).get("ours")
        for arm, name in (("redis", "on Redis"), ("replicas", "2 replicas on Redis behind nginx")):
            shared = summary.get(kind, {}).get(arm)
            if local is None or shared is None:
                continue  # informational: the state in Redis costs a round trip or two per request
            ratio = shared["rows_per_s"] / local["rows_per_s"]
            rows.append(goal(f"{label}: {name} rows/s / in-process (informational)", ratio, 0, "×", True))
            rows.append(
                goal(f"{label}: zero errors ({name})", shared["errors"], 0, "", shared["errors"] == 0)
            )
    if swap is not None:
        failed = swap["failed_requests"]
        rows.append(goal("swap under load: zero failed requests", failed, 0, "", failed == 0))
    return rows


def print_report(report: dict[str, Any]) -> None:
    cfg, summary = report["config"], report["summary"]
    table = Table(
        title=f"Serving throughput — {report['date']} — {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores — medians of {cfg['rounds']} × {cfg['seconds']:g} s rounds, "
        f"wrk {cfg['connections']} connections × {cfg['threads']} thread(s)"
    )
    table.add_column("requests")
    table.add_column("target")
    for col in (
        "req/s (rounds)",
        "rows/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU",
        "wrk CPU",
        "others' CPU",
    ):
        table.add_column(col, justify="right")
    for kind, label in (
        ("single", "1 transaction"),
        ("batch", f"{cfg['batch_rows']:,}-row batches"),
        ("columns", f"{cfg['batch_rows']:,}-row batches as columns"),
    ):
        for target, s in summary.get(kind, {}).items():
            table.add_row(
                label,
                target,
                f"{s['requests_per_s']:,.1f} ({', '.join(f'{v:,.0f}' for v in s['requests_per_s_rounds'])})",
                f"{s['rows_per_s']:,.0f}",
                f"{s['p50_ms']:.2f}",
                f"{s['p99_ms']:.2f}",
                str(s["errors"]),
                f"{s['server_cpu_pct']:.0f}%",
                f"{s['wrk_cpu_pct']:.0f}%",
                f"{s['other_cpu_pct']:.0f}%",
            )
    console.print(table)
    other = "our API on Redis" if cfg.get("against") == "redis" else "mlflow models serve"
    verdicts = Table(title=f"Goals (ours against {other}, same machine, same run)")
    for col in ("goal", "measured", "target", "met"):
        verdicts.add_column(col)
    for g in report["goals"]:
        measured = f"{g['measured']:.3g}{g['unit']}" if g["unit"] else str(g["measured"])
        target = f"{g['target']:g}{g['unit']}" if g["unit"] else str(g["target"])
        verdicts.add_row(g["goal"], measured, target, "[green]yes[/]" if g["met"] else "[red]no[/]")
    console.print(verdicts)
    swap = report.get("swap")
    if swap:
        reloads = ", ".join(
            f"v{e.get('version', '?')} at {e['at_s']:.0f} s (reload {e.get('reload_s', float('nan')):.2f} s, "
            f"HTTP {e.get('reload_status', e.get('error', '?'))})"
            for e in swap["reloads"]
        )
        console.print(
            f"swap under load ({swap['seconds']:g} s, {swap['requests']:,} requests, "
            f"{swap['requests_per_s']:,.1f} req/s, p99 {swap['latency_ms']['p99']:.1f} ms): "
            f"failed requests {swap['failed_requests']}; versions that answered "
            f"{swap['versions_answered']}; reloads: {reloads}; serving v{swap['served_after']} afterwards"
        )
    measured_runs = [r for r in report["runs"] if r["phase"] != "warm-up"]
    others = [r["other_cpu_pct"] for r in measured_runs]
    on_core = [r["other_on_server_core_pct"] or 0.0 for r in measured_runs]
    if others and max(others) > 10:
        console.print(
            f"[yellow]other processes used up to {max(others):.0f}% of a core during the measured runs "
            f"(up to {max(on_core):.0f}% on the servers' core): the figures are noisy; "
            "measure on an otherwise idle machine[/]"
        )
    for name, s in report["servers"].items():
        clean = s["exit_code"] in (0, -signal.SIGTERM) and not s["killed"]
        console.print(
            f"{name}: exit code {s['exit_code']} ({'clean shutdown' if clean else '[red]not clean[/]'}), "
            f"peak RSS {s['peak_rss_mb']:,.0f} MB"
        )
    m = report["model"]
    console.print(
        f"model: {m['name']} v{m['version']}, HistGradientBoosting n_iter_ = {m['n_iter']}, "
        f"{len(m['features'])} features; project built in {report['project']['build_s']:.0f} s; "
        f"report: {report['out']}"
    )


# --------------------------------------------------------------------------- main


def run(cfg: Config, out: Path, keep: bool) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise typer.BadParameter("wrk is not installed: `apt-get install -y wrk` (make bench does it)")
    if cfg.connections < cfg.threads:
        raise typer.BadParameter("--connections must be at least --threads")
    started = time.perf_counter()
    with throwaway_folder("fraudops-bench-serving-", keep) as root:
        logs = root / "logs"
        logs.mkdir()
        project = build_project(cfg, root)
        console.print(f"project built in {project.build_s:.0f} s in {root}")
        pin_to_core(core_or_none(cfg.load_cpu))  # this process (idle during runs) off the servers' core
        servers: dict[str, Server] = {}
        prefix = f"bench-{secrets.token_hex(6)}"  # the Redis arm's keys, deleted afterwards
        code = describe_code()  # what the servers import: the working tree as it is now
        try:
            with console.status("starting both servers..."):
                servers["ours"] = start_ours(project, cfg, logs)
                if cfg.against == "redis":
                    servers["redis"] = start_ours_on_redis(project, cfg, logs, prefix)
                    second, lb = start_replicas_behind_nginx(project, cfg, logs, prefix, servers["redis"])
                    servers["redis-b"], servers["replicas"] = second, lb
                else:
                    servers["mlflow"] = start_mlflow(project, cfg, logs)
            bench = Bench(cfg, project, servers, Timeline(project), logs)
            if cfg.single:
                console.print("[bold]one transaction a request[/]")
                alternate(bench, "single")
            if cfg.batch:
                console.print(f"[bold]{cfg.batch_rows:,}-row batches[/]")
                alternate(bench, "batch")
            swap = None
            if cfg.swap and cfg.against == "mlflow":
                console.print(
                    f"[bold]swap under load[/] ({cfg.swaps} new versions in {cfg.swap_seconds:g} s)"
                )
                swap = swap_under_load(bench)
        finally:
            for server in servers.values():
                server.stop()
            if cfg.against == "redis":
                delete_redis_prefix(cfg.redis_url, prefix)
            if any(s.killed or s.exit_code not in (0, -signal.SIGTERM) for s in servers.values()):
                for server in servers.values():
                    console.print(
                        f"{server.name} exit code {server.exit_code}; log tail:\n{tail(server.log_path, 8)}"
                    )
        summary = summarise_rounds(bench.runs)
        report: dict[str, Any] = {
            "date": dt.date.today().isoformat(),
            "command": "python -m benchmarks.serving " + " ".join(sys.argv[1:]),
            "machine": describe_machine(PACKAGES) | {"wrk": wrk_version()},
            "config": cfg.__dict__,
            "model": {
                "name": project.model_name,
                "version": project.champion,
                "n_iter": project.n_iter,
                "threshold": project.threshold,
                "features": project.features,
                "data_version": project.data_version,
            },
            "project": {
                "customers": cfg.customers,
                "terminals": cfg.terminals,
                "history_days": cfg.history_days,
                "history_rows": project.history_rows,
                "simulated_s_per_transaction": project.step_s,
                "build_s": project.build_s,
            },
            "servers": {
                name: {"exit_code": s.exit_code, "killed": s.killed, "peak_rss_mb": round(s.peak_rss_mb, 1)}
                for name, s in servers.items()
            },
            "code": code,
            "summary": summary,
            "goals": goals(summary, swap),
            "swap": swap,
            "runs": bench.runs,
            "seconds_total": time.perf_counter() - started,
            "out": str(out),
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print_report(report)
    return report


@app.command()
def main(
    seconds: Annotated[float, typer.Option(min=1, help="Seconds of each measured round.")] = 15.0,
    warmup: Annotated[
        float, typer.Option(min=0, help="Seconds of warm-up per target and kind (0: none).")
    ] = 3.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds per target and kind, alternating.")] = 2,
    swap_seconds: Annotated[float, typer.Option(min=1, help="Seconds of load while the model swaps.")] = 30.0,
    swaps: Annotated[int, typer.Option(min=1, help="New champion versions during the swap run.")] = 3,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections.")] = 8,
    threads: Annotated[int, typer.Option(min=1, max=2, help="wrk threads.")] = 1,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows a batch request.")] = 1000,
    customers: Annotated[int, typer.Option(min=50, help="Customers in the simulated world.")] = 2000,
    terminals: Annotated[int, typer.Option(min=100, help="Terminals in the simulated world.")] = 4000,
    history_days: Annotated[int, typer.Option(min=60, help="Days of history to train on.")] = 84,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 7,
    timeout: Annotated[float, typer.Option(min=1, help="wrk request timeout in seconds.")] = 30.0,
    server_cpu: Annotated[int, typer.Option(help="Core both servers are pinned to (-1: no pinning).")] = 0,
    load_cpu: Annotated[int, typer.Option(help="Core wrk is pinned to (-1: no pinning).")] = 1,
    mlflow_access_log: Annotated[
        bool, typer.Option(help="Leave mlflow's uvicorn access log on (ours runs without one).")
    ] = False,
    reload_interval: Annotated[
        float, typer.Option(min=0, help="Our API's registry poll interval (0: only /admin/reload swaps).")
    ] = 0.0,
    single: Annotated[bool, typer.Option(help="Run the one-transaction rounds.")] = True,
    batch: Annotated[bool, typer.Option(help="Run the batch rounds.")] = True,
    columns: Annotated[
        bool, typer.Option(help="In the batch rounds, also send our API the batches as columns.")
    ] = True,
    swap: Annotated[bool, typer.Option(help="Run the swap under load (against mlflow only).")] = True,
    against: Annotated[
        str,
        typer.Option(
            help="The other arm: `mlflow` (mlflow models serve, precomputed features) or `redis` (our API "
            "with its feature state in Redis, team mode, against the same API with it in the process)."
        ),
    ] = "mlflow",
    redis_url: Annotated[
        str, typer.Option(help="The Redis of `--against redis` (its keys go under a prefix of the run's).")
    ] = "redis://127.0.0.1:6379/0",
    out: Annotated[
        Path | None,
        typer.Option(
            help="JSON report (default reports/bench_serving.json, _redis.json with --against redis)."
        ),
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the temporary project and the logs.")] = False,
) -> None:
    """Our scoring API against `mlflow models serve` on the same champion: throughput, latency, swap."""
    cfg = Config(
        seconds=seconds,
        warmup_seconds=warmup,
        rounds=rounds,
        swap_seconds=swap_seconds,
        swaps=swaps,
        connections=connections,
        threads=threads,
        batch_rows=batch_rows,
        customers=customers,
        terminals=terminals,
        history_days=history_days,
        seed=seed,
        timeout_s=timeout,
        server_cpu=server_cpu,
        load_cpu=load_cpu,
        mlflow_access_log=mlflow_access_log,
        reload_interval_s=reload_interval,
        single=single,
        batch=batch,
        columns=columns,
        swap=swap,
        against=against,
        redis_url=redis_url,
    )
    if against not in ("mlflow", "redis"):
        raise typer.BadParameter(f"--against is `mlflow` or `redis`, not {against!r}")
    name = "bench_serving_redis.json" if against == "redis" else "bench_serving.json"
    run(cfg, out or ROOT / "reports" / name, keep)


if __name__ == "__main__":
    app()
