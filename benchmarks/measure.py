"""Where and how hard a benchmark ran: the machine, CPU busy time, a process tree's CPU and memory.

One implementation for every benchmark, on psutil. Two figures psutil does not give on Linux are read
from ``/proc`` here and nowhere else: the CPU's model name and a process's peak resident memory
(``VmHWM``; psutil reports only the current one).
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def os_name() -> str:
    """The operating system's pretty name (os-release), else the platform string."""
    try:
        return platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        return platform.platform()


def cores() -> int:
    """Logical cores (what ``OMP_NUM_THREADS`` and pinning count)."""
    return psutil.cpu_count() or 1


def describe_machine(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """CPU model, architecture, cores, memory, OS, Python and the versions of ``packages``."""
    described: dict[str, Any] = {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": cores(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": os_name(),
        "python": platform.python_version(),
    }
    if packages:
        described["packages"] = {name: version(name) for name in packages}
    return described


def describe_code() -> dict[str, Any]:
    """The commit measured and the files that differed from it (what ran is the working tree)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "modified": git("status", "--porcelain").splitlines()}


def busy_cpu_seconds() -> dict[str, float]:
    """Busy CPU seconds so far, machine-wide (``"cpu"``) and per core (``"cpu0"``, ...).

    Busy is everything but idle and I/O wait: user, nice, system, interrupts and steal.
    """

    def busy(times: Any) -> float:
        return float(times.user + times.nice + times.system + times.irq + times.softirq + times.steal)

    out = {"cpu": busy(psutil.cpu_times())}
    for n, times in enumerate(psutil.cpu_times(percpu=True)):
        out[f"cpu{n}"] = busy(times)
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of ``pid`` and its descendants."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(member).cpu_times()
            total += times.user + times.system
    return total


def tree_peak_rss_mb(pid: int) -> float:
    """Peak resident memory (``VmHWM``) summed over ``pid`` and its descendants, in MB."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
    return total


def own_peak_rss_mb() -> float:
    """This process's peak resident memory, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def waited_children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def core_or_none(cpu: int) -> int | None:
    """``cpu`` when the machine has that core, else None (so -1 turns pinning off)."""
    return cpu if 0 <= cpu < cores() else None


def pin_to_core(cpu: int | None, pid: int = 0) -> None:
    """Bind process ``pid`` (0: this one) to core ``cpu``; None leaves it free."""
    if cpu is not None:
        psutil.Process(pid or os.getpid()).cpu_affinity([cpu])


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that binds a child to core ``cpu`` before it starts (None: no pinning).

    Binding before ``exec`` is what makes every thread the child starts inherit the core.
    """
    if cpu is None:
        return None
    return lambda: pin_to_core(cpu)
