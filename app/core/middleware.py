"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a copy per request).

One middleware does the per-request plumbing: request id in and out, client address (trusting
X-Forwarded-For only from configured proxies), request context for logs and audit, body size
limit, security headers, `Cache-Control: no-store` on authenticated responses and metrics.
"""

from __future__ import annotations

import ipaddress
import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.context import RequestContext, reset_request_context, set_request_context
from app.core.errors import problem_response

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
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc load their bundles from a CDN and use inline scripts.
_DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    b"img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    b"font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")


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
        incoming_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming_id if REQUEST_ID_RE.match(incoming_id) else uuid.uuid4().hex
        user_agent = headers.get(b"user-agent")
        ctx = RequestContext(
            request_id=request_id,
            ip=self._client_ip(scope, headers),
            user_agent=user_agent.decode("latin-1")[:500] if user_agent else None,
        )
        token = set_request_context(ctx)
        path: str = scope["path"]
        start = time.perf_counter()
        status_holder = [500]
        is_docs = path.startswith(_DOCS_PATHS)
        authenticated = b"authorization" in headers

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._reject_too_large(scope, send, request_id)
            reset_request_context(token)
            return

        received = 0
        max_body = self.max_body

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise _BodyTooLarge()
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                out = list(message.get("headers", []))
                out.append((b"x-request-id", request_id.encode()))
                if self.security_headers:
                    out.extend(_BASE_SECURITY_HEADERS)
                    out.append((b"content-security-policy", _DOCS_CSP if is_docs else _API_CSP))
                if authenticated and not any(k.lower() == b"cache-control" for k, _ in out):
                    out.append((b"cache-control", b"no-store"))
                    out.append((b"pragma", b"no-cache"))
                message = {**message, "headers": out}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            await self._reject_too_large(scope, send, request_id)
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            HTTP_REQUESTS.labels(scope["method"], route_path, str(status_holder[0])).inc()
            HTTP_LATENCY.labels(scope["method"], route_path).observe(time.perf_counter() - start)
            reset_request_context(token)

    async def _reject_too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        response = problem_response(
            None,
            status=413,
            code="payload_too_large",
            detail=f"Request body exceeds {self.max_body} bytes",
            headers={"x-request-id": request_id},
        )
        await response(scope, _noop_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}
