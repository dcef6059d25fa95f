"""Feedback: grade captured predictions with uploaded ground-truth labels (concept drift)."""
