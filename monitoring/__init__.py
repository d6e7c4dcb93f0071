"""Monitoring of the champion in production: Evidently drift reports, performance from delayed labels,
the retraining policy, the decision history and the flow that runs them. Imports ``core`` and
``pipelines`` (to retrain)."""
