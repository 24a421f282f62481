"""Settings every service has (each service subclasses this into its own settings class)."""

from __future__ import annotations

from pydantic import Field

from edi.adapters.bus.settings import BusSettings
from edi.services.runtime.retry import RetryPolicy


class ServiceSettings(BusSettings):
    # A handler's attempts at one record before it goes to the dead-letter topic, and the delays between.
    retry_max_attempts: int = 5
    retry_initial_delay_s: float = 0.5
    retry_max_delay_s: float = 30.0
    # Records taken per poll; the partitions of a batch are processed concurrently.
    batch_max_records: int = 100
    # How long an idle poll waits; also how quickly an idle service notices it should stop.
    poll_timeout_s: float = 0.5
    # Handled records' offsets are committed about this often, between batches (and at a rebalance and at
    # shutdown); a crash redelivers up to this much, plus a batch, more, which the handlers' idempotence absorbs.
    commit_interval_s: float = Field(0.1, gt=0)
    # On SIGTERM: how long in-flight records get to finish before they are abandoned (and redelivered later).
    shutdown_timeout_s: float = 10.0

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            initial_delay_s=self.retry_initial_delay_s,
            max_delay_s=self.retry_max_delay_s,
        )
