"""Monitoring: Evidently drift reports, delayed-label performance, the retraining policy and its flow."""
