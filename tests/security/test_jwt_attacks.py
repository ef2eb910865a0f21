"""Forged, altered and misused tokens: every one is refused with 401 problem+json."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest

from tests.factories import Factory

SESSIONS = "/api/v1/auth/sessions"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
async def valid(client: httpx.AsyncClient, factory: Factory, runtime: Any) -> dict[str, Any]:
    """Claims of a real, live session and the key that signs them."""
    user = await factory.logged_in()
    assert user.access_token
    claims = jwt.decode(user.access_token, options={"verify_signature": False})
    return {
        "claims": claims,
        "key": runtime.settings.SECRET_KEY,
        "alg": runtime.settings.ALGORITHM,
        "user": user,
    }


def sign(valid: dict[str, Any], **changes: Any) -> str:
    claims = {**valid["claims"], "iat": int(time.time()), "exp": int(time.time()) + 600}
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, valid["key"], algorithm=valid["alg"])


async def assert_refused(client: httpx.AsyncClient, token: str | None, **kwargs: Any) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = await client.get(SESSIONS, headers=headers, **kwargs)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 401 and body["code"] == "not_authenticated"
    assert "Bearer" in response.headers.get("www-authenticate", "")


async def test_control_a_well_formed_token_is_accepted(
    client: httpx.AsyncClient, valid: dict[str, Any]
) -> None:
    response = await client.get(SESSIONS, headers={"Authorization": f"Bearer {sign(valid)}"})
    assert response.status_code == 200, response.text


async def test_alg_none(client: httpx.AsyncClient, valid: dict[str, Any]) -> None:
    claims = {**valid["claims"], "exp": int(time.time()) + 600}
    for alg in ("none", "None", "NONE"):
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
        await assert_refused(client, token)


async def test_tampered_payload(
    client: httpx.AsyncClient, valid: dict[str, Any], factory: Factory
) -> None:
    other = await factory.user(roles=["superadmin"])
    header, _, signature = sign(valid).split(".")
    forged = {**valid["claims"], "sub": str(other.id), "exp": int(time.time()) + 600}
    await assert_refused(client, f"{header}.{b64(forged)}.{signature}")


async def test_wrong_signature_key(client: httpx.AsyncClient, valid: dict[str, Any]) -> None:
    await assert_refused(client, sign({**valid, "key": "x" * 48}))
    header, payload, _ = sign(valid).split(".")
    await assert_refused(client, f"{header}.{payload}.{'A' * 43}")


async def test_algorithm_outside_the_allow_list(
    client: httpx.AsyncClient, valid: dict[str, Any]
) -> None:
    other = "HS512" if valid["alg"] != "HS512" else "HS256"
    await assert_refused(client, sign({**valid, "alg": other}))


async def test_expired(client: httpx.AsyncClient, valid: dict[str, Any]) -> None:
    now = int(time.time())
    await assert_refused(client, sign(valid, iat=now - 3600, exp=now - 60))


async def test_wrong_audience_and_issuer(client: httpx.AsyncClient, valid: dict[str, Any]) -> None:
    await assert_refused(client, sign(valid, aud="someone-else"))
    await assert_refused(client, sign(valid, iss="evil-issuer"))
    # a purpose token (password reset) has its own audience and type
    await assert_refused(client, sign(valid, aud=f"{valid['claims']['aud']}:password_reset"))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "sid", "typ"])
async def test_missing_claims(client: httpx.AsyncClient, valid: dict[str, Any], claim: str) -> None:
    await assert_refused(client, sign(valid, **{claim: None}))


async def test_malformed_claims(client: httpx.AsyncClient, valid: dict[str, Any]) -> None:
    await assert_refused(client, sign(valid, sub="not-a-uuid"))
    await assert_refused(client, sign(valid, sid="not-a-uuid"))
    await assert_refused(client, sign(valid, typ="refresh"))
    await assert_refused(client, "not.a.jwt")
    await assert_refused(client, "garbage")


async def test_refresh_token_is_not_an_access_token(
    client: httpx.AsyncClient, valid: dict[str, Any]
) -> None:
    await assert_refused(client, valid["user"].refresh_token)


async def test_token_in_query_string_is_ignored(
    client: httpx.AsyncClient, valid: dict[str, Any]
) -> None:
    token = valid["user"].access_token
    for name in ("access_token", "token", "jwt", "authorization"):
        response = await client.get(SESSIONS, params={name: token})
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_token_in_cookie_is_ignored(client: httpx.AsyncClient, valid: dict[str, Any]) -> None:
    token = valid["user"].access_token
    response = await client.get(SESSIONS, headers={"Cookie": f"access_token={token}"})
    assert response.status_code == 401


async def test_other_authorization_schemes(
    client: httpx.AsyncClient, valid: dict[str, Any]
) -> None:
    token = valid["user"].access_token
    for header in (f"Basic {token}", f"Token {token}", "Bearer", "Bearer   "):
        response = await client.get(SESSIONS, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_token_of_a_revoked_session(client: httpx.AsyncClient, valid: dict[str, Any]) -> None:
    token = valid["user"].access_token
    assert (
        await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 204
    await assert_refused(client, token)
    # re-signed with a fresh expiry, the revoked session id is still refused
    await assert_refused(client, sign(valid))
