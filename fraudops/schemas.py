"""The JSON schemas of the results the flows write, published under ``docs/schemas/``.

Each JSON file the project writes under ``reports/`` and ``metrics/`` is dumped from one of these
models, so a schema here is the contract of those files. ``python -m fraudops.schemas`` writes them
again; a test fails when a model changed and its published schema did not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel, RootModel

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def result_models() -> dict[str, type[BaseModel] | type[RootModel[dict[str, float]]]]:
    """File name stem -> the model its JSON is dumped from (imported here: MLflow and Prefect are slow)."""
    from monitoring.summary import MonitoringSummary
    from pipelines.ingest import IngestReport
    from pipelines.results import TrainingOutcome
    from pipelines.train_stage import StageMetrics

    return {
        "ingest-report": IngestReport,  # reports/ingest/<UTC time>.json
        "training-outcome": TrainingOutcome,  # reports/training/v<version>.json
        "monitoring-summary": MonitoringSummary,  # reports/monitoring/<day>-summary.json, each history line
        "stage-metrics": StageMetrics,  # metrics/metrics.json
    }


def schema_texts() -> dict[str, str]:
    """File name -> the schema's JSON text."""
    return {
        f"{stem}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for stem, model in result_models().items()
    }


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_texts().items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(path)
