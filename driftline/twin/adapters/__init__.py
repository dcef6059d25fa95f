"""Adapters that let moto 5.2.5 run Driftline's synthesized templates, unmodified, offline.

Stock moto cannot run the MLOps loop: it needs Docker for Lambda, its Step Functions interpreter
does not see state machines created by CloudFormation, EventBridge drops Step Functions
targets, CDK custom resources race (and a stack deletes their provider first), aws-sdk task
outputs break `describe_execution`, CloudWatch alarms are never created from templates nor
evaluated, several resource types the loop depends on are skipped, and some it has ignore
properties (a bucket's versioning) or fail outright (a tagged KMS key). Each module closes
gaps with named `adapt_*` functions that patch moto at the narrowest point:

| module | section |
|---|---|
| `base` | settings, the upgrade guard (`check_moto_internals`), `TwinModel` |
| `lambdas` | 1. Lambda without Docker, async S3/SNS invokes, on-failure destinations |
| `stepfunctions` | 2. one Step Functions backend that runs CloudFormation's machines |
| `eventbridge` | 3. EventBridge targets, bucket template properties, schedule rules |
| `custom_resources` | 4. CDK custom resources, stack delete order |
| `sdk_datetimes` | 5. aws-sdk task outputs as JSON |
| `alarms`, `metrics_insights` | 6. CloudWatch alarms evaluated and acting |
| `emf` | 6b. embedded metric format lines become metrics |
| `cfn_types` | 7. resource types moto's CloudFormation lacks |
| `function_urls` | 7b. Function URLs on the twin's address with SigV4 auth |
| `faults` | 8. fault injection |

`install_adapters` applies them all, once per process, in the process that runs moto's
server (moto's `ThreadedMotoServer` is in-process, so patching its classes changes what the
server does). `check_moto_internals` fails loudly when a moto upgrade moved a patched
internal. `shutdown_adapters` stops the Lambda worker processes. `inject_faults` (section 8)
is a test and chaos hook of the twin, not something AWS has.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from driftline.twin.adapters.alarms import adapt_cloudwatch_alarms, evaluate_alarms
from driftline.twin.adapters.base import (
    MOTO_VERSION,
    Settings,
    TwinAdapterError,
    check_moto_internals,
    use_settings,
)
from driftline.twin.adapters.cfn_types import (
    adapt_cloudformation_types,
    adapt_kms_key_template,
    unsupported_resource_types,
)
from driftline.twin.adapters.custom_resources import (
    CUSTOM_RESOURCE_RESPONSES,
    adapt_custom_resources,
    adapt_stack_delete_order,
    cfn_stringified,
    deletion_order,
)
from driftline.twin.adapters.emf import adapt_emf_metrics, emf_metric_data
from driftline.twin.adapters.eventbridge import (
    adapt_eventbridge_targets,
    adapt_s3_bucket_template_properties,
    adapt_schedule_rules,
    render_input_template,
    target_input,
)
from driftline.twin.adapters.faults import clear_faults, inject_faults, pending_faults
from driftline.twin.adapters.function_urls import (
    FUNCTION_URL_PREFIX,
    adapt_function_urls,
    function_url,
    function_url_event,
    function_url_response,
    sigv4_problem,
)
from driftline.twin.adapters.lambdas import (
    LambdaResult,
    LambdaRunner,
    adapt_async_lambda_sources,
    adapt_lambda_invoke,
    adapt_lambda_template_properties,
    on_failure_record,
    runner,
    worker_thread_settings,
)
from driftline.twin.adapters.sdk_datetimes import adapt_sfn_sdk_datetimes, json_ready
from driftline.twin.adapters.stepfunctions import adapt_stepfunctions_backend

__all__ = [
    "FUNCTION_URL_PREFIX",
    "MOTO_VERSION",
    "LambdaResult",
    "LambdaRunner",
    "TwinAdapterError",
    "cfn_stringified",
    "check_moto_internals",
    "clear_faults",
    "deletion_order",
    "emf_metric_data",
    "evaluate_alarms",
    "function_url",
    "function_url_event",
    "function_url_response",
    "inject_faults",
    "install_adapters",
    "json_ready",
    "on_failure_record",
    "pending_faults",
    "render_input_template",
    "shutdown_adapters",
    "sigv4_problem",
    "target_input",
    "unsupported_resource_types",
    "worker_thread_settings",
]

_INSTALLED = False
_INSTALL_LOCK = threading.Lock()


def install_adapters(
    *,
    port: int,
    image_folders: Callable[[str], Path | None],
    work_dir: Path | None = None,
) -> None:
    """Patch moto in this process so the twin can run the templates. Idempotent.

    `port` is where moto's server listens on 127.0.0.1 (handlers, custom resources and moto's
    Step Functions interpreter call back there; MOTO_PORT is set to it);
    `image_folders(image_uri)` maps a container-image Lambda's ImageUri to the staged folder
    holding its code; `work_dir` holds extracted zip code and worker logs (default: a per-user
    folder under the system temp dir).
    """
    global _INSTALLED
    directory = work_dir or Path(tempfile.gettempdir()) / f"driftline-twin-{os.getuid()}"
    # moto's Step Functions interpreter calls back to localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    with _INSTALL_LOCK:
        previous = use_settings(
            Settings(port=port, image_folders=image_folders, work_dir=directory)
        )
        if previous is not None and previous.port != port:
            # Warm workers hold the old endpoint in their environment.
            runner().shutdown()
        if _INSTALLED:
            return
        check_moto_internals()
        adapt_lambda_invoke()
        adapt_lambda_template_properties()
        adapt_async_lambda_sources()
        adapt_stepfunctions_backend()
        adapt_eventbridge_targets()
        adapt_s3_bucket_template_properties()
        adapt_custom_resources()
        adapt_stack_delete_order()
        adapt_sfn_sdk_datetimes()
        adapt_cloudwatch_alarms()
        adapt_emf_metrics()
        adapt_schedule_rules()
        adapt_cloudformation_types()
        adapt_kms_key_template()
        adapt_function_urls()
        atexit.register(shutdown_adapters)
        _INSTALLED = True


def shutdown_adapters() -> None:
    """Stop every Lambda worker process and the custom-resource response listener."""
    runner().shutdown()
    CUSTOM_RESOURCE_RESPONSES.stop()
    clear_faults()
