"""Register: add the challenger to the model registry as a new version."""
