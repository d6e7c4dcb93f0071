"""The lowest layer, imported by every other package and importing only libraries.

It owns what training, serving and monitoring must agree on: the runtime settings and ``params.yaml``,
the record schemas, the simulated clock and the simulator, the features (offline in ``features``,
one transaction at a time in ``online``), the metrics, the prediction and feedback logs, the model's
runtime form (ONNX) and the registry's contract.
"""
