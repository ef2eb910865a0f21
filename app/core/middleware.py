"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a copy per request).

One middleware does the per-request plumbing: request id in and out, client address (trusting
X-Forwarded-For only from configured proxies), request context for logs and audit, body size
limit (declared and streamed), security headers, `Cache-Control: no-store` on authenticated
responses, a last-resort problem+json 500 carrying the request id, and metrics.

It sits inside Starlette's ServerErrorMiddleware, so an unexpected exception is answered (and
logged with the request id and user id) here, before the request context is gone.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from typing import Any

from fastapi import HTTPException
from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.context import RequestContext, reset_request_context, set_request_context
from app.core.errors import problem_response

logger = logging.getLogger("gatehouse.http")

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

HTTP_REQUESTS = Counter(
    "gatehouse_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "gatehouse_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_BASE_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc load their bundles from a CDN and use inline scripts.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    b"font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; frame-ancestors 'none'"
)
_DOCS_PATHS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
_API_HEADERS = [*_BASE_SECURITY_HEADERS, (b"content-security-policy", API_CSP)]
_DOCS_HEADERS = [*_BASE_SECURITY_HEADERS, (b"content-security-policy", DOCS_CSP)]
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


# `labels()` validates and locks on every call; the children are cached instead (the label
# values are bounded: route templates, never raw paths).
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _metric_children(method: str, route: str, status: int) -> tuple[Any, Any]:
    key = (method, route, status)
    children = _CHILDREN.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_LATENCY.labels(method, route),
        )
        _CHILDREN[key] = children
    return children


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed (e.g. chunked) body passes the limit.

    A FastAPI HTTPException on purpose: FastAPI re-raises those while reading a body (anything
    else becomes a 400), and the HTTP error handler renders it as problem+json.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"Request body exceeds {limit} bytes")


class RequestPlumbingMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.security_headers = settings.SECURITY_HEADERS_ENABLED
        self.max_body = settings.MAX_REQUEST_BODY_BYTES
        self.trusted_proxies = [
            ipaddress.ip_network(p, strict=False) for p in settings.TRUSTED_PROXIES
        ]

    def _client_ip(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        client = scope.get("client")
        peer = client[0] if client else None
        if peer and self.trusted_proxies and b"x-forwarded-for" in headers:
            try:
                peer_addr = ipaddress.ip_address(peer)
            except ValueError:
                return peer
            if any(peer_addr in net for net in self.trusted_proxies):
                # Walk from the right: the first address not one of our proxies is the client.
                hops = [h.strip() for h in headers[b"x-forwarded-for"].decode("latin-1").split(",")]
                for hop in reversed(hops):
                    try:
                        addr = ipaddress.ip_address(hop)
                    except ValueError:
                        return peer
                    if not any(addr in net for net in self.trusted_proxies):
                        return hop
        return peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming_id = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = incoming_id if REQUEST_ID_RE.match(incoming_id) else os.urandom(16).hex()
        request_id_header = (REQUEST_ID_HEADER, request_id.encode())
        user_agent = headers.get(b"user-agent")
        ctx = RequestContext(
            request_id=request_id,
            ip=self._client_ip(scope, headers),
            user_agent=user_agent.decode("latin-1")[:500] if user_agent else None,
        )
        token = set_request_context(ctx)
        start = time.perf_counter()
        status = 500
        started = False
        extra_headers = [request_id_header]
        if self.security_headers:
            extra_headers += _DOCS_HEADERS if scope["path"] in _DOCS_PATHS else _API_HEADERS
        authenticated = b"authorization" in headers
        max_body = self.max_body

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                out = [*message.get("headers", ()), *extra_headers]
                if authenticated and not any(k.lower() == b"cache-control" for k, _ in out):
                    out += _NO_STORE
                message = {**message, "headers": out}
            await send(message)

        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_body:
                raise BodyTooLarge(max_body)

            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > max_body:
                        raise BodyTooLarge(max_body)
                return message

            await self.app(scope, limited_receive, send_wrapper)
        except BodyTooLarge as exc:
            if not started:
                await problem_response(
                    None, status=413, code="payload_too_large", detail=str(exc.detail)
                )(scope, _noop_receive, send_wrapper)
        except Exception:
            # Logged here, while the request id and the user id are still known; the client gets
            # a problem+json 500 with no trace of the error.
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                await problem_response(
                    None,
                    status=500,
                    code="internal_error",
                    detail="An unexpected error occurred",
                )(scope, _noop_receive, send_wrapper)
            else:
                raise
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            counter, histogram = _metric_children(scope["method"], route_path, status)
            counter.inc()
            histogram.observe(time.perf_counter() - start)
            reset_request_context(token)


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, with refused preflights answered as problem+json."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "content-type")
        }
        return problem_response(
            None,
            status=response.status_code,
            code="cors_rejected",
            detail=bytes(response.body).decode("latin-1"),
            headers=headers,
        )
