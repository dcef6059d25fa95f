"""Drift monitor: compare the deployed model's captured traffic with its training baseline."""
