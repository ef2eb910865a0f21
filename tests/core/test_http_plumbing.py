"""Cross-cutting HTTP behaviour: problem+json, request ids, logs, headers, CORS, body limit,
caching, health, metrics and docs. Probe routes are mounted on the real application so these
tests do not depend on any feature module."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field, ValidationError

from app.core.config import Settings
from app.core.context import set_actor
from app.core.database import create_engine
from app.core.logging import JsonFormatter
from tests.conftest import make_settings

PROBLEM = "application/problem+json"
ACTOR = uuid.UUID("018f0000-0000-7000-8000-000000000001")
probe_logger = logging.getLogger("gatehouse.probe")


class ProbeBody(BaseModel):
    name: str = Field(min_length=2)
    age: int
    secret: str = Field(min_length=30)


def _probe_router() -> APIRouter:
    router = APIRouter(prefix="/_probe")

    @router.post("/echo")
    async def echo(body: ProbeBody) -> dict[str, Any]:
        return {"name": body.name}

    @router.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: /srv/gatehouse/app.py line 42")

    @router.get("/log")
    async def log() -> dict[str, str]:
        set_actor(ACTOR, "probe-user", None)
        probe_logger.warning("probe message", extra={"probe": "yes"})
        return {"ok": "yes"}

    return router


@pytest.fixture
def probed(app: FastAPI) -> FastAPI:
    app.include_router(_probe_router())
    return app


@pytest.fixture
async def pclient(probed: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=probed, client=("203.0.113.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"] and body["code"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# ---- problem+json ----------------------------------------------------------------------


async def test_malformed_json_is_422_problem(pclient: httpx.AsyncClient) -> None:
    response = await pclient.post(
        "/_probe/echo", content=b'{"name": "ab", ', headers={"content-type": "application/json"}
    )
    body = _problem(response, 422)
    assert body["code"] == "validation_error"
    assert body["errors"] and body["errors"][0]["type"] == "json_invalid"
    # the body is at fault, not a "field" named after FastAPI's character offset
    assert body["errors"][0]["field"] == "body"
    assert body["errors"][0]["message"].startswith("Invalid JSON at character 15")
    assert body["detail"] == "Invalid input: body"


async def test_validation_errors_list_fields_without_echoing_input(
    pclient: httpx.AsyncClient,
) -> None:
    response = await pclient.post(
        "/_probe/echo", json={"name": "a", "age": "old", "secret": "hunter2-do-not-echo"}
    )
    body = _problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"name", "age", "secret"}
    assert all(e["message"] for e in body["errors"])
    assert "hunter2-do-not-echo" not in response.text


async def test_unknown_method_is_405_problem(pclient: httpx.AsyncClient) -> None:
    body = _problem(await pclient.delete("/health"), 405)
    assert body["code"] == "method_not_allowed"


async def test_unexpected_error_is_500_problem_without_trace(
    pclient: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gatehouse.http"):
        response = await pclient.get("/_probe/boom", headers={"X-Request-ID": "boom-1"})
    body = _problem(response, 500)
    assert body["code"] == "internal_error"
    assert body["request_id"] == "boom-1"
    assert "secret internals" not in response.text and "Traceback" not in response.text
    # Security headers are on error responses too.
    assert response.headers["x-content-type-options"] == "nosniff"
    records = [r for r in caplog.records if r.name == "gatehouse.http"]
    assert records and records[0].exc_info is not None


# ---- request id and logs ---------------------------------------------------------------


async def test_request_id_is_echoed(pclient: httpx.AsyncClient) -> None:
    response = await pclient.get("/health", headers={"X-Request-ID": "trace.abc-123_x"})
    assert response.headers["x-request-id"] == "trace.abc-123_x"


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "semi;colon", "<script>"])
async def test_invalid_request_id_is_replaced(pclient: httpx.AsyncClient, bad: str) -> None:
    response = await pclient.get("/health", headers={"X-Request-ID": bad})
    generated = response.headers["x-request-id"]
    assert generated != bad
    assert len(generated) == 32 and int(generated, 16) >= 0


async def test_generated_request_ids_differ(pclient: httpx.AsyncClient) -> None:
    first = (await pclient.get("/health")).headers["x-request-id"]
    second = (await pclient.get("/health")).headers["x-request-id"]
    assert first != second


async def test_logs_are_json_with_request_and_user_id(pclient: httpx.AsyncClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    probe_logger.addHandler(handler)
    try:
        response = await pclient.get("/_probe/log", headers={"X-Request-ID": "log-req-1"})
    finally:
        probe_logger.removeHandler(handler)
    assert response.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["message"] == "probe message"
    assert entry["level"] == "WARNING"
    assert entry["request_id"] == "log-req-1"
    assert entry["user_id"] == str(ACTOR)
    assert entry["probe"] == "yes"


def test_json_formatter_outside_a_request_has_no_request_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello you"
    assert "request_id" not in entry


# ---- security headers and caching -------------------------------------------------------


async def test_security_headers_on_api(pclient: httpx.AsyncClient) -> None:
    headers = (await pclient.get("/health")).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["strict-transport-security"].startswith("max-age=")
    assert headers["content-security-policy"].startswith("default-src 'none'")


async def test_docs_get_a_csp_that_lets_them_render(pclient: httpx.AsyncClient) -> None:
    response = await pclient.get("/docs")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src" in csp and "https://cdn.jsdelivr.net" in csp
    assert "frame-ancestors 'none'" in csp
    redoc = await pclient.get("/redoc")
    assert redoc.status_code == 200
    assert "script-src" in redoc.headers["content-security-policy"]


@pytest.mark.parametrize("settings_overrides", [{"SECURITY_HEADERS_ENABLED": False}])
async def test_security_headers_can_be_disabled(pclient: httpx.AsyncClient) -> None:
    headers = (await pclient.get("/health")).headers
    assert "x-frame-options" not in headers
    assert "content-security-policy" not in headers
    assert headers["x-request-id"]


async def test_authenticated_requests_are_not_cached(pclient: httpx.AsyncClient) -> None:
    anonymous = await pclient.get("/health")
    assert "cache-control" not in anonymous.headers
    authed = await pclient.get("/health", headers={"Authorization": "Bearer whatever"})
    assert authed.headers["cache-control"] == "no-store"


# ---- CORS ----------------------------------------------------------------------------------

ORIGIN = "https://portal.hospital.example"


@pytest.mark.parametrize(
    "settings_overrides", [{"ALLOWED_ORIGINS": f"{ORIGIN}, https://other.example"}]
)
async def test_cors_allows_configured_origins_only(pclient: httpx.AsyncClient) -> None:
    preflight = await pclient.options(
        "/health",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"

    simple = await pclient.get("/health", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()

    evil = await pclient.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    evil_preflight = await pclient.options(
        "/health",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in evil_preflight.headers
    assert _problem(evil_preflight, 400)["code"] == "cors_rejected"


async def test_no_cors_headers_without_configured_origins(pclient: httpx.AsyncClient) -> None:
    response = await pclient.get("/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origins", ["*", "https://a.example,*", "https://a.example/", '["x"]'])
def test_wildcard_or_malformed_origins_are_refused(origins: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_settings(ALLOWED_ORIGINS=origins)
    assert "ALLOWED_ORIGINS" in str(info.value)


# ---- body size limit -------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"MAX_REQUEST_BODY_BYTES": 2048}])
async def test_declared_oversized_body_is_413(pclient: httpx.AsyncClient) -> None:
    response = await pclient.post(
        "/_probe/echo", content=b"x" * 4096, headers={"content-type": "application/json"}
    )
    assert _problem(response, 413)["code"] == "payload_too_large"


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b" " * size


@pytest.mark.parametrize("settings_overrides", [{"MAX_REQUEST_BODY_BYTES": 2048}])
@pytest.mark.parametrize("path", ["/_probe/echo", "/_probe/raw"])
async def test_chunked_oversized_body_is_413(pclient: httpx.AsyncClient, path: str) -> None:
    request = pclient.build_request(
        "POST", path, content=_chunks(5, 1000), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await pclient.send(request)
    assert _problem(response, 413)["code"] == "payload_too_large"


@pytest.mark.parametrize("settings_overrides", [{"MAX_REQUEST_BODY_BYTES": 2048}])
async def test_chunked_body_under_the_limit_passes(pclient: httpx.AsyncClient) -> None:
    response = await pclient.post("/_probe/raw", content=_chunks(2, 1000))
    assert response.status_code == 200
    assert response.json() == {"size": 2000}


# ---- health, metrics, docs ---------------------------------------------------------------


async def test_health_detailed_503_when_database_unreachable(
    pclient: httpx.AsyncClient, probed: FastAPI, settings: Settings
) -> None:
    runtime = probed.state.runtime
    healthy_engine = runtime.engine
    runtime.engine = create_engine(
        make_settings(DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    )
    try:
        response = await pclient.get("/health/detailed")
    finally:
        await runtime.engine.dispose()
        runtime.engine = healthy_engine
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "error"
    # Liveness does not depend on the database.
    assert (await pclient.get("/health")).status_code == 200


async def test_metrics_label_requests_by_route_template(pclient: httpx.AsyncClient) -> None:
    await pclient.get("/health")
    await pclient.get("/no/such/route/123")
    text = (await pclient.get("/metrics")).text
    assert 'gatehouse_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/route/123" not in text
    assert "gatehouse_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("settings_overrides", [{"DOCS_ENABLED": False}])
async def test_docs_can_be_disabled(pclient: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        response = await pclient.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM


async def test_openapi_served_when_enabled(pclient: httpx.AsyncClient) -> None:
    response = await pclient.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"]


async def test_openapi_references_all_resolve(pclient: httpx.AsyncClient) -> None:
    spec = (await pclient.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert {"Problem", "ProblemFieldError"} <= set(schemas)
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.add(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    prefix = "#/components/schemas/"
    assert all(ref.startswith(prefix) for ref in refs)
    missing = {ref for ref in refs if ref[len(prefix) :] not in schemas}
    assert not missing
