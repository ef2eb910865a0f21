"""Administration of users: list/search/filter/sort, get, create, PUT/PATCH, delete/restore,
toggle-status, unlock, attributes, permission refusals."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.factories import Factory
from tests.modules.users.helpers import API, assert_problem, audit_rows, make_role, user_row


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("POST", ""),
        ("GET", "/{id}"),
        ("PUT", "/{id}"),
        ("PATCH", "/{id}"),
        ("DELETE", "/{id}"),
        ("POST", "/{id}/restore"),
        ("PATCH", "/{id}/toggle-status"),
        ("POST", "/{id}/unlock"),
        ("POST", "/{id}/roles/{id}"),
        ("DELETE", "/{id}/roles/{id}"),
        ("GET", "/{id}/activity"),
        ("POST", "/bulk"),
    ],
)
async def test_admin_routes_refuse_guest_and_plain_user(
    client: httpx.AsyncClient, factory: Factory, method: str, path: str
) -> None:
    target = await factory.user()
    url = API + path.replace("{id}", str(target.id))
    body = {"action": "activate", "user_ids": [str(target.id)]} if path == "/bulk" else None
    kwargs: dict[str, Any] = {"json": body} if method in ("POST", "PUT", "PATCH") else {}
    assert_problem(await client.request(method, url, **kwargs), 401)
    plain = await factory.client_for(await factory.logged_in())
    problem = assert_problem(await plain.request(method, url, **kwargs), 403, "permission_denied")
    assert problem["missing_permissions"][0].startswith("user:")


async def test_create_get_and_response_shape(admin_client: httpx.AsyncClient, runtime: Any) -> None:
    response = await admin_client.post(
        API,
        json={
            "username": "Dr.House",
            "email": "House@Example.com",
            "password": "Vicodin-and-Puzzles-42",
            "full_name": "Gregory House",
            "roles": ["admin"],
            "is_verified": True,
            "attributes": {"department": "diagnostics", "ward": "D2"},
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["username"] == "dr.house" and created["email"] == "house@example.com"
    assert created["roles"] == ["admin"]
    assert created["attributes"] == {"department": "diagnostics", "ward": "D2"}
    assert created["is_verified"] is True and created["is_locked"] is False
    assert "deleted_at" not in created and "password_hash" not in created
    assert "password" not in created and "failed_login_count" not in created
    fetched = (await admin_client.get(f"{API}/{created['id']}")).json()
    assert fetched == created
    rows = await audit_rows(runtime, action="user.create", resource_id=created["id"])
    assert len(rows) == 1
    assert rows[0].changes is not None and "password_hash" not in rows[0].changes
    assert rows[0].changes["roles"]["after"] == ["admin"]
    assert "Vicodin" not in str(rows[0].changes)


async def test_create_validation_and_conflicts(
    admin_client: httpx.AsyncClient, factory: Factory
) -> None:
    existing = await factory.user()
    base = {
        "username": "fresh_user",
        "email": "fresh@example.com",
        "password": "Long-Enough-Pass-7",
    }
    body = assert_problem(
        await admin_client.post(API, json={**base, "username": existing.username.upper()}),
        409,
        "user_exists",
    )
    assert body["errors"][0]["field"] == "username"
    assert_problem(await admin_client.post(API, json={**base, "password": "password"}), 422)
    assert_problem(await admin_client.post(API, json={**base, "roles": ["nope"]}), 422)
    assert_problem(await admin_client.post(API, json={**base, "attributes": {"ward": 3}}), 422)
    assert_problem(await admin_client.post(API, json={**base, "attributes": {"9bad": "x"}}), 422)
    assert_problem(await admin_client.post(API, json={**base, "is_superuser": True}), 422)


async def test_unknown_ids_are_404(admin_client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for method, path in (
        ("GET", f"/{missing}"),
        ("PATCH", f"/{missing}"),
        ("DELETE", f"/{missing}"),
        ("POST", f"/{missing}/restore"),
        ("PATCH", f"/{missing}/toggle-status"),
        ("POST", f"/{missing}/unlock"),
        ("GET", f"/{missing}/activity"),
    ):
        kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        assert_problem(await admin_client.request(method, API + path, **kwargs), 404)
    assert_problem(await admin_client.get(f"{API}/not-a-uuid"), 422)


async def test_list_search_filter_sort_paginate(
    admin_client: httpx.AsyncClient, factory: Factory, clock: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    clock.advance(days=1)
    a = await factory.user(username=f"alpha_{tag}", full_name="Zed Alpha")
    b = await factory.user(username=f"bravo_{tag}", full_name="Yolanda Bravo", is_active=False)
    c = await factory.user(username=f"charlie_{tag}", roles=["admin"], is_verified=False)
    response = await admin_client.get(API, params={"q": tag.upper(), "sort": "username"})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 3
    assert [u["username"] for u in page["items"]] == [a.username, b.username, c.username]
    by_name = await admin_client.get(API, params={"q": "yolanda"})
    assert [u["id"] for u in by_name.json()["items"]] == [str(b.id)]
    by_email = await admin_client.get(API, params={"q": f"charlie_{tag}@example"})
    assert [u["id"] for u in by_email.json()["items"]] == [str(c.id)]

    def ids(resp: httpx.Response) -> list[str]:
        assert resp.status_code == 200, resp.text
        return [u["id"] for u in resp.json()["items"]]

    assert ids(await admin_client.get(API, params={"q": tag, "is_active": False})) == [str(b.id)]
    assert ids(await admin_client.get(API, params={"q": tag, "is_verified": False})) == [str(c.id)]
    assert ids(await admin_client.get(API, params={"q": tag, "role": "admin"})) == [str(c.id)]
    desc = ids(await admin_client.get(API, params={"q": tag, "sort": "-username"}))
    assert desc == [str(c.id), str(b.id), str(a.id)]
    by_full = ids(await admin_client.get(API, params={"q": tag, "sort": "full_name,-created_at"}))
    assert by_full[1:] == [str(b.id), str(a.id)] or by_full[:2] == [str(b.id), str(a.id)]
    paged = await admin_client.get(
        API, params={"q": tag, "sort": "username", "limit": 2, "offset": 2}
    )
    assert paged.json()["total"] == 3 and ids(paged) == [str(c.id)]
    # created_after / created_before (the users above were created "now", the seed earlier)
    users = await admin_client.get(API, params={"q": tag})
    created = users.json()["items"][0]["created_at"]
    after = await admin_client.get(API, params={"created_after": created, "q": tag})
    assert after.json()["total"] >= 1
    before = await admin_client.get(
        API, params={"created_before": "2000-01-01T00:00:00Z", "q": tag}
    )
    assert before.json()["total"] == 0


async def test_list_refuses_bad_sort_and_oversized_page(admin_client: httpx.AsyncClient) -> None:
    body = assert_problem(await admin_client.get(API, params={"sort": "-password_hash"}), 422)
    assert body["errors"][0]["field"] == "sort" and "password_hash" in body["detail"]
    body = assert_problem(await admin_client.get(API, params={"limit": 101}), 422)
    assert body["errors"][0]["field"] == "limit"
    assert (await admin_client.get(API, params={"limit": 100})).status_code == 200


async def test_patch_put_attributes_and_uniqueness(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user(full_name="Old Name")
    other = await factory.user()
    url = f"{API}/{user.id}"
    response = await admin_client.patch(
        url, json={"attributes": {"department": "oncology", "ward": "B3"}, "nickname": "nick"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["attributes"] == {"department": "oncology", "ward": "B3"}
    assert body["full_name"] == "Old Name" and body["nickname"] == "nick"
    rows = await audit_rows(runtime, action="user.update", resource_id=str(user.id))
    assert rows[-1].changes is not None
    assert rows[-1].changes["attributes"] == {
        "before": {},
        "after": {"department": "oncology", "ward": "B3"},
    }
    assert_problem(await admin_client.patch(url, json={"attributes": {"ward": 7}}), 422)
    assert_problem(await admin_client.patch(url, json={"attributes": {"bad key": "x"}}), 422)
    assert_problem(await admin_client.patch(url, json={"email": None}), 422)
    clash = assert_problem(await admin_client.patch(url, json={"email": other.email}), 409)
    assert clash["errors"][0]["field"] == "email"
    assert_problem(
        await admin_client.put(url, json={"username": other.username, "email": "n@x.org"}), 409
    )
    renamed = await admin_client.patch(url, json={"username": "Renamed_" + user.username})
    assert renamed.json()["username"] == "renamed_" + user.username
    replaced = await admin_client.put(
        url, json={"username": "replaced_" + user.username, "email": "replaced@example.org"}
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["email"] == "replaced@example.org"
    assert body["full_name"] is None and body["nickname"] is None and body["attributes"] == {}
    assert_problem(await admin_client.put(url, json={"email": "x@example.org"}), 422)


async def test_attribute_change_reaches_the_principal(
    admin_client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.logged_in()
    c = await factory.client_for(user)
    assert (await c.get(f"{API}/me")).json()["attributes"] == {}
    await admin_client.patch(f"{API}/{user.id}", json={"attributes": {"ward": "C1"}})
    assert (await c.get(f"{API}/me")).json()["attributes"] == {"ward": "C1"}


async def test_soft_delete_hides_and_restore_brings_back(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any
) -> None:
    user = await factory.user(username=f"gone_{uuid.uuid4().hex[:6]}")
    url = f"{API}/{user.id}"
    response = await admin_client.delete(url)
    assert response.status_code == 204 and response.content == b""
    assert_problem(await admin_client.get(url), 404)
    assert_problem(await admin_client.delete(url), 404)
    listed = await admin_client.get(API, params={"q": user.username})
    assert listed.json()["total"] == 0
    with_deleted = await admin_client.get(API, params={"q": user.username, "include_deleted": True})
    item = with_deleted.json()["items"][0]
    assert item["id"] == str(user.id) and item["deleted_at"]
    assert (await user_row(runtime, user.id)).deleted_at is not None
    restored = await admin_client.post(f"{url}/restore")
    assert restored.status_code == 200 and "deleted_at" not in restored.json()
    assert (await admin_client.get(url)).status_code == 200
    assert_problem(await admin_client.post(f"{url}/restore"), 409, "user_not_deleted")
    actions = [r.action for r in await audit_rows(runtime, resource_id=str(user.id))]
    assert "user.delete" in actions and "user.restore" in actions


async def test_listing_deleted_needs_read_deleted(factory: Factory, runtime: Any) -> None:
    await make_role(runtime, "user_reader", ["user:read"])
    reader = await factory.client_for(await factory.logged_in(roles=["user_reader"]))
    assert (await reader.get(API)).status_code == 200
    body = assert_problem(await reader.get(API, params={"include_deleted": True}), 403)
    assert body["missing_permissions"] == ["user:read_deleted"]
    await make_role(runtime, "deleted_reader", ["user:read", "user:read_deleted"])
    auditor = await factory.client_for(await factory.logged_in(roles=["deleted_reader"]))
    assert (await auditor.get(API, params={"include_deleted": True})).status_code == 200


async def test_toggle_status_and_unlock(
    admin_client: httpx.AsyncClient, factory: Factory, runtime: Any, clock: Any
) -> None:
    user = await factory.user()
    url = f"{API}/{user.id}"
    off = await admin_client.patch(f"{url}/toggle-status")
    assert off.status_code == 200 and off.json()["is_active"] is False
    on = await admin_client.patch(f"{url}/toggle-status")
    assert on.json()["is_active"] is True
    # a lockout as the login path leaves it
    async with runtime.session_factory() as session:
        from app.modules.users.models import User

        row = await session.get(User, user.id)
        assert row is not None
        row.failed_login_count = 5
        row.locked_until = clock.now() + timedelta(minutes=15)
        await session.commit()
    locked = (await admin_client.get(url)).json()
    assert locked["is_locked"] is True and locked["locked_until"]
    unlocked = await admin_client.post(f"{url}/unlock")
    assert unlocked.status_code == 200
    assert unlocked.json()["is_locked"] is False and unlocked.json()["locked_until"] is None
    assert (await user_row(runtime, user.id)).failed_login_count == 0
    rows = await audit_rows(runtime, action="user.unlock", resource_id=str(user.id))
    assert rows and rows[0].changes is not None
    assert rows[0].changes["failed_login_count"] == {"before": 5, "after": 0}
    assert (await factory.login(user)).access_token


async def test_user_activity(admin_client: httpx.AsyncClient, factory: Factory) -> None:
    user = await factory.user()
    await admin_client.patch(f"{API}/{user.id}", json={"nickname": "a"})
    await admin_client.patch(f"{API}/{user.id}/toggle-status")
    page = (await admin_client.get(f"{API}/{user.id}/activity")).json()
    assert page["total"] == 2
    assert [e["action"] for e in page["items"]] == ["user.update", "user.update"]
    assert page["items"][0]["changes"]["is_active"] == {"before": True, "after": False}


async def test_intranet_email_accepted_and_invalid_refused(
    admin_client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user()
    url = f"{API}/{user.id}"
    ok = await admin_client.patch(url, json={"email": "Nurse.Joy@Ward.Hospital.local"})
    assert ok.status_code == 200 and ok.json()["email"] == "nurse.joy@ward.hospital.local"
    for bad in ("not-an-email", "a b@x.org", "@x.local", "x@"):
        body = assert_problem(await admin_client.patch(url, json={"email": bad}), 422)
        assert body["errors"][0]["field"] == "email"


async def test_get_deleted_user_with_read_deleted(
    admin_client: httpx.AsyncClient, factory: Factory
) -> None:
    user = await factory.user()
    await admin_client.delete(f"{API}/{user.id}")
    assert_problem(await admin_client.get(f"{API}/{user.id}"), 404)
    shown = await admin_client.get(f"{API}/{user.id}", params={"include_deleted": True})
    assert shown.status_code == 200 and shown.json()["deleted_at"]


async def test_created_range_outside_utc_is_a_422_naming_the_parameter(
    admin_client: httpx.AsyncClient,
) -> None:
    # Found by fuzzing: valid ISO datetimes whose UTC instant lies outside datetime's range
    # made the query's UTC conversion raise OverflowError, a 500.
    for param, value in (
        ("created_after", "0001-01-01T00:00:00+01:00"),
        ("created_before", "9999-12-31T23:59:59-01:00"),
    ):
        body = assert_problem(await admin_client.get(API, params={param: value}), 422)
        assert [e["field"] for e in body["errors"]] == [param], body
    naive = await admin_client.get(API, params={"created_before": "9999-12-31T23:59:59"})
    assert naive.status_code == 200, naive.text
    assert naive.json()["total"] >= 1
