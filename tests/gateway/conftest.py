"""The gateway around the in-memory Messaging double, and callers holding dev tokens for chosen HER-ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from edi.auth.dev import DevIssuer
from edi.core.validation import Validator
from edi.services.gateway.app import create_app
from edi.services.gateway.settings import Environment, GatewaySettings
from edi.settings import ValidationSettings
from tests.gateway.contract import check_response
from tests.gateway.memory import InMemoryMessaging
from tests.shared_samples import STANDARDS

BASE_URL = "http://gateway.test"
API_HEADERS = {"api-version": "2", "nhn-source-system": "edi tests, v1"}

Caller = Callable[..., httpx.AsyncClient]


def dev_settings(data_dir: Path, **overrides: object) -> GatewaySettings:
    return GatewaySettings(environment=Environment.DEVELOPMENT, data_dir=data_dir, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def validator() -> Validator:
    return ValidationSettings(schema_dirs=[STANDARDS]).validator()


@pytest.fixture
def messaging(validator: Validator) -> InMemoryMessaging:
    return InMemoryMessaging(validator)


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    return dev_settings(tmp_path)


@pytest.fixture
def issuer(settings: GatewaySettings) -> DevIssuer:
    return DevIssuer.load_or_create(settings.data_dir)


@pytest.fixture
def app(messaging: InMemoryMessaging, settings: GatewaySettings) -> FastAPI:
    return create_app(messaging, settings)


async def _checked(response: httpx.Response) -> None:
    await response.aread()
    check_response(response)


@pytest_asyncio.fixture(loop_scope="function")
async def caller(app: FastAPI, issuer: DevIssuer, settings: GatewaySettings) -> AsyncIterator[Caller]:
    """caller(*her_ids) -> an HTTP client holding a dev token for those HER-ids (none: no token at all); every
    response it receives is checked against the contract."""
    clients: list[httpx.AsyncClient] = []

    def make(*her_ids: int | str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        auth = {}
        if her_ids:
            token = issuer.issue(her_ids, audience=settings.auth_audience, scope=settings.auth_scope)
            auth = {"Authorization": f"Bearer {token}"}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
            headers={**API_HEADERS, **auth, **(headers or {})}, event_hooks={"response": [_checked]},
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
