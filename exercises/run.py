"""``make check-exercise N=3``: run exercise 3's check on this working tree; exit status is the check's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    """Find the exercise folder numbered ``argv[0]`` and run its check with this project first on the path."""
    if not argv or not argv[0].isdigit():
        print("usage: make check-exercise N=<number>, e.g. N=3", file=sys.stderr)
        return 2
    folders = sorted((ROOT / "exercises").glob(f"{int(argv[0]):02d}-*/check.py"))
    if not folders:
        known = ", ".join(p.parent.name for p in sorted((ROOT / "exercises").glob("[0-9]*-*/check.py")))
        print(f"no exercise {argv[0]}; the exercises are: {known}", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(folders[0])], cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
