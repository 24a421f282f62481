"""What a handler can say besides "here are my outputs": typed outcomes the runtime acts on.

Each can be returned or raised (raising lets a helper deep in the handler end the attempt). Any other
exception is treated as `Retryable`: a bug or an unforeseen outage gets the bounded retries, then the dead-letter
topic, and the partition moves on; nothing is silently skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from edi.events.models import ErrorDetail


class Outcome(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Retryable(Outcome):
    """Transient: try the same record again after a growing delay, up to the handler's attempt limit."""


class Poison(Outcome):
    """This record can never be processed: to the dead-letter topic now, with the reason."""


class Reject(Outcome):
    """The message is refused for a reason the sender must hear (a negative AppRec): the runtime publishes a
    Rejection built by the handler's `rejections` function."""

    def __init__(self, apprec_code: str, reason: str, errors: Sequence[ErrorDetail] = ()) -> None:
        super().__init__(reason)
        self.apprec_code = apprec_code  # code list 8221
        self.errors = tuple(errors)
