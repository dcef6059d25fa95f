"""The drift thresholds an environment configures, with their defaults: the one place they live.

`infra.config.EnvConfig.thresholds` is this model (cdk.json `thresholds`), the Monitoring stack
passes it to the drift monitor as `DRIFTLINE_PSI`... (read back by its settings, which extend
it), and `pipelines.drift.DriftThresholds` takes its defaults from it. Light on purpose: pydantic
only, so synth and the monitoring functions' settings import no statistics stack.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DriftThresholdConfig(BaseModel):
    """Effect-size thresholds: at large n p-values flag negligible shifts, so verdicts use these."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    psi: float = Field(default=0.2, gt=0)
    ks_statistic: float = Field(default=0.1, gt=0, le=1)
    drifted_share: float = Field(default=0.3, gt=0, le=1)
    prediction_psi: float = Field(default=0.2, gt=0)
    min_samples: int = Field(default=200, ge=1)


DEFAULT_THRESHOLDS = DriftThresholdConfig()
