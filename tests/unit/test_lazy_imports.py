"""Evidently (about 2 s to import with a bytecode cache, 6 s without) is imported only by a monitoring run.

The API, the command line and the flow modules import without it: each module below is imported in
a fresh interpreter, in order, and the first one that pulls Evidently in is named.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

START_UP_MODULES = [
    "serving.app",  # what uvicorn imports for `fraudops serve`
    "fraudops.cli",  # every command
    "fraudops.schedule",
    "fraudops.demo",
    "pipelines.flows",
    "monitoring.flow",  # `fraudops monitor` and the served monitoring deployment load it first
    "monitoring.history",  # `fraudops monitor history`
]

PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    if "evidently" in sys.modules:
        print(name)
        break
else:
    print("none")
"""


def test_start_up_modules_do_not_import_evidently() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *START_UP_MODULES],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.stdout.strip() == "none", f"{out.stdout.strip()} imports evidently at import time"
