"""Shared foundations: settings, record schemas, the simulated clock, the simulator, features, metrics."""
