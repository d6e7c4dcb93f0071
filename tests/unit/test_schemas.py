"""The JSON files the flows write follow the schemas published under docs/schemas."""

from __future__ import annotations

import json

import jsonschema

from fraudops.schemas import SCHEMA_DIR, result_models, schema_texts
from pipelines.results import TrainingOutcome
from tests.conftest import training_outcome


def test_published_schemas_match_the_models() -> None:
    published = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert published == schema_texts(), "a result model changed: run `python -m fraudops.schemas`"


def test_every_result_model_has_a_published_schema() -> None:
    assert {f"{stem}.schema.json" for stem in result_models()} == set(schema_texts())


def test_a_training_outcome_round_trips_through_its_schema() -> None:
    outcome = training_outcome("manual", "3", promote=False)
    text = outcome.model_dump_json()
    schema = json.loads((SCHEMA_DIR / "training-outcome.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(text), schema)
    assert TrainingOutcome.model_validate_json(text) == outcome
