"""The scheduled upgrade check's pin relaxer (.github/scripts/relax_pins.py) on the project's own files."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".github" / "scripts" / "relax_pins.py"


def load_script() -> ModuleType:
    """The script as a module (it lives beside the workflow that runs it, outside the packages)."""
    spec = importlib.util.spec_from_file_location("relax_pins", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["relax_pins"] = module
    spec.loader.exec_module(module)
    return module


relax_pins = load_script()


@pytest.mark.parametrize(
    ("pin", "relaxed"),
    [
        ("dvc==3.67.1", "dvc>=3.67.1,<4"),
        ("evidently==0.7.23", "evidently>=0.7.23,<0.8"),  # below 1.0 a minor release may break
        ("pandas-stubs==3.0.0.260204", "pandas-stubs>=3.0.0.260204,<4"),
        ("uvicorn[standard]==0.54.0", "uvicorn[standard]>=0.54.0,<0.55"),
        ("pywin32==311; sys_platform == 'win32'", "pywin32>=311,<312; sys_platform == 'win32'"),
        ("pandas>=3.0,<3.1", "pandas>=3.0,<3.1"),  # already a range: kept
        ("numpy", "numpy"),
        ("foo==1.*", "foo==1.*"),  # a wildcard is no exact pin
    ],
)
def test_relax_requirement(pin: str, relaxed: str) -> None:
    assert relax_pins.relax_requirement(pin) == relaxed


def test_every_pin_of_the_project_becomes_a_range_that_holds_its_locked_version() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    relaxed, changed = relax_pins.relax_pyproject(text)
    before, after = tomllib.loads(text), tomllib.loads(relaxed)
    pins = before["project"]["dependencies"] + [r for g in before["dependency-groups"].values() for r in g]
    assert len(changed) == len(pins) > 30
    locked = relax_pins.locked_versions((ROOT / "uv.lock").read_text(encoding="utf-8"))
    for requirement in after["project"]["dependencies"]:
        parsed = Requirement(requirement)
        assert "==" not in requirement
        assert parsed.specifier.contains(locked[parsed.name.lower()]), requirement
    # only the requirement strings moved: the build system, comments and tool tables are as they were
    assert after["build-system"] == before["build-system"]
    assert after["tool"] == before["tool"]
    assert relaxed.count("\n") == text.count("\n")


def test_version_changes_list_what_moved_appeared_or_went() -> None:
    old = {"pandas": "3.0.6", "numpy": "2.4.6", "gone": "1.0"}
    new = {"pandas": "3.1.1", "numpy": "2.4.6", "fresh": "0.1"}
    changes = relax_pins.version_changes(old, new)
    assert changes == [("fresh", "—", "0.1"), ("gone", "1.0", "—"), ("pandas", "3.0.6", "3.1.1")]
    table = relax_pins.changes_markdown(changes)
    assert "| pandas | 3.0.6 | 3.1.1 |" in table
    assert table.startswith("3 locked versions moved")
    assert "No locked version moved" in relax_pins.changes_markdown([])


def test_the_command_rewrites_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = [\n    "dvc==3.67.1",  # why it is pinned\n]\n',
        encoding="utf-8",
    )
    assert relax_pins.main(["relax", str(pyproject)]) == 0
    assert pyproject.read_text(encoding="utf-8") == (
        '[project]\nname = "x"\ndependencies = [\n    "dvc>=3.67.1,<4",  # why it is pinned\n]\n'
    )
    assert "1 pins relaxed" in capsys.readouterr().out
