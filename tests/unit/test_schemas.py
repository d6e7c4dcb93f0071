"""The JSON files the flows write follow the schemas published under docs/schemas."""

from __future__ import annotations

import datetime as dt
import json

import jsonschema

from fraudops.schemas import SCHEMA_DIR, result_models, schema_texts
from pipelines.gate import GateDecision
from pipelines.results import TrainingOutcome, Windows


def test_published_schemas_match_the_models() -> None:
    published = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert published == schema_texts(), "a result model changed: run `python -m fraudops.schemas`"


def test_every_result_model_has_a_published_schema() -> None:
    assert {f"{stem}.schema.json" for stem in result_models()} == set(schema_texts())


def test_a_training_outcome_round_trips_through_its_schema() -> None:
    day = dt.date(2026, 3, 1)
    outcome = TrainingOutcome(
        version="3",
        alias="challenger",
        decision=GateDecision(promote=False, reasons=["AP 0.400 < champion 0.500 + margin 0.01"]),
        metrics={"average_precision": 0.4, "average_precision_random": 0.01},
        champion_metrics={"average_precision": 0.5, "average_precision_random": 0.01},
        previous_champion="2",
        windows=Windows(
            day, day + dt.timedelta(days=20), day + dt.timedelta(days=28), day + dt.timedelta(days=34)
        ),
        data_version="raw:0123456789ab/labels:ba9876543210",
        run_id="abc",
        cycle_id="cycle",
        reason="manual",
    )
    text = outcome.model_dump_json()
    schema = json.loads((SCHEMA_DIR / "training-outcome.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(text), schema)
    assert TrainingOutcome.model_validate_json(text) == outcome
