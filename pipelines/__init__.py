"""Prefect flows and the plain step functions they call: ingest, validate, version, train, gate."""
