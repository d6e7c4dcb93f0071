"""`make docker-check`: build the images, run the compose workshop, check its end state, remove it.

    python deploy/docker_check.py [--stand-ins | --public] [--keep] [--shots DIR]

1. Base images: the public ones (python:3.11-slim, postgres:16, redis:7, nginx:1.27) when they can be pulled, else the
   stand-ins deploy/images/build-stand-ins.sh builds from Debian packages (``--stand-ins`` forces them).
2. Build ``fraudops:local`` with BuildKit (``DOCKER_BUILDKIT=1 docker build``: docker-compose 1.29
   cannot build with it), then ``compose up -d --no-build`` under the project name ``fraudops-check``.
3. Wait for the one-shot ``demo`` service to finish, then check the end state through the servers'
   own APIs: a champion promoted by retraining in the MLflow registry, completed ingest, training and
   monitoring flow runs in Prefect, the API's ``/v1/metadata`` serving that champion, an Evidently
   report on the workspace volume. Then the worker: a run of the `fraudops` work pool's
   ``monitor/scheduled`` deployment, asked for through the Prefect API, completed by the ``worker``
   service. Then the ``scale`` profile (``--profile scale up --scale replica=2``): transactions sent
   through nginx are scored by both replicas, which share Redis and the PostgreSQL log.
4. ``compose up`` a second time on the same volumes: setup and demo find their work done and exit 0.
5. ``compose down -v``, then check that no container, volume or network of the project is left.

``--shots DIR`` also shoots the MLflow registry and the Prefect flow runs of the stack in headless
chromium (``make browser``) into DIR, as the Deployment page shows them (``docs/images``).

Works with Compose v2 (``docker compose``) and docker-compose 1.29. Prints a table of the steps with
their durations and the image sizes; exits 1 with what failed and the logs to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "fraudops-check"
STAND_INS = ROOT / "deploy" / "images" / "stand-ins.env"
PUBLIC = {
    "PYTHON_IMAGE": "python:3.11-slim",
    "POSTGRES_IMAGE": "postgres:16",
    "REDIS_IMAGE": "redis:7",
    "NGINX_IMAGE": "nginx:1.27",
}
MLFLOW, PREFECT, API = "http://127.0.0.1:5000", "http://127.0.0.1:4200/api", "http://127.0.0.1:8000"
LB, REPLICAS, SCALE_TIMEOUT_S = "http://127.0.0.1:8080", 2, 300.0  # the `scale` profile
MODEL = "fraud-detector"
DEMO_TIMEOUT_S = 1800.0
FLOWS = ("ingest", "train", "monitor", "retrain")  # flows whose runs must have completed
WORK_POOL, WORKER_TIMEOUT_S = "fraudops", 300.0


class CheckFailed(Exception):
    pass


@dataclass
class Report:
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def step(self, name: str, since: float, result: str) -> None:
        self.steps.append((name, time.monotonic() - since, result))
        print(f"  ✓ {name} ({time.monotonic() - since:.0f} s): {result}", flush=True)

    def table(self) -> str:
        width = max(len(name) for name, _, _ in self.steps)
        lines = [f"{'step':<{width}}  {'seconds':>7}  result", "-" * (width + 40)]
        lines += [f"{name:<{width}}  {secs:7.0f}  {result}" for name, secs, result in self.steps]
        lines.append(f"{'total':<{width}}  {time.monotonic() - self.started:7.0f}")
        return "\n".join(lines)


def docker_client() -> str:
    """A docker client that builds with BuildKit: one with buildx, else Debian's /usr/bin/docker."""
    found = shutil.which("docker")
    if found and run([found, "buildx", "version"], check=False, quiet=True).returncode == 0:
        return found
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    if found:
        return found
    raise CheckFailed("no docker client: install Docker (e.g. `apt-get install docker.io`), start dockerd")


def compose_command(docker: str) -> list[str]:
    """Compose v2 (``docker compose``) where it exists, else docker-compose 1.29."""
    if run([docker, "compose", "version"], check=False, quiet=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise CheckFailed("neither `docker compose` nor `docker-compose` is installed")


def run(
    cmd: list[str], check: bool = True, quiet: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if not quiet:
        print(f"$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, text=True, capture_output=quiet, check=False
    )
    if check and proc.returncode != 0:
        raise CheckFailed(f"`{' '.join(cmd)}` exited with {proc.returncode}")
    return proc


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def base_images(docker: str, mode: str) -> dict[str, str]:
    """The public base images when pullable (or ``--public``), else the Debian stand-ins."""
    if mode != "stand-ins":
        pulled = all(
            run([docker, "image", "inspect", image], check=False, quiet=True).returncode == 0
            or run([docker, "pull", "-q", image], check=False, quiet=True).returncode == 0
            for image in PUBLIC.values()
        )
        if pulled or mode == "public":
            return dict(PUBLIC)
        print("public base images cannot be pulled here: using the Debian stand-ins", flush=True)
    images = read_env_file(STAND_INS) if STAND_INS.exists() else {}
    if not images or any(
        run([docker, "image", "inspect", image], check=False, quiet=True).returncode
        for image in images.values()
    ):
        run(["bash", str(ROOT / "deploy" / "images" / "build-stand-ins.sh")], env={"DOCKER": docker})
        images = read_env_file(STAND_INS)
    return images


def http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as resp:
        return json.loads(resp.read())


def container_id(compose: list[str], env: dict[str, str], service: str) -> str:
    out = run([*compose, "-p", PROJECT, "ps", "-q", service], quiet=True, env=env).stdout.strip()
    if not out:
        raise CheckFailed(f"no {service} container: `{' '.join(compose)} -p {PROJECT} ps` shows why")
    return out.splitlines()[0]


def wait_for_exit(docker: str, cid: str, timeout_s: float) -> int:
    """The container's exit code, waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = json.loads(run([docker, "inspect", cid], quiet=True).stdout)[0]["State"]
        if state["Status"] == "exited":
            return int(state["ExitCode"])
        time.sleep(5)
    raise CheckFailed(f"the demo did not finish within {timeout_s:.0f} s")


def check_end_state(compose: list[str], env: dict[str, str]) -> dict[str, str]:
    """What the servers say after the demo: registry, flow runs, the API, the reports."""
    try:
        alias = http_json(f"{MLFLOW}/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion")
    except urllib.error.HTTPError as exc:
        raise CheckFailed(f"MLflow has no champion for {MODEL}: HTTP {exc.code}") from None
    champion = str(alias["model_version"]["version"])
    if champion == "1":
        raise CheckFailed("the champion is still version 1: the demo's retraining was not promoted")

    flows = {f["id"]: f["name"] for f in http_json(f"{PREFECT}/flows/filter", {})}
    runs = http_json(
        f"{PREFECT}/flow_runs/filter",
        {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 200},
    )
    completed: dict[str, int] = {}
    for flow_run in runs:
        name = flows.get(flow_run["flow_id"], "?")
        completed[name] = completed.get(name, 0) + 1
    missing = [flow for flow in FLOWS if flow not in completed]
    if missing:
        raise CheckFailed(f"no completed {', '.join(missing)} flow run in Prefect (completed: {completed})")

    served = http_json(f"{API}/v1/metadata")
    if str(served["version"]) != champion:
        raise CheckFailed(
            f"the API serves version {served['version']}, the registry's champion is {champion}"
        )

    # an Evidently data-drift report states its verdict in the embedded report data
    find = (
        "import pathlib; print('\\n'.join(str(p) for p in pathlib.Path('/workspace/reports').rglob('*.html')"
        " if 'Dataset Drift' in p.read_text(errors='replace')))"
    )
    out = run([*compose, "-p", PROJECT, "exec", "-T", "api", "python", "-c", find], quiet=True, env=env)
    reports = [line for line in out.stdout.splitlines() if line.strip()]
    if not reports:
        raise CheckFailed("no Evidently report under /workspace/reports on the workspace volume")
    return {
        "champion": champion,
        "flow runs": ", ".join(f"{name} {n}" for name, n in sorted(completed.items())),
        "served": f"{served['name']} v{served['version']}",
        "reports": f"{len(reports)} Evidently HTML, e.g. {reports[0]}",
    }


def check_worker(timeout_s: float = WORKER_TIMEOUT_S) -> str:
    """The compose worker runs flows from the `fraudops` work pool: ask for a monitoring run (no
    retraining) of the pool's deployment and wait for the worker to complete it."""
    pool = http_json(f"{PREFECT}/work_pools/{WORK_POOL}")
    try:
        deployment = http_json(f"{PREFECT}/deployments/name/monitor/scheduled")
    except urllib.error.HTTPError as exc:
        raise CheckFailed(
            f"no monitor/scheduled deployment in Prefect (HTTP {exc.code}): worker logs"
        ) from None
    if deployment["work_pool_name"] != WORK_POOL:
        raise CheckFailed(f"monitor/scheduled is on pool {deployment['work_pool_name']!r}, not {WORK_POOL!r}")
    since = time.monotonic()
    flow_run = http_json(
        f"{PREFECT}/deployments/{deployment['id']}/create_flow_run", {"parameters": {"retrain": False}}
    )
    deadline = since + timeout_s
    while time.monotonic() < deadline:
        state = http_json(f"{PREFECT}/flow_runs/{flow_run['id']}")["state"]
        if state["type"] == "COMPLETED":
            return f"pool {WORK_POOL} ({pool['type']}, {pool['status']}): monitor/scheduled run {flow_run['name']} completed in {time.monotonic() - since:.0f} s"
        if state["type"] in ("FAILED", "CRASHED", "CANCELLED"):
            raise CheckFailed(f"the worker's monitoring run ended {state['type']}: {state.get('message')}")
        time.sleep(3)
    raise CheckFailed(f"no worker completed a monitor/scheduled run within {timeout_s:.0f} s: worker logs")


def replica_scores(docker: str, cid: str) -> float:
    """Transactions a replica scored, from its /metrics (inside its container: no port is published)."""
    probe = (
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics', timeout=5)"
        ".read().decode())"
    )
    metrics = run([docker, "exec", cid, "python", "-c", probe], quiet=True).stdout
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("fraudops_decisions_total")
    )


def check_scale(compose: list[str], env: dict[str, str], docker: str) -> str:
    """The `scale` profile: REPLICAS API replicas on Redis and PostgreSQL behind nginx. Transactions of
    a few cards sent through the load balancer are scored by every replica; an id scored by one replica
    and sent again with another amount is refused (409) by whichever replica gets it, since the state
    they share holds it; the log is in the `predictions` database."""
    scale = [*compose, "-p", PROJECT, "--profile", "scale"]
    run([*scale, "up", "-d", "--no-build", "--scale", f"replica={REPLICAS}"], env=env)
    deadline = time.monotonic() + SCALE_TIMEOUT_S
    while True:
        try:
            if http_json(f"{LB}/health/ready"):
                break
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            raise CheckFailed(f"nothing ready behind the load balancer {LB} within {SCALE_TIMEOUT_S:.0f} s")
        time.sleep(3)
    replicas = run([*scale, "ps", "-q", "replica"], quiet=True, env=env).stdout.split()
    if len(replicas) != REPLICAS:
        raise CheckFailed(f"{len(replicas)} replica containers, not {REPLICAS}")
    before = [replica_scores(docker, cid) for cid in replicas]
    sent, bodies = 40, list[dict[str, Any]]()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    for i in range(sent):
        customer = 900_000 + i % 4  # four new cards, ten transactions each, alternating
        body: dict[str, Any] = {
            "transaction_id": f"scale-check-{i}",
            "tx_datetime": f"{yesterday}T{10 + i // 4 % 10:02d}:00:00Z",  # the API refuses the future
            "customer_id": customer,
            "terminal_id": 1,
            "tx_amount": 10.0 + i,
        }
        http_json(f"{LB}/v1/score", body)
        if i < 4:
            bodies.append(body)
    served = [replica_scores(docker, cid) - b for cid, b in zip(replicas, before, strict=True)]
    if sum(served) != sent or min(served) == 0:
        raise CheckFailed(f"the replicas scored {served} of {sent} transactions: nginx did not spread them")
    refused = 0
    for body in bodies:  # round robin: these reach both replicas
        try:
            http_json(f"{LB}/v1/score", {**body, "tx_amount": body["tx_amount"] + 1})
        except urllib.error.HTTPError as exc:
            refused += exc.code == 409
    if refused != len(bodies):
        raise CheckFailed(
            f"{refused} of {len(bodies)} changed transactions under used ids refused: state not shared"
        )
    redis_id = run([*scale, "ps", "-q", "redis"], quiet=True, env=env).stdout.strip()
    keys = run([docker, "exec", redis_id, "redis-cli", "dbsize"], quiet=True).stdout.strip()
    pg_id = container_id(compose, env, "postgres")
    logged = run(
        [
            docker,
            "exec",
            pg_id,
            "psql",
            "-U",
            "fraudops",
            "-d",
            "predictions",
            "-tAc",
            "SELECT sum(rows) FROM batches",
        ],
        quiet=True,
    ).stdout.strip()
    if not logged or int(logged) < sent:
        raise CheckFailed(f"the predictions database holds {logged or 0} scored rows, not {sent}")
    return (
        f"{REPLICAS} replicas behind nginx scored {'/'.join(f'{n:.0f}' for n in served)} of {sent}; "
        f"{refused}/{len(bodies)} used ids refused across replicas; "
        f"Redis {keys} keys; PostgreSQL log {logged} rows"
    )


def take_shots(out_dir: Path) -> str:
    """The registered model (version 2 champion) and the flow runs, as an attendee opens them."""
    from fraudops.browser import headless_chromium
    from fraudops.screenshots import VIEWPORT, mlflow_classic_view, shoot
    from pipelines.tracking import EXPERIMENT

    experiment = http_json(f"{MLFLOW}/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = [out_dir / "compose-mlflow-registry.png", out_dir / "compose-prefect-runs.png"]
    with headless_chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        mlflow_classic_view(page, f"{MLFLOW}/#/experiments/{experiment['experiment']['experiment_id']}/runs")
        shoot(page, f"{MLFLOW}/#/models/{MODEL}", "Version 2", shots[0])
        shoot(page, f"{PREFECT.removesuffix('/api')}/runs", "retrain", shots[1])
    return ", ".join(str(shot) for shot in shots)


def leftovers(docker: str) -> list[str]:
    label = f"label=com.docker.compose.project={PROJECT}"
    found = []
    for kind in ("container", "volume", "network"):
        extra = ["-a"] if kind == "container" else []
        out = run([docker, kind, "ls", *extra, "-q", "--filter", label], quiet=True).stdout.split()
        found += [f"{kind} {name}" for name in out]
    return found


def image_size(docker: str, image: str) -> str:
    out = run([docker, "image", "inspect", "-f", "{{.Size}}", image], quiet=True, check=False).stdout.strip()
    return f"{int(out) / 1e9:.2f} GB" if out.isdigit() else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--stand-ins", action="store_const", const="stand-ins", dest="mode")
    group.add_argument("--public", action="store_const", const="public", dest="mode")
    parser.add_argument("--keep", action="store_true", help="leave the stack running (no down -v)")
    parser.add_argument("--shots", type=Path, help="also shoot the MLflow and Prefect UIs into this folder")
    args = parser.parse_args()
    report = Report()
    compose: list[str] = []
    env: dict[str, str] = {}
    try:
        docker = docker_client()
        compose = compose_command(docker)
        print(f"docker client {docker}; compose: {' '.join(compose)}", flush=True)
        if leftovers(docker):
            run([*compose, "-p", PROJECT, "down", "-v", "--remove-orphans"], check=False)

        since = time.monotonic()
        env = base_images(docker, args.mode or "auto")
        report.step("base images", since, ", ".join(env.values()))

        since = time.monotonic()
        run(
            [
                docker,
                "build",
                "-q",
                "--build-arg",
                f"PYTHON_IMAGE={env['PYTHON_IMAGE']}",
                "-t",
                "fraudops:local",
                ".",
            ],
            env={"DOCKER_BUILDKIT": "1"},
        )
        report.step("build fraudops:local", since, image_size(docker, "fraudops:local"))

        since = time.monotonic()
        run([*compose, "-p", PROJECT, "up", "-d", "--no-build"], env=env)
        code = wait_for_exit(docker, container_id(compose, env, "demo"), DEMO_TIMEOUT_S)
        run([*compose, "-p", PROJECT, "logs", "--no-color", "--tail", "60", "demo"], check=False, env=env)
        if code != 0:
            raise CheckFailed(f"the demo service exited with {code}")
        report.step("compose up: setup, api, demo", since, "demo exited 0")

        since = time.monotonic()
        state = check_end_state(compose, env)
        report.step("end state", since, "; ".join(f"{k}: {v}" for k, v in state.items()))
        if args.shots:
            since = time.monotonic()
            report.step("screenshots", since, take_shots(args.shots))

        since = time.monotonic()
        report.step("worker", since, check_worker())

        since = time.monotonic()
        report.step("scale profile", since, check_scale(compose, env, docker))

        since = time.monotonic()
        run([*compose, "-p", PROJECT, "up", "-d", "--no-build"], env=env)
        code = wait_for_exit(docker, container_id(compose, env, "demo"), 600)
        logs = run([*compose, "-p", PROJECT, "logs", "--no-color", "demo"], quiet=True, env=env).stdout
        if code != 0 or "already finished" not in logs:
            raise CheckFailed(f"a second `up` on the same volumes: the demo exited {code}")
        report.step("second compose up", since, "setup and demo found their work done")

        if not args.keep:
            since = time.monotonic()
            run([*compose, "-p", PROJECT, "--profile", "scale", "down", "-v", "--remove-orphans"], env=env)
            left = leftovers(docker)
            if left:
                raise CheckFailed(f"`down -v` left {', '.join(left)}")
            report.step("compose down -v", since, "no container, volume or network left")
    except CheckFailed as exc:
        print(f"\ndocker-check FAILED: {exc}", file=sys.stderr)
        if compose:
            print(
                f"logs: {' '.join(compose)} -p {PROJECT} logs <service>; remove: ... down -v", file=sys.stderr
            )
        print(report.table() if report.steps else "", file=sys.stderr)
        return 1
    print("\n" + report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
