"""Remembering DPoP proof ids (`jti`) for as long as a proof is acceptable, so that none is used twice."""

from __future__ import annotations

from collections import deque


class ReplayCache:
    """In-process memory of the proof ids seen within the acceptance window.

    One gateway process checks its own proofs; several gateway replicas behind a balancer each keep their own
    memory, so a proof replayed to another replica inside the window is not caught (RFC 9449 §11.1 accepts
    this; a deployment that cannot should require server nonces, which shrink the window)."""

    def __init__(self, ttl_seconds: float, max_entries: int = 1_000_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._expiry: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()  # expiry times are added in increasing order

    def first_use(self, key: str, now: float) -> bool:
        """Records `key`; False when it was already seen and has not expired."""
        self._purge(now)
        if key in self._expiry:
            return False
        if len(self._expiry) >= self._max:
            # Fail closed: forgetting an id early would let its proof be replayed.
            return False
        expiry = now + self._ttl
        self._expiry[key] = expiry
        self._order.append((expiry, key))
        return True

    def _purge(self, now: float) -> None:
        while self._order and self._order[0][0] <= now:
            _, key = self._order.popleft()
            self._expiry.pop(key, None)
