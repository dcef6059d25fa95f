"""Every CloudWatch metric name and dimension Driftline publishes: one spelling for all layers.

The handlers publish these (EMF through Powertools), the constructs alarm and graph on them,
the deploy step reads MODEL_ERRORS back, and the twin evaluates the alarms on what is published.
Pure strings: no boto3, no CDK.
"""

from __future__ import annotations

from collections.abc import Mapping

NAMESPACE = "Driftline"

# Dimensions
MODEL_DIMENSION = "Model"
MODEL_VERSION_DIMENSION = "ModelVersion"
FEATURE_DIMENSION = "Feature"

# The drift monitor, per model (FEATURE_PSI also per Feature)
DRIFT_SAMPLES = "DriftSamples"
CORRUPT_CAPTURES = "CorruptCaptures"
MAX_FEATURE_PSI = "MaxFeaturePSI"
DRIFTED_SHARE = "DriftedShare"
PREDICTION_PSI = "PredictionPSI"
FEATURE_PSI = "FeaturePSI"
# Every model's drift as a multiple of its threshold (see `pipelines.monitoring.drift_score`):
# the one metric the fleet drift alarm watches for models without alarms of their own.
DRIFT_SCORE = "DriftScore"

# The inference functions
MODEL_ERRORS = "ModelErrors"  # per Model and ModelVersion: what a canary is judged on
REJECTED_REQUESTS = "RejectedRequests"
PREDICTED_ROWS = "PredictedRows"
CAPTURE_FAILURES = "CaptureFailures"

# The feedback function: graded labels, and the live metrics by registry metric name
FEEDBACK_SAMPLES = "FeedbackSamples"
LIVE_METRIC_NAMES: Mapping[str, str] = {
    "accuracy": "LiveAccuracy",
    "f1": "LiveF1",
    "precision": "LivePrecision",
    "recall": "LiveRecall",
    "roc_auc": "LiveRocAuc",
    "log_loss": "LiveLogLoss",
    "rmse": "LiveRMSE",
    "mae": "LiveMAE",
    "r2": "LiveR2",
}
