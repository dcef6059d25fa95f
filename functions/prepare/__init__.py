"""Prepare: resolve the model config, snapshot the exact dataset version, check it trains."""
