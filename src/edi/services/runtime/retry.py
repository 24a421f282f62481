"""Bounded exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int | None = 5  # attempts in all, the first included; None: until shutdown
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    multiplier: float = 2.0
    # Up to this fraction is taken off each delay at random, so that retries of many records (or many
    # instances) spread out. While multiplier * (1 - jitter) > 1, every delay is still longer than the last.
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if (self.max_attempts is not None and self.max_attempts < 1) or not 0 <= self.jitter < 1 or self.multiplier < 1:
            raise ValueError(f"unusable retry policy {self}")

    def gives_up_after(self, attempt: int) -> bool:
        return self.max_attempts is not None and attempt >= self.max_attempts

    def delay_s(self, attempt: int) -> float:
        """How long to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** (attempt - 1))
        return base * (1 - self.jitter * random.random())


# The broker being away is nobody's fault and no reason to give up on a record: retried for as long as it
# takes (until shutdown), never more than a few seconds apart.
BROKER_BACKOFF = RetryPolicy(max_attempts=None, initial_delay_s=0.2, max_delay_s=5.0)
