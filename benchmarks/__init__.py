"""Benchmarks (``make bench``; results in docs/benchmarks.md): speed and memory of the loop's heavy
steps, serving throughput against ``mlflow models serve``, the monitor's false alarms and delays, model
quality at book scale; with the machine and process measurements and the throwaway projects they share
with the tests. Not part of the installed packages."""
