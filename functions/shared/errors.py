"""Errors the state machine routes on by name (`errorType` of the Lambda error)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

SETTINGS_PREFIX = "DRIFTLINE_"


def setting_variable(field: str) -> str:
    """The environment variable of settings field `field`: DRIFTLINE_<FIELD>."""
    return SETTINGS_PREFIX + field.upper()


class SettingsError(RuntimeError):
    """The function's environment is incomplete or wrong (a deployment bug): one line naming
    the variable (`functions/shared/settings.py` reads every function's settings)."""

    @classmethod
    def missing(cls, field: str) -> SettingsError:
        return cls(f"environment variable {setting_variable(field)} is not set")

    @classmethod
    def invalid(cls, field: str, problem: str) -> SettingsError:
        return cls(f"environment variable {setting_variable(field)}: {problem}")


# Error codes AWS returns for conditions that go away on their own. botocore's standard retry
# mode already retries these a few times; when it gives up, the state machine's longer backoff
# (it retries errors named `TransientError`) gets another go before the run is failed.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "TransactionConflictException",
    }
)


class TransientError(RuntimeError):
    """A failure worth retrying (throttling, a service hiccup); the name is the contract."""


class PipelineInputError(ValueError):
    """The state a handler received cannot be acted on (a missing or malformed field)."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def transient_aws_errors(action: str) -> Iterator[None]:
    """Re-raise throttling and connection failures of `action` as `TransientError`."""
    try:
        yield
    except ClientError as error:
        if error_code(error) in TRANSIENT_CODES:
            raise TransientError(f"{action}: {error_code(error)} (retryable)") from error
        raise
    except (ConnectionError, ReadTimeoutError) as error:
        raise TransientError(f"{action}: {type(error).__name__} (retryable)") from error
