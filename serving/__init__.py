"""The scoring service (FastAPI): online features, champion model, prediction and feedback logs."""
