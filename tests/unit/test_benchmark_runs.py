"""The benchmarks' run helper: a run that stops making progress is killed, with what it started."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

from benchmarks.growth_dask import run_sampled

SLEEPER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(120)
"""


def test_a_run_past_its_timeout_is_killed_with_the_processes_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    result = run_sampled([sys.executable, "-c", SLEEPER, str(pid_file)], dict(os.environ), timeout_s=2.0)
    assert result["timed_out"] is True
    assert result["returncode"] == -9
    assert result["seconds"] < 30
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not gone(child):
        assert time.monotonic() < deadline, "the run's own child outlived the timeout"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_run_within_its_timeout_reports_its_exit() -> None:
    result = run_sampled([sys.executable, "-c", "print('done')"], dict(os.environ), timeout_s=60.0)
    assert result["timed_out"] is False
    assert result["returncode"] == 0
    assert result["output_tail"] == ["done"]
