"""The scheduled upgrade check's two steps around ``uv lock --upgrade`` (.github/workflows/upgrade.yml).

``relax`` rewrites pyproject.toml's exact pins (``name==X.Y.Z``) as the range a compatible release
stays in, ``name>=X.Y.Z,<X+1`` (``<0.Y+1`` below 1.0, where a minor release may break), so the
lock can move to the newest compatible versions and the tests see them before users do.
``changes`` prints which locked versions moved, as a markdown table for the job's summary.

    python .github/scripts/relax_pins.py relax pyproject.toml
    python .github/scripts/relax_pins.py changes OLD_UV_LOCK NEW_UV_LOCK

The project itself keeps its exact pins: this runs only in the scheduled job's checkout.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

# name[extras]==version[; marker]: the pins the project writes (one version, no wildcard)
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*==\s*(?P<version>[0-9][^;\s*]*)(?P<rest>\s*;.*)?$"
)
RELEASE = re.compile(r"^(\d+)(?:\.(\d+))?")


def relax_requirement(requirement: str) -> str:
    """``name==X.Y.Z`` -> ``name>=X.Y.Z,<X+1`` (``<0.Y+1`` when X is 0); anything else unchanged."""
    pin = PIN.match(requirement.strip())
    if pin is None:
        return requirement
    release = RELEASE.match(pin["version"])
    if release is None:
        return requirement
    major, minor = int(release[1]), int(release[2] or 0)
    upper = f"{major + 1}" if major > 0 else f"0.{minor + 1}"
    return f"{pin['name']}>={pin['version']},<{upper}{pin['rest'] or ''}"


def requirement_lists(pyproject: dict[str, object]) -> list[list[str]]:
    """The project's dependencies and each dependency group (the build system's pins stay)."""
    project = pyproject.get("project", {})
    groups = pyproject.get("dependency-groups", {})
    lists = [project.get("dependencies", [])] if isinstance(project, dict) else []
    lists += list(groups.values()) if isinstance(groups, dict) else []
    return [[r for r in found if isinstance(r, str)] for found in lists if isinstance(found, list)]


def relax_pyproject(text: str) -> tuple[str, list[tuple[str, str]]]:
    """pyproject.toml's text with every dependency pin relaxed, and the (old, new) pairs changed.

    The quoted strings are replaced in the text, so comments and layout stay as they were.
    """
    changed = []
    for requirements in requirement_lists(tomllib.loads(text)):
        for old in requirements:
            new = relax_requirement(old)
            if new != old:
                text = text.replace(f'"{old}"', f'"{new}"', 1)
                changed.append((old, new))
    return text, changed


def locked_versions(lock_text: str) -> dict[str, str]:
    """Package name -> version in a uv.lock (the project itself has no registry version: left out)."""
    packages = tomllib.loads(lock_text).get("package", [])
    return {p["name"]: p["version"] for p in packages if "version" in p and "registry" in p.get("source", {})}


def version_changes(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str, str]]:
    """(name, old version, new version) of each package whose version moved, appeared or went."""
    names = sorted(old.keys() | new.keys())
    return [(n, old.get(n, "—"), new.get(n, "—")) for n in names if old.get(n) != new.get(n)]


def changes_markdown(changes: list[tuple[str, str, str]]) -> str:
    """A markdown table of the moved versions (or a sentence when none moved)."""
    if not changes:
        return "No locked version moved: every dependency is at its newest compatible release.\n"
    rows = [f"| {name} | {old} | {new} |" for name, old, new in changes]
    return "\n".join(
        [
            f"{len(changes)} locked versions moved:",
            "",
            "| package | locked | newest compatible |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``relax PYPROJECT`` or ``changes OLD_LOCK NEW_LOCK``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    relax = sub.add_parser("relax", help="rewrite the exact pins of PYPROJECT as compatible ranges")
    relax.add_argument("pyproject", type=Path)
    diff = sub.add_parser("changes", help="markdown table of the versions that moved between two uv.lock")
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    if args.command == "relax":
        text, changed = relax_pyproject(args.pyproject.read_text(encoding="utf-8"))
        args.pyproject.write_text(text, encoding="utf-8")
        for old, new in changed:
            print(f"{old}  ->  {new}")
        print(f"{args.pyproject}: {len(changed)} pins relaxed")
        return 0
    before, after = (locked_versions(p.read_text(encoding="utf-8")) for p in (args.old, args.new))
    sys.stdout.write(changes_markdown(version_changes(before, after)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
