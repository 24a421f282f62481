"""The gateway's FastAPI application: NHN's EDI 2.0 API (v2 contract) plus v3-style notifications, over the
Messaging seam. `edi up` mounts it; tests and `bench/api.py` build it around a Messaging of their choosing."""

from __future__ import annotations

import sys
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from edi.auth.dev import DEV_ISSUER, DevIssuer
from edi.auth.dpop import ALGORITHMS, NonceSource, ProofChecker, ProofPolicy
from edi.auth.jwks import KeySource, RemoteJwks, StaticKeys
from edi.auth.tokens import TokenVerifier, TrustedIssuer
from edi.observability.http import HttpObservability, ops_router
from edi.observability.probes import Ops
from edi.services.gateway.access import Authenticator, OrganisationDirectory
from edi.services.gateway.compat import ContractCompatibility
from edi.services.gateway.errors import install_error_handlers
from edi.services.gateway.messages import messages_router, too_large_text
from edi.services.gateway.notifications import notifications_router
from edi.services.gateway.settings import Environment, GatewaySettings
from edi.services.messaging import Messaging
from edi.services.objects.api import objects_router
from edi.services.objects.service import ObjectService
from edi.services.operations.api import OperatorSettings, operations_router
from edi.services.operations.service import Operations

# Room for the JSON around a base64 document of the largest size (field names, receiverHerIdsSubset, overrides).
_ENVELOPE_BYTES = 64 * 1024
_DEV_ISSUER_REFUSED = (
    "tokens of the development issuer are accepted only by a development deployment (EDI_ENVIRONMENT=development)"
)


def create_app(
    messaging: Messaging, settings: GatewaySettings, *, directory: OrganisationDirectory | None = None,
    objects: ObjectService | None = None, ops: Ops | None = None, operations: Operations | None = None,
) -> FastAPI:
    """`directory` resolves tokens with herid 0 to the organisation's HER-ids (a RegistryDirectory over the
    capability registry); without one such tokens are refused. `objects`: the object API (large attachments)
    at /objects, under the same authentication. `ops`: what /readyz checks (the process's parts; none without).
    `operations`: the operator tools at /ops, for tokens with the operator scope (EDI_OPS_SCOPE)."""
    nonces = None
    if settings.dpop_require_nonce:
        secret = settings.dpop_nonce_secret.get_secret_value().encode() if settings.dpop_nonce_secret else None
        nonces = NonceSource(secret)
    authenticator = Authenticator(build_verifier(settings, nonces), directory, settings.public_url)

    app = FastAPI(
        title="MSH API v2", version="v2", separate_input_output_schemas=False,
        description="EDI 2.0 message service (NHN's v2 contract) with v3-style notifications. Authenticate with "
        "an access token bound by DPoP (Authorization: DPoP <token>, plus a DPoP proof header).",
    )
    install_error_handlers(
        app, www_authenticate=f'DPoP algs="{" ".join(ALGORITHMS)}"',
        auth_headers=(lambda: {"DPoP-Nonce": nonces.current(time.time())}) if nonces else dict,
    )
    app.include_router(messages_router(
        messaging, authenticator.caller, max_message_bytes=settings.max_message_bytes,
    ))
    app.include_router(notifications_router(
        messaging, authenticator.caller, heartbeat_seconds=settings.sse_heartbeat_seconds,
    ))
    if objects is not None:

        async def caller_her_ids(request: Request) -> frozenset[str]:
            return (await authenticator.caller(request)).her_ids

        app.include_router(objects_router(objects, caller_her_ids))
    app.include_router(ops_router(ops or Ops()))
    if operations is not None:
        operator_settings = settings.model_copy(update={"auth_scope": OperatorSettings().ops_scope})
        operators = Authenticator(build_verifier(operator_settings, nonces), None, settings.public_url)
        app.include_router(operations_router(operations, operators.caller))
    app.add_middleware(HttpObservability, routes=app.routes)  # the innermost layer: it sees canonical paths
    encoded_limit = (settings.max_message_bytes + 2) // 3 * 4 + _ENVELOPE_BYTES
    too_large = too_large_text(settings.max_message_bytes)
    app.add_middleware(_ObjectsUnlimited, max_body_bytes=encoded_limit, too_large=too_large)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _contract_shaped(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes,
                separate_input_output_schemas=False,
            ))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class _ObjectsUnlimited:
    """The contract's request handling for every path, and its body limit for all but /objects: uploads there
    stream to the blob store, up to the object service's own limit (EDI_OBJECT_MAX_BYTES)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, too_large: str) -> None:
        self.limited = ContractCompatibility(app, max_body_bytes=max_body_bytes, too_large=too_large)
        self.unlimited = ContractCompatibility(app, max_body_bytes=sys.maxsize, too_large=too_large)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        objects = scope["type"] == "http" and (scope["path"] + "/").startswith("/objects/")
        await (self.unlimited if objects else self.limited)(scope, receive, send)


def build_verifier(settings: GatewaySettings, nonces: NonceSource | None = None) -> TokenVerifier:
    issuers: list[TrustedIssuer] = []
    if settings.auth_issuer:
        keys: KeySource = (
            StaticKeys.from_file(settings.auth_jwks_file) if settings.auth_jwks_file
            else RemoteJwks(str(settings.auth_jwks_url))
        )
        issuers.append(TrustedIssuer(settings.auth_issuer, keys))
    refused: dict[str, str] = {}
    if settings.environment is Environment.DEVELOPMENT:
        dev = DevIssuer.load_or_create(settings.data_dir)
        issuers.append(TrustedIssuer(DEV_ISSUER, StaticKeys(dev.keys()), bearer_allowed=True))
    else:
        refused[DEV_ISSUER] = _DEV_ISSUER_REFUSED
    return TokenVerifier(
        issuers, audience=settings.auth_audience, scope=settings.auth_scope,
        proofs=ProofChecker(ProofPolicy(max_age_seconds=settings.dpop_max_age_seconds, nonces=nonces)),
        leeway_seconds=settings.auth_leeway_seconds, refused_issuers=refused,
    )


def _contract_shaped(document: dict[str, Any]) -> dict[str, Any]:
    """The generated document with what NHN's has and FastAPI's lacks, and without what FastAPI adds: the
    contract answers bad input with 400 and an ErrorMessage, never with 422 and FastAPI's validation error."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                # A query parameter is present or absent; FastAPI's "or null" for an optional one says nothing.
                options = parameter["schema"].get("anyOf", [])
                if {"type": "null"} in options and len(options) == 2:
                    rest = {k: v for k, v in parameter["schema"].items() if k != "anyOf"}
                    parameter["schema"] = {**next(o for o in options if o != {"type": "null"}), **rest}
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:  # ASP.NET reads these as JSON too, and so does the gateway
                content["text/json"] = content["application/*+json"] = content["application/json"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    document.setdefault("components", {})["securitySchemes"] = {
        "Bearer": {
            "type": "http", "scheme": "Bearer", "bearerFormat": "JWT",
            "description": "An access token. Production: bound by DPoP and sent as 'DPoP <token>' with a DPoP "
            "proof header; a development deployment also takes its dev tokens as 'Bearer <token>'.",
        },
    }
    document["security"] = [{"Bearer": []}]
    return document
