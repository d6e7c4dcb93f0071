"""The data and training pipelines: Prefect flows and the plain step functions they call.

Ingest, validate and version the daily batches (DVC), build the features, train and evaluate a model
(MLflow), export it to ONNX, and let the promotion gate register it as champion. Imports only ``core``.
"""
