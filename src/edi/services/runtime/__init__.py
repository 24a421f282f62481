"""The service runtime: declare typed handlers on a `Service`; `serve` runs the consume-handle-produce-commit
loop with retries, dead letters and graceful shutdown."""

from edi.services.runtime.outcomes import Outcome, Poison, Reject, Retryable
from edi.services.runtime.retry import RetryPolicy
from edi.services.runtime.runner import DeadLetterUnavailableError, run_service, serve
from edi.services.runtime.service import (
    STORE_WRITER_CONCURRENCY,
    Handler,
    Message,
    Output,
    RejectionBuilder,
    Result,
    Service,
)
from edi.services.runtime.settings import ServiceSettings

__all__ = [
    "STORE_WRITER_CONCURRENCY",
    "DeadLetterUnavailableError",
    "Handler",
    "Message",
    "Outcome",
    "Output",
    "Poison",
    "Reject",
    "RejectionBuilder",
    "Result",
    "RetryPolicy",
    "Retryable",
    "Service",
    "ServiceSettings",
    "run_service",
    "serve",
]
