"""docs/dependencies.md explains every direct dependency at the version pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "dependencies.md"


def pinned() -> dict[str, str]:
    """The direct dependencies of pyproject.toml (runtime and every group) and their ``==`` pins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    specs = [*project["project"]["dependencies"]]
    for group in project.get("dependency-groups", {}).values():
        specs += group
    pins = {}
    for spec in specs:
        name, sep, version = spec.partition("==")
        assert sep and re.fullmatch(r"[\w.]+", version), f"{spec}: pin direct dependencies exactly (==)"
        pins[name.partition("[")[0].strip()] = version  # extras (moto[server]) are not part of the name
    return pins


def documented() -> dict[str, tuple[str, str]]:
    """Table rows of the page: package -> (pin, reason)."""
    rows = re.findall(
        r"^\| ([a-z0-9-]+) \| ([0-9][^|]*) \| [^|]+ \| ([^|]+) \|$", PAGE.read_text(), re.MULTILINE
    )
    return {name: (pin.strip(), why.strip()) for name, pin, why in rows}


def test_every_direct_dependency_has_a_row_with_its_pin_and_a_reason() -> None:
    rows = documented()
    for name, version in pinned().items():
        assert name in rows, f"docs/dependencies.md: add a row for {name}=={version}"
        assert rows[name][0] == version, (
            f"docs/dependencies.md: {name} is pinned at {version}, the page says {rows[name][0]}"
        )
        assert rows[name][1], f"docs/dependencies.md: say why {name} is at {version}"


def test_the_page_lists_no_dependency_the_project_dropped() -> None:
    assert set(documented()) <= set(pinned()), set(documented()) - set(pinned())
