"""What the training-pipeline handlers share: settings, AWS adapters, state models, artifacts.

Split by import cost, so a light handler (record_outcome, register) never loads pandas or
scikit-learn: `settings`, `errors`, `clients`, `state`, `keys`, `registry` and `storage` import
neither at module level; `artifacts` and `configs` bring in the training logic.
"""
