"""Retrain: start the training pipeline when a model drifts, at most once per cooldown."""
