"""The client against the gateway around the in-memory Messaging double (the gateway tests' fixtures)."""

from tests.gateway.conftest import app, issuer, messaging, settings, validator

__all__ = ["app", "issuer", "messaging", "settings", "validator"]
