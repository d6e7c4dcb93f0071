"""The scoring service's HTTP routers, one module per concern: scoring, feedback, model metadata,
health and metrics, operator endpoints."""
