"""Drift notifier: tell people which features of which model drifted, and where the report is."""
