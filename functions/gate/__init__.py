"""Gate: decide whether the challenger may be registered."""
