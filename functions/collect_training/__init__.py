"""Train: fit the configured estimator on the training split."""
