"""Evaluate: score the challenger and the champion on the same test rows."""
