"""Why a request was not authenticated, in the terms RFC 6750 and RFC 9449 use in WWW-Authenticate."""

from __future__ import annotations


class AuthError(Exception):
    """401: the access token or its DPoP proof was missing or not acceptable.

    `error` is the RFC's code (invalid_token, invalid_dpop_proof, use_dpop_nonce, invalid_request); the text
    says what was wrong and never repeats the token."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class InsufficientScopeError(AuthError):
    """403: a valid token that does not carry the scope the API requires."""

    def __init__(self, scope: str) -> None:
        super().__init__("insufficient_scope", f"the access token lacks the scope {scope}")
