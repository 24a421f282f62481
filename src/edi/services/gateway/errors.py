"""Errors in NHN's ErrorMessage shape, with the request id, and the numeric codes of NHN's API v3.

Every failure leaves the gateway as an ErrorMessage: bad input as 400 with errorCode 1000 and the reasons in
`validationErrors`, authorisation as 403 with 1201/1202, unknown ids as 404 with 1010, and anything unexpected as
500 with no detail (the request id ties it to the log, which never holds payloads or tokens).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from edi.auth.errors import AuthError, InsufficientScopeError
from edi.client.models import ErrorMessage

log = structlog.get_logger("edi.gateway")

MODEL_VALIDATION_ERROR = "Model validation error occurred"


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorMessage, "description": description}


# The error responses as the contract documents them, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("Bad request - The request contained invalid data or the request was cancelled"),
    403: _documented("Forbidden - Authenticated client is not authorized"),
    500: _documented("Internal server error - Unexpected server error"),
}
ERROR_RESPONSES_WITH_404 = {
    **ERROR_RESPONSES, 404: _documented("Not found - Message with given id could not be found"),
}


class ErrorCode(IntEnum):
    UNSPECIFIED = 0
    INVALID_REQUEST = 1000  # the request or its business document is not valid (v2's code; v3 says 1001)
    NOT_FOUND = 1010
    APPREC_TO_APPREC = 1100
    APPREC_FROM_NON_RECEIVER = 1102
    RECEIVERS_UNKNOWN = 1200
    NOT_AUTHORISED_FOR_MESSAGE = 1201  # the caller is neither the message's sender nor one of its receivers
    NOT_AUTHORISED_FOR_HER_ID = 1202  # the caller names a HER-id its token does not hold


class ApiError(HTTPException):
    """An answer in the ErrorMessage shape. An HTTPException, so that FastAPI passes it through unchanged even
    when it is raised while the request body is read (the size limit)."""

    def __init__(
        self, status: int, error: str, code: ErrorCode = ErrorCode.UNSPECIFIED,
        validation_errors: Sequence[str] | None = None, headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, error, dict(headers) if headers else None)
        self.error = error
        self.code = code
        self.validation_errors = list(validation_errors) if validation_errors is not None else None


def invalid(*validation_errors: str, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> ApiError:
    return ApiError(400, MODEL_VALIDATION_ERROR, code, list(validation_errors))


def not_found() -> ApiError:
    return ApiError(404, "Could not find the message", ErrorCode.NOT_FOUND)


def not_authorised_for(her_ids: Iterable[str]) -> ApiError:
    listed = ", ".join(sorted(set(her_ids), key=lambda h: (len(h), h)))
    return ApiError(403, f"Not authorized for HerId(s): {listed}", ErrorCode.NOT_AUTHORISED_FOR_HER_ID)


def not_authorised_for_message() -> ApiError:
    return ApiError(
        403, "Not authorized for the message: the token holds neither its sender nor a receiver it concerns",
        ErrorCode.NOT_AUTHORISED_FOR_MESSAGE,
    )


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def error_response(request: Request, error: ApiError) -> JSONResponse:
    body = ErrorMessage(
        error=error.error, error_code=int(error.code), validation_errors=error.validation_errors,
        request_id=request_id(request),
    )
    return JSONResponse(body.model_dump(mode="json", by_alias=True), error.status_code, headers=error.headers)


def install_error_handlers(
    app: FastAPI, *, www_authenticate: str, auth_headers: Callable[[], Mapping[str, str]] = dict,
) -> None:
    """`www_authenticate`: the challenge's scheme and parameters (e.g. `DPoP algs="ES256 ..."`);
    `auth_headers`: more headers for a 401, such as a fresh DPoP-Nonce."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            return error_response(request, exc)
        # Starlette's own: unknown path (404), wrong method (405).
        code = ErrorCode.NOT_FOUND if exc.status_code == 404 else ErrorCode.UNSPECIFIED
        return error_response(request, ApiError(exc.status_code, str(exc.detail), code, headers=exc.headers))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, invalid(*(_describe(e) for e in exc.errors())))

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        status = 403 if isinstance(exc, InsufficientScopeError) else 401
        challenge = f'{www_authenticate}, error="{exc.error}", error_description="{exc.description}"'
        headers = {"WWW-Authenticate": challenge, **auth_headers()}
        log.info("request not authenticated", request_id=request_id(request), reason=exc.description)
        return error_response(request, ApiError(status, exc.description, headers=headers))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type and the request id only: an exception's text may quote a payload.
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
        log.error("unexpected error", request_id=request_id(request), error_type=type(exc).__name__, where=where)
        # Sent from outside the request-id layer, so the header is set here.
        return error_response(request, ApiError(500, "An unknown error occurred", headers={
            "X-Request-Id": request_id(request),
        }))


def _describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as `where: what`, without the input (it may be part of a health document)."""
    location = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "json_invalid":
        return f"body: {message} at position {location[-1]}" if len(location) > 1 else f"body: {message}"
    if len(location) > 1 and location[0] == "body":
        location = location[1:]  # body.businessDocument reads better as businessDocument
    return f"{'.'.join(location)}: {message}" if location else message
