"""The drift thresholds an environment configures, with their defaults: the one place they live.

`infra.config.EnvConfig.thresholds` is this model (cdk.json `thresholds`), the Monitoring stack
passes it to the drift monitor as `DRIFTLINE_PSI`... (read back by its settings, which extend
it), and `pipelines.drift.DriftThresholds` takes its defaults from it. Light on purpose: pydantic
only, so synth and the monitoring functions' settings import no statistics stack.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DriftThresholdConfig(BaseModel):
    """Effect-size thresholds: at large n p-values flag negligible shifts, so verdicts use these.

    Every statistic drifts when it is strictly above its threshold (`pipelines.drift.over`, the
    comparison CloudWatch's GreaterThanThreshold alarms make). `drifted_share` 0 means one
    materially drifted feature is drift; a larger value asks for more than that share.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    psi: float = Field(default=0.2, gt=0)
    ks_statistic: float = Field(default=0.1, gt=0, le=1)
    drifted_share: float = Field(default=0.0, ge=0, lt=1)
    prediction_psi: float = Field(default=0.2, gt=0)
    min_samples: int = Field(default=200, ge=1)


DEFAULT_THRESHOLDS = DriftThresholdConfig()


def over(value: float, threshold: float) -> bool:
    """The one comparison of a drift statistic with its threshold: strictly greater, as the
    drift alarms compare (CloudWatch GreaterThanThreshold). `pipelines.drift` decides features
    and reports with it, `pipelines.monitoring` flags features and scores DriftScore with it."""
    return value > threshold
