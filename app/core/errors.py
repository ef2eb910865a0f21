"""Domain exceptions and their RFC 9457 problem+json rendering.

Services raise `AppError` subclasses carrying a status and a stable machine-readable `code`;
one set of handlers turns them, framework validation errors, database integrity errors and any
unexpected exception into `application/problem+json`. Nothing a client sends produces a stack
trace or echoes a value back (validation errors drop the offending input, which may be a secret).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import get_route_path

from app.core.context import current_request_id

logger = logging.getLogger("gatehouse.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://gatehouse.dev/problems/"


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str | None = None
    # When True the request's transaction is committed before the error is answered.
    keep_changes: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        keep_changes: bool | None = None,
    ) -> None:
        super().__init__(detail or self.title or "")
        if keep_changes is not None:
            self.keep_changes = keep_changes
        self.detail = detail
        if code:
            self.code = code
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "not_authenticated"
    title = "Not authenticated"

    def __init__(self, detail: str | None = "Not authenticated", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class ValidationFailed(AppError):
    """422 with field-level errors: `errors=[{"field": "email", "message": "..."}]`."""

    status = 422
    code = "validation_error"
    title = "Validation failed"

    @classmethod
    def for_field(cls, field: str, message: str, *, code: str | None = None) -> ValidationFailed:
        return cls(message, code=code, errors=[{"field": field, "message": message}])


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(
            detail or "Too many requests; try again later",
            headers={"Retry-After": str(max(1, retry_after))},
            extra={"retry_after": max(1, retry_after)},
        )


def problem_response(
    request: Request | None,
    *,
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or title or HTTPStatus(status).phrase,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _field_of(loc: tuple[Any, ...]) -> str:
    # Only the leading element names the location: a field may itself be called "path".
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return app_error_response(request, exc)


def app_error_response(request: Request | None, exc: AppError) -> Response:
    """The problem+json answer to a domain error (also for pure ASGI middleware, which runs
    outside the exception handlers: request None)."""
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _json_message(err: Mapping[str, Any]) -> str:
    """'Invalid JSON at character N: <reason>' from FastAPI's json_invalid error."""
    loc = tuple(err.get("loc", ()))
    reason = (err.get("ctx") or {}).get("error")
    where = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
    return f"Invalid JSON{where}" + (f": {reason}" if reason else "")


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if any(err.get("loc", ("",))[0] == "path" for err in exc.errors()):
        # PUT /users/me: Starlette chose /users/{user_id}, the only route whose method fits,
        # and "me" is no id. But /users/me is a resource of its own, which has no PUT.
        literal, methods = _methods_at(request)
        if literal and request.method not in methods:
            return await _http_error(request, StarletteHTTPException(405))
    errors = [
        {
            # A body that is not JSON at all: FastAPI's loc is ("body", <character offset>),
            # which names no field; the body itself is at fault.
            "field": "body"
            if err.get("type") == "json_invalid"
            else _field_of(tuple(err.get("loc", ()))),
            "location": str(err.get("loc", ("body",))[0]),
            "message": _json_message(err)
            if err.get("type") == "json_invalid"
            else err.get("msg", "invalid"),
            "type": err.get("type", "value_error"),
        }
        for err in exc.errors()
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem_response(
        request,
        status=422,
        code="validation_error",
        title="Validation failed",
        detail=f"Invalid input: {fields}" if fields else "Invalid input",
        errors=errors,
    )


# FastAPI's answer when a body cannot be read at all (bytes that are not UTF-8 JSON, form data
# that does not parse). A JSON syntax error is a 422 naming the body; so is this.
_UNREADABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
        return problem_response(
            request,
            status=422,
            code="validation_error",
            title="Validation failed",
            detail="Invalid input: body",
            errors=[
                {
                    "field": "body",
                    "location": "body",
                    "message": "The request body could not be read "
                    "(not UTF-8 JSON, or malformed form data)",
                    "type": "json_invalid",
                }
            ],
        )
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        # Starlette names only the methods of the first route whose path matched; a client
        # needs every method the path answers (RFC 9110 15.5.6).
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    codes = {
        400: "bad_request",
        401: "not_authenticated",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }
    return problem_response(
        request,
        status=exc.status_code,
        code=codes.get(exc.status_code, "http_error"),
        detail=str(exc.detail) if exc.detail else None,
        headers=headers,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the resource at this request's path answers. A literal path (/users/me)
    is its own resource, not an instance of a template it also fits (/users/{user_id})."""
    _, methods = _methods_at(request)
    return ", ".join(sorted(methods))


def _methods_at(request: Request) -> tuple[bool, frozenset[str]]:
    """(whether a literal route has this request's path, the methods of its resource)."""
    table: list[tuple[Any, bool, frozenset[str]]] | None = getattr(
        request.app.state, "_allow_table", None
    )
    if table is None:
        table = [
            (context.path_regex, not context.param_convertors, frozenset(context.methods))
            for context in iter_route_contexts(request.app.routes)
            if getattr(context, "path_regex", None) is not None and context.methods
        ]
        request.app.state._allow_table = table
    path = get_route_path(request.scope)
    matching = [(literal, methods) for regex, literal, methods in table if regex.match(path)]
    literal = any(is_literal for is_literal, _ in matching)
    if literal:
        matching = [(is_literal, methods) for is_literal, methods in matching if is_literal]
    return literal, frozenset().union(*(methods for _, methods in matching))


async def _integrity_error(request: Request, exc: Exception) -> Response:
    # Deliberately generic: the clashing value may be one the caller is not allowed to read.
    logger.info("integrity error: %s", type(exc).__name__)
    return problem_response(
        request,
        status=409,
        code="conflict",
        title="Conflict",
        detail="The request conflicts with the current state of a resource",
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    logger.error("database error", exc_info=exc)
    return problem_response(
        request,
        status=503,
        code="database_unavailable",
        detail="The database could not complete the request; try again",
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error", exc_info=exc)
    return problem_response(
        request, status=500, code="internal_error", detail="An unexpected error occurred"
    )


class ProblemFieldError(BaseModel):
    field: str
    message: str
    location: str | None = None
    type: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is answered (documented in OpenAPI)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ProblemFieldError] | None = None


def _document_problem_schema(app: FastAPI) -> None:
    """`problem_responses()` refers to #/components/schemas/Problem: put it in the document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in problem.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault("Problem", problem)
        _document_validation_errors_as_problems(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_validation_errors_as_problems(schema: dict[str, Any]) -> None:
    """FastAPI documents its own 422 as application/json HTTPValidationError; every 422 this
    application answers is problem+json (`_validation_error`), so the document says so."""
    problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = (
                operation.get("responses", {}).get("422") if isinstance(operation, dict) else None
            )
            if response is not None and PROBLEM_CONTENT_TYPE not in response.get("content", {}):
                response["content"] = problem
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now unreferenced
        if f'"#/components/schemas/{name}"'.encode() not in orjson.dumps(schema):
            components.pop(name, None)


def install_error_handlers(app: FastAPI) -> None:
    _document_problem_schema(app)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For `responses=` on routes: documents the problem+json errors a route can answer."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
