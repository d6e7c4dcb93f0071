"""What every exercise check shares: import the project it sits in, collect what is missing, report.

A check runs as a script (``python exercises/NN-slug/check.py`` or ``make check-exercise N=NN``). It
puts its own project first on ``sys.path`` so that a copy of the project is checked as that copy, not as
the folder the virtual environment's editable install points at.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_this_project() -> Path:
    """Put this project first on ``sys.path`` and say which one is checked; returns its root."""
    if sys.path[0] != str(ROOT):
        sys.path.insert(0, str(ROOT))
    import core

    imported = Path(core.__file__).resolve().parents[1]
    if imported != ROOT:
        sys.exit(
            f"the check imported the project at {imported}, not the one at {ROOT}: set PYTHONPATH={ROOT}"
        )
    print(f"checking the project at {ROOT}")
    return ROOT


class Check:
    """Named steps; each returns what is still missing in plain words (an empty list: done)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.missing: list[str] = []
        self.steps = 0
        self.failed_steps = 0

    def step(self, name: str, run: Callable[[], list[str]]) -> None:
        """Run one step; an exception is reported as what is missing, so the learner sees why."""
        try:
            problems = run()
        except Exception as exc:  # the learner's code can fail in any way: say how, keep checking
            problems = [f"it raised {exc.__class__.__name__}: {exc}"]
        self.steps += 1
        self.failed_steps += bool(problems)
        mark = "ok " if not problems else "MISSING"
        print(f"  [{mark}] {name}")
        for problem in problems:
            print(f"           - {problem}")
        self.missing += [f"{name}: {p}" for p in problems]

    def finish(self) -> None:
        """Exit 0 when every step passed, else 1 with a summary of what is missing."""
        if self.missing:
            problems = f"{len(self.missing)} problem{'s' * (len(self.missing) > 1)}"
            print(
                f"\n{self.title}: not done yet, {self.failed_steps} of the {self.steps} steps checked"
                f" {'is' if self.failed_steps == 1 else 'are'} missing something ({problems}, see above)."
            )
            sys.exit(1)
        print(f"\n{self.title}: all checks pass.")
