"""Benchmarks: speed and memory of the loop's heavy steps (``make bench``; results in docs/benchmarks.md)."""
