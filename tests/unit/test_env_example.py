"""``.env.example`` names every setting a team would set, with the defaults the settings class applies."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
# lines that show an example or a placeholder rather than the default
EXAMPLES = {"project_dir", "mlflow_tracking_uri", "admin_api_key", "feedback_api_key", "prediction_log_url"}


def commented_settings() -> dict[str, str]:
    """``# NAME=value`` lines of .env.example: the variable and the value it shows."""
    pattern = re.compile(r"^# ([A-Z][A-Z0-9_]+)=(.*)$", re.MULTILINE)
    return {name: value.strip('"') for name, value in pattern.findall(EXAMPLE.read_text(encoding="utf-8"))}


def test_every_setting_and_the_database_password_are_listed() -> None:
    listed = commented_settings()
    missing = {env_name(field) for field in Settings.model_fields} - set(listed)
    assert not missing, f"add to .env.example: {sorted(missing)}"
    assert "POSTGRES_PASSWORD" in listed
    assert all(value.startswith("<") for name, value in listed.items() if "KEY" in name or "PASSWORD" in name)


def test_the_values_shown_are_the_defaults() -> None:
    listed = commented_settings()
    for field, info in Settings.model_fields.items():
        if field in EXAMPLES:
            continue
        shown = Settings(**{field: listed[env_name(field)]}, _env_file=None)
        assert getattr(shown, field) == info.default, (
            f"{env_name(field)}: .env.example shows {listed[env_name(field)]}"
        )


def test_a_copy_as_env_changes_nothing(tmp_path: Path) -> None:
    """``cp .env.example .env`` is safe: every line is commented, so the development defaults hold."""
    copied = Settings(_env_file=EXAMPLE, project_dir=tmp_path)
    assert copied == Settings(_env_file=None, project_dir=tmp_path)
