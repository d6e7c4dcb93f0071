"""What faults lose: the prediction log's guarantee (:mod:`core.predlog`) measured on the real server.

``python -m benchmarks.faults`` (``make faults``; ``--help`` lists the sizes). Builds the serving
benchmark's throwaway project (:func:`benchmarks.serving.build_project`: a trained, promoted champion),
then runs ``fraudops serve`` (one uvicorn worker) while concurrent clients post ``/v1/score`` back to back,
each noting every acknowledged transaction id and the monotonic time its 200 arrived:

1. SIGKILL under load, repeated: after the kill the log is read; the acknowledged ids missing from it,
   and the age at the kill of the oldest missing one (the guarantee: at most 100 ms). The age is counted
   from the client's receipt of the 200, a little after the server sent it: a lower bound.
2. SIGTERM under load: the acknowledged ids missing (none promised), and the time from the signal to
   the process's exit.
3. A full store at stop: the log moved onto a small tmpfs (``mount``, as root; skipped with the reason
   otherwise) that is filled while the clients score; then SIGTERM. Scoring turns 503, the stop ends
   within ``FRAUDOPS_LOG_CLOSE_TIMEOUT_S`` plus uvicorn's own, and every acknowledged id is in the log
   or in the ``.unwritten-*.arrow`` file the server's error names.

Figures go to a rich table and ``reports/faults.json``; ``docs/faults.md`` quotes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.measure import core_or_none, describe_code, describe_machine, pin_to_core
from benchmarks.project import throwaway_folder
from benchmarks.serving import (
    BIN,
    Config,
    Project,
    Server,
    build_project,
    free_port,
    server_env,
    start_server,
    tail,
)

ROOT = Path(__file__).resolve().parents[1]
LOSS_WINDOW_MS = 100.0  # the guarantee under test (core.settings.PREDICTION_LOSS_WINDOW_S)
SAVED_MESSAGE = "rows were not written by the close deadline"

app = typer.Typer(add_completion=False)
console = Console()
if not console.is_terminal:
    console.width = 150


@dataclass
class Load:
    """What the clients saw: each acknowledged id with the monotonic time of its 200, and the rest."""

    acknowledged: dict[str, float] = field(default_factory=dict)
    unavailable: int = 0  # 503: refused, never acknowledged
    other: list[str] = field(default_factory=list)
    dropped: int = 0  # connections refused or cut once the server went away


class Traffic:
    """Distinct raw transactions: the project's pool of (customer, terminal, amount), one second apart
    from the end of the history on (the simulated clock is moved past them)."""

    def __init__(self, project: Project) -> None:
        self.rows = [line.split() for line in project.pool.read_text(encoding="utf-8").splitlines()]
        self.start = project.history_end_ts
        self.n = 0

    def next(self, prefix: str) -> dict[str, Any]:
        customer, terminal, amount = self.rows[self.n % len(self.rows)]
        when = dt.datetime.fromtimestamp(self.start + self.n, dt.UTC)
        self.n += 1
        return {
            "transaction_id": f"{prefix}-{self.n}",
            "tx_datetime": when.isoformat(),
            "customer_id": int(customer),
            "terminal_id": int(terminal),
            "tx_amount": float(amount),
        }


async def drive(
    url: str, traffic: Traffic, prefix: str, clients: int, stop: asyncio.Event, load: Load
) -> None:
    """``clients`` clients post one transaction at a time until ``stop`` or until the server goes away."""
    import httpx

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            while not stop.is_set():
                body = traffic.next(prefix)
                try:
                    response = await http.post("/v1/score", json=body)
                except httpx.TransportError:
                    load.dropped += 1
                    return
                if response.status_code == 200:
                    load.acknowledged[body["transaction_id"]] = time.monotonic()
                elif response.status_code == 503:
                    load.unavailable += 1
                else:
                    load.other.append(f"{response.status_code} {response.text[:120]}")

    await asyncio.gather(*(client() for _ in range(clients)))


def start(project: Project, cfg: Config, logs: Path, name: str, **env: str) -> Server:
    """``fraudops serve`` in the project, pinned to the server core (``env``: extra FRAUDOPS_ settings)."""
    port = free_port()
    cmd = [str(BIN / "fraudops"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return start_server(name, cmd, server_env(project) | env, project.dir, port, "/health/ready", cfg, logs)


def logged_ids(project: Project) -> set[str]:
    from core.predlog import read_predictions

    frame = read_predictions(project.dir / "stores" / "predictions.db", columns=["transaction_id"])
    return set(frame["transaction_id"]) if len(frame) else set()


def under_load(
    server: Server,
    traffic: Traffic,
    prefix: str,
    clients: int,
    load_s: float,
    sig: signal.Signals,
    midway: Callable[[], object] | None = None,
) -> tuple[Load, float, float]:
    """Clients score for ``load_s`` (``midway`` runs in a thread halfway through), then ``sig`` goes to
    the server; returns the load, the monotonic time of the signal and the seconds from the signal to
    the server's exit."""
    load = Load()

    async def scenario() -> tuple[float, float]:
        stop = asyncio.Event()
        clients_done = asyncio.create_task(drive(server.url, traffic, prefix, clients, stop, load))
        if midway is None:
            await asyncio.sleep(load_s)
        else:
            await asyncio.sleep(load_s / 2)
            await asyncio.to_thread(midway)
            await asyncio.sleep(load_s / 2)
        sent = time.monotonic()
        os.killpg(server.proc.pid, sig)
        await asyncio.to_thread(server.proc.wait, 120)
        exited = time.monotonic()
        stop.set()
        await clients_done
        return sent, exited - sent

    sent, stop_s = asyncio.run(scenario())
    server.exit_code = server.proc.returncode
    return load, sent, stop_s


def missing_summary(load: Load, present: set[str], signalled: float) -> dict[str, Any]:
    """The acknowledged ids not in ``present`` and the age at the signal of the oldest of them (ms)."""
    missing = [tid for tid in load.acknowledged if tid not in present]
    ages = [(signalled - load.acknowledged[tid]) * 1000 for tid in missing]
    return {
        "acknowledged": len(load.acknowledged),
        "missing": len(missing),
        "oldest_missing_ms": round(max(ages), 1) if ages else None,
        "unavailable_503": load.unavailable,
        "other_errors": load.other[:5],
    }


def run_kills(
    project: Project, cfg: Config, logs: Path, traffic: Traffic, runs: int, clients: int, load_s: float
) -> list[dict[str, Any]]:
    results = []
    for n in range(runs):
        server = start(project, cfg, logs, f"kill-{n}")
        load, killed, _ = under_load(server, traffic, f"kill{n}", clients, load_s, signal.SIGKILL)
        result = missing_summary(load, logged_ids(project), killed)
        result["requests_per_s"] = round(len(load.acknowledged) / load_s)
        console.print(f"SIGKILL {n + 1}/{runs}: {result}")
        results.append(result)
    return results


def run_term(
    project: Project, cfg: Config, logs: Path, traffic: Traffic, clients: int, load_s: float
) -> dict[str, Any]:
    server = start(project, cfg, logs, "term")
    load, sent, stop_s = under_load(server, traffic, "term", clients, load_s, signal.SIGTERM)
    result = missing_summary(load, logged_ids(project), sent)
    result |= {"stop_s": round(stop_s, 2), "exit_code": server.exit_code}
    console.print(f"SIGTERM: {result}")
    return result


@contextlib.contextmanager
def log_on_tmpfs(project: Project, root: Path, size_mb: int) -> Iterator[Path]:
    """The project's prediction log moved onto a fresh tmpfs of ``size_mb`` (the old log set aside);
    yields the mount point. SQLite follows the link: its WAL lives on the tmpfs too."""
    mount = root / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise PermissionError(
            f"mount -t tmpfs failed ({done.stderr.strip() or done.returncode}): run as root"
        )
    db = project.dir / "stores" / "predictions.db"
    aside = db.parent / "before-full-store"
    aside.mkdir()
    for suffix in ("", "-wal", "-shm"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            part.rename(aside / part.name)
    db.symlink_to(mount / db.name)
    try:
        yield mount
    finally:
        db.unlink()
        subprocess.run(["umount", str(mount)], check=False)


def fill(mount: Path) -> int:
    """Fill the file system at ``mount`` to the last byte; returns the bytes written."""
    written = 0
    with (mount / "filler").open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            written += out.write(b"\0" * 65536)
    return written


def run_full_store(
    project: Project,
    cfg: Config,
    root: Path,
    logs: Path,
    traffic: Traffic,
    clients: int,
    load_s: float,
    close_timeout_s: float,
) -> dict[str, Any]:
    """Score, fill the log's disk while scoring, then SIGTERM: the stop's time and where every row went."""
    import pyarrow as pa

    try:
        with log_on_tmpfs(project, root, size_mb=16) as mount:
            server = start(project, cfg, logs, "full", FRAUDOPS_LOG_CLOSE_TIMEOUT_S=str(close_timeout_s))
            load, sent, stop_s = under_load(
                server, traffic, "full", clients, load_s, signal.SIGTERM, midway=lambda: fill(mount)
            )
            logged = logged_ids(project)
    except PermissionError as exc:
        console.print(f"[yellow]full store skipped: {exc}[/]")
        return {"skipped": str(exc)}
    saved_files = sorted((project.dir / "stores").glob("predictions.db.unwritten-*.arrow"))
    saved: set[str] = set()
    for path in saved_files:
        with pa.memory_map(str(path)) as source:
            saved |= set(pa.ipc.open_file(source).read_all()["transaction_id"].to_pylist())
    result = missing_summary(load, logged | saved, sent)
    messages = [
        line for line in server.log_path.read_text(errors="replace").splitlines() if SAVED_MESSAGE in line
    ]
    result |= {
        "stop_s": round(stop_s, 2),
        "close_timeout_s": close_timeout_s,
        "exit_code": server.proc.returncode,
        "logged_of_acknowledged": len(set(load.acknowledged) & logged),
        "saved_rows": len(saved),
        "saved_files": [p.name for p in saved_files],
        "server_message": messages[0][:400] if messages else tail(server.log_path, 5),
    }
    console.print(f"full store: {result}")
    return result


def print_summary(report: dict[str, Any]) -> None:
    table = Table(
        title=f"What faults lose ({report['clients']} clients on /v1/score; loss window {LOSS_WINDOW_MS:g} ms)"
    )
    for name in ("fault", "acknowledged", "503", "missing", "oldest missing (ms)", "stop (s)"):
        table.add_column(name, justify="left" if name == "fault" else "right")
    for n, run in enumerate(report["sigkill"], 1):
        table.add_row(
            f"SIGKILL {n}",
            str(run["acknowledged"]),
            str(run["unavailable_503"]),
            str(run["missing"]),
            str(run["oldest_missing_ms"]),
            "",
        )
    term = report["sigterm"]
    table.add_row(
        "SIGTERM",
        str(term["acknowledged"]),
        str(term["unavailable_503"]),
        str(term["missing"]),
        str(term["oldest_missing_ms"]),
        str(term["stop_s"]),
    )
    full = report["full_store"]
    if "skipped" in full:
        table.add_row("full store at stop", "skipped", "", "", "", "")
    else:
        table.add_row(
            "full store at stop",
            str(full["acknowledged"]),
            str(full["unavailable_503"]),
            f"{full['missing']} (saved {full['saved_rows']})",
            str(full["oldest_missing_ms"]),
            str(full["stop_s"]),
        )
    console.print(table)
    worst = max((r["oldest_missing_ms"] or 0.0) for r in report["sigkill"])
    verdict = "[green]kept[/]" if worst <= LOSS_WINDOW_MS else "[red]broken[/]"
    console.print(
        f"oldest acknowledged score lost to a SIGKILL: {worst:g} ms (guarantee {LOSS_WINDOW_MS:g} ms): {verdict}"
    )


@app.command()
def main(
    kills: Annotated[int, typer.Option(min=1, help="SIGKILL runs.")] = 5,
    customers: Annotated[int, typer.Option(min=50, help="Customers of the simulated world.")] = 600,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients posting /v1/score.")] = 8,
    load_seconds: Annotated[float, typer.Option(min=0.5, help="Seconds of load before each signal.")] = 3.0,
    close_timeout: Annotated[
        float, typer.Option(min=0, help="FRAUDOPS_LOG_CLOSE_TIMEOUT_S of the full-store run.")
    ] = 10.0,
    full_store: Annotated[bool, typer.Option(help="Run the full-store stop (needs root for mount).")] = True,
    out: Annotated[Path, typer.Option(help="JSON report.")] = ROOT / "reports" / "faults.json",
    keep: Annotated[bool, typer.Option(help="Keep the temporary project and the logs.")] = False,
) -> None:
    """SIGKILL and SIGTERM under load and a full store at stop: what the prediction log loses."""
    # a smaller world than the serving benchmark's: the model only has to be promoted and serve
    cfg = Config(customers=customers, terminals=2 * customers, history_days=84)
    started = time.perf_counter()
    code = describe_code()
    with throwaway_folder("fraudops-faults-", keep) as root:
        logs = root / "logs"
        logs.mkdir()
        project = build_project(cfg, root)
        from core.clock import set_today

        history_end = dt.datetime.fromtimestamp(project.history_end_ts, dt.UTC).date()
        set_today(project.clock_file, history_end + dt.timedelta(days=3))
        pin_to_core(core_or_none(cfg.load_cpu))  # the clients off the server's core
        traffic = Traffic(project)
        report: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m benchmarks.faults " + " ".join(sys.argv[1:]),
            "machine": describe_machine(("fastapi", "uvicorn")),
            "code": code,
            "clients": clients,
            "load_seconds": load_seconds,
            "sigkill": run_kills(project, cfg, logs, traffic, kills, clients, load_seconds),
            "sigterm": run_term(project, cfg, logs, traffic, clients, load_seconds),
            "full_store": (
                run_full_store(project, cfg, root, logs, traffic, clients, load_seconds, close_timeout)
                if full_store
                else {"skipped": "--no-full-store"}
            ),
        }
        report["seconds_total"] = round(time.perf_counter() - started)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print_summary(report)
    console.print(f"report: {out}")


if __name__ == "__main__":
    app()
