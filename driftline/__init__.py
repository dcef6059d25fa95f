"""Driftline: the command line and the local twin."""
