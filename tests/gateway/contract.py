"""NHN's contract (../shared/contracts/msh-api-v2.json) as a test oracle: every response the tests receive from a
v2 path is checked against the status codes and schemas the contract documents for that operation."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import httpx
from openapi_schema_validator import OAS30Validator

from tests.shared_samples import SHARED

CONTRACTS = SHARED / "contracts"
CONTRACT = CONTRACTS / "msh-api-v2.json"
EXAMPLES = CONTRACTS / "msh-api-v2-responses"


@cache
def contract() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(CONTRACT.read_text(encoding="utf-8"))
    return document


def inline(schema: Any) -> Any:
    """The schema with every `#/components/schemas/...` reference replaced by what it names, and `nullable`
    spelled as an alternative (OpenAPI 3.0's `nullable` next to an `allOf` enum does not admit null otherwise)."""
    if isinstance(schema, dict):
        reference = schema.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/components/schemas/"):
            return inline(contract()["components"]["schemas"][reference.rsplit("/", 1)[1]])
        if schema.get("nullable") is True:
            rest = {k: v for k, v in schema.items() if k != "nullable"}
            return {"anyOf": [inline(rest), {"enum": [None]}]}
        return {k: inline(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [inline(v) for v in schema]
    return schema


def operations() -> dict[str, tuple[str, str]]:
    """operationId -> (method, path template)."""
    return {
        operation["operationId"]: (method.upper(), path)
        for path, methods in contract()["paths"].items() for method, operation in methods.items()
    }


def operation_for(method: str, path: str) -> dict[str, Any] | None:
    for template, methods in contract()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path, re.IGNORECASE) and method.lower() in methods:
            operation: dict[str, Any] = methods[method.lower()]
            return operation
    return None


def check_response(response: httpx.Response) -> None:
    """Raises AssertionError unless the response is one the contract documents for its operation, with a body
    that validates against the documented schema. 401 is the authentication layer's (undocumented, as NHN's);
    its body is checked against ErrorMessage. Paths outside the contract (notifications) are not checked here."""
    operation = operation_for(response.request.method, response.request.url.path)
    if operation is None:
        return
    status = str(response.status_code)
    if status == "401":
        schema: Any = {"$ref": "#/components/schemas/ErrorMessage"}
    else:
        documented = operation["responses"]
        assert status in documented, f"{operation['operationId']} answered {status}, undocumented in the contract"
        content = documented[status].get("content")
        if content is None:
            assert not response.content, f"{operation['operationId']} {status} must have no body"
            return
        schema = content["application/json"]["schema"]
    assert response.headers["content-type"].startswith("application/json")
    OAS30Validator(inline(schema), format_checker=OAS30Validator.FORMAT_CHECKER).validate(response.json())
