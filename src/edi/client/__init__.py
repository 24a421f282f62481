"""A Python client for the EDI 2.0 API: `EdiClient` (async, httpx) and the contract's models (`models`)."""

from edi.client.client import ApiError, EdiClient, StaticToken, TokenSource

__all__ = ["ApiError", "EdiClient", "StaticToken", "TokenSource"]
