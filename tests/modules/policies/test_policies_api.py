"""Policies API: CRUD + validation, delegation safety, audit, version bump (live on the next
request), preview (nothing saved), the caller's fields, record explain."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from app.authz.models import AuthzState, Permission, Policy, Role, RolePermission
from app.modules.audit.models import AuditLog
from app.modules.users.models import User
from tests.factories import Factory

API = "/api/v1"


async def role_id(runtime: Any, name: str) -> uuid.UUID:
    async with runtime.session_factory() as session:
        rid = await session.scalar(select(col(Role.id)).where(col(Role.name) == name))
    assert rid is not None
    return rid


async def make_role(runtime: Any, name: str, permissions: list[str]) -> uuid.UUID:
    async with runtime.session_factory() as session:
        role = Role(name=name)
        session.add(role)
        await session.flush()
        for p in permissions:
            pid = await session.scalar(select(col(Permission.id)).where(col(Permission.name) == p))
            assert pid is not None, p
            session.add(RolePermission(role_id=role.id, permission_id=pid))
        await session.commit()
        return role.id


async def staff_policy(runtime: Any) -> Policy:
    rid = await role_id(runtime, "user")
    async with runtime.session_factory() as session:
        policy = await session.scalar(
            select(Policy).where(
                col(Policy.role_id) == rid,
                col(Policy.resource) == "user",
                col(Policy.action) == "read",
            )
        )
    assert policy is not None
    return policy


async def count(runtime: Any, model: Any, *where: Any) -> int:
    async with runtime.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def version(runtime: Any) -> int:
    async with runtime.session_factory() as session:
        state = await session.get(AuthzState, 1)
        assert state is not None
        return state.version


async def test_resources_endpoint(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get(f"{API}/policies/resources")
    assert response.status_code == 200, response.text
    resources = {r["name"]: r for r in response.json()}
    fields = {f["name"]: f for f in resources["user"]["fields"]}
    assert fields["email"]["type"] == "string" and "_contains" in fields["email"]["operators"]
    assert fields["is_active"]["operators"] == ["_eq", "_neq", "_in", "_nin", "_null", "_nnull"]
    assert "$user.id" in resources["user"]["variables"]


async def test_crud_validation_audit_and_version(
    admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    rid = await role_id(runtime, "user")
    base = {"role_id": str(rid), "resource": "user", "action": "read"}
    bad_cases = [
        ({"resource": "spaceship"}, "spaceship"),
        ({"fields": ["username", "shoe_size"]}, "shoe_size"),
        ({"row_filter": {"username": {"_like": "a"}}}, "_like"),
        ({"row_filter": {"username": {"_eq": "$user.Nope-x"}}}, "$user.Nope-x"),
        ({"row_filter": {"ghost": {"_eq": 1}}}, "ghost"),
        ({"row_filter": {"is_active": {"_eq": "maybe"}}}, "is_active"),
    ]
    for change, culprit in bad_cases:
        response = await admin_client.post(f"{API}/policies", json={**base, **change})
        assert response.status_code == 422, (change, response.text)
        assert culprit in response.json()["detail"], response.text
    before = await version(runtime)
    created = await admin_client.post(
        f"{API}/policies",
        json={
            **base,
            "fields": ["email"],
            "row_filter": {"attributes": {"_nnull": True}, "username": {"_eq": "nobody"}},
            "description": "test policy",
        },
    )
    assert created.status_code == 201, created.text
    policy = created.json()
    assert await version(runtime) > before
    listed = await admin_client.get(
        f"{API}/policies", params={"role_id": str(rid), "resource": "user", "limit": 1}
    )
    assert listed.status_code == 200
    assert listed.json()["total"] == 2 and len(listed.json()["items"]) == 1
    patched = await admin_client.patch(
        f"{API}/policies/{policy['id']}", json={"fields": ["email", "phone"]}
    )
    assert patched.status_code == 200 and patched.json()["fields"] == ["email", "phone"]
    bad_patch = await admin_client.patch(
        f"{API}/policies/{policy['id']}", json={"check": {"email": {"_eq": "x"}}}
    )
    assert bad_patch.status_code == 422  # check only on create / update
    assert (await admin_client.delete(f"{API}/policies/{policy['id']}")).status_code == 204
    assert (await admin_client.get(f"{API}/policies/{policy['id']}")).status_code == 404
    actions = await count(
        runtime,
        AuditLog,
        col(AuditLog.resource_id) == policy["id"],
        col(AuditLog.resource_type) == "policy",
    )
    assert actions == 3  # create, update, delete


async def test_policy_change_takes_effect_on_next_request(
    factory: Factory, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    user = await factory.logged_in(roles=["user"])
    client = await factory.client_for(user)
    fields = await client.get(f"{API}/authz/fields", params={"resource": "user"})
    assert fields.status_code == 200, fields.text
    assert fields.json()["read"] == ["username", "full_name"]
    assert fields.json()["read_conditional"] == [] and fields.json()["can_update"] is False
    policy = await staff_policy(runtime)
    patched = await admin_client.patch(
        f"{API}/policies/{policy.id}", json={"fields": ["username", "full_name", "email"]}
    )
    assert patched.status_code == 200
    fields = await client.get(f"{API}/authz/fields", params={"resource": "user"})
    assert fields.json()["read"] == ["username", "email", "full_name"]
    assert (await admin_client.delete(f"{API}/policies/{policy.id}")).status_code == 204
    fields = await client.get(f"{API}/authz/fields", params={"resource": "user"})
    assert fields.json()["read"] == []
    assert (await client.get(f"{API}/authz/fields", params={"resource": "x"})).status_code == 404


async def test_delegation_refused_and_audited(
    factory: Factory, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    await make_role(runtime, "policy_editor", ["policy:read", "policy:create", "policy:update"])
    editor = await factory.logged_in(roles=["policy_editor", "user"])
    client = await factory.client_for(editor)
    rid = await role_id(runtime, "user")
    base = {"role_id": str(rid), "resource": "user", "action": "read"}
    # Editor holds the staff directory policy (username, full_name of active users).
    same_rows = {"row_filter": {"is_active": {"_eq": True}}}
    ok = await client.post(f"{API}/policies", json={**base, **same_rows, "fields": ["username"]})
    assert ok.status_code == 201, ok.text
    wider_fields = await client.post(
        f"{API}/policies", json={**base, **same_rows, "fields": ["username", "email"]}
    )
    assert wider_fields.status_code == 403
    assert wider_fields.json()["code"] == "delegation_denied"
    assert "email" in wider_fields.json()["detail"]
    wider_rows = await client.post(f"{API}/policies", json={**base, "fields": ["username"]})
    assert wider_rows.status_code == 403 and "rows" in wider_rows.json()["exceeding"]
    widen = await client.patch(f"{API}/policies/{ok.json()['id']}", json={"fields": ["*"]})
    assert widen.status_code == 403
    # Narrowing by a field the editor cannot read (email) would make the new policy an oracle
    # on it: whoever holds it learns which users' emails match.
    oracle = await client.post(
        f"{API}/policies",
        json={
            **base,
            "fields": ["username"],
            "row_filter": {"_and": [{"is_active": {"_eq": True}}, {"email": {"_eq": "x@y.z"}}]},
        },
    )
    assert oracle.status_code == 403, oracle.text
    assert "email" in oracle.json()["exceeding"] and "email" in oracle.json()["detail"]
    # Even for an editor whose own policy covers every row: conditions only on what they read.
    editor_role = await role_id(runtime, "policy_editor")
    unfiltered = {"role_id": str(editor_role), "resource": "user", "action": "read"}
    held = await admin_client.post(f"{API}/policies", json={**unfiltered, "fields": ["username"]})
    assert held.status_code == 201, held.text
    subset = {**base, "fields": ["username"]}
    by_email = await client.post(
        f"{API}/policies", json={**subset, "row_filter": {"email": {"_contains": ".org"}}}
    )
    assert by_email.status_code == 403 and by_email.json()["exceeding"] == ["email"]
    by_name = await client.post(
        f"{API}/policies", json={**subset, "row_filter": {"username": {"_starts_with": "a"}}}
    )
    assert by_name.status_code == 201, by_name.text
    denied = await count(
        runtime,
        AuditLog,
        col(AuditLog.action) == "policy.delegation_denied",
        col(AuditLog.outcome) == "denied",
    )
    assert denied == 5
    # The super-admin is exempt.
    assert (
        await admin_client.post(f"{API}/policies", json={**base, "fields": ["*"]})
    ).status_code == 201


async def test_preview_saves_nothing_and_counts(
    factory: Factory, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    viewer = await factory.user(roles=["user"])
    await factory.user(roles=["user"], is_active=False)
    await factory.user(roles=["user"], is_active=False)
    policy = await staff_policy(runtime)
    inactive_users = await count(
        runtime, User, col(User.is_active).is_(False), col(User.deleted_at).is_(None)
    )
    policies_before = await count(runtime, Policy)
    version_before = await version(runtime)
    response = await admin_client.post(
        f"{API}/policies/preview",
        json={
            "operation": "update",
            "policy_id": str(policy.id),
            "changes": {"fields": ["username"], "row_filter": None},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    users = {u["username"]: u for u in body["users"]}
    assert body["affected_users_total"] >= 3
    change = users[viewer.username]["changes"][0]
    assert change["fields_lost"] == ["full_name"] and change["fields_gained"] == []
    assert change["records_gained"] == inactive_users and change["records_lost"] == 0
    deletion = await admin_client.post(
        f"{API}/policies/preview", json={"operation": "delete", "policy_id": str(policy.id)}
    )
    change = {u["username"]: u for u in deletion.json()["users"]}[viewer.username]["changes"][0]
    assert change["fields_lost"] == ["username", "full_name"] and change["records_lost"] > 0
    create = await admin_client.post(
        f"{API}/policies/preview",
        json={
            "operation": "create",
            "policy": {
                "role_id": str(policy.role_id),
                "resource": "user",
                "action": "read",
                "fields": ["email"],
                "row_filter": {"is_active": {"_eq": True}},
            },
        },
    )
    change = {u["username"]: u for u in create.json()["users"]}[viewer.username]["changes"][0]
    assert change["fields_gained"] == ["email"] and change["records_gained"] == 0
    assert await count(runtime, Policy) == policies_before
    assert await version(runtime) == version_before
    invalid = await admin_client.post(
        f"{API}/policies/preview",
        json={
            "operation": "create",
            "policy": {
                "role_id": str(policy.role_id),
                "resource": "user",
                "action": "read",
                "fields": ["nope"],
            },
        },
    )
    assert invalid.status_code == 422 and "nope" in invalid.json()["detail"]


async def test_explain_record(
    factory: Factory, admin_client: httpx.AsyncClient, runtime: Any
) -> None:
    viewer = await factory.user(roles=["user"])
    active = await factory.user(roles=["user"])
    gone = await factory.user(roles=["user"], is_active=False)
    url = f"{API}/authz/explain-record"
    response = await admin_client.get(
        url, params={"user_id": str(viewer.id), "resource": "user", "record_id": str(active.id)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["admitted"] is True
    assert body["fields"]["username"]["visible"] is True
    assert body["fields"]["email"]["visible"] is False
    assert body["fields"]["email"]["reason"] == "No read policy of the user grants this field"
    hidden = await admin_client.get(
        url, params={"user_id": str(viewer.id), "resource": "user", "record_id": str(gone.id)}
    )
    assert hidden.json()["admitted"] is False
    missing = await admin_client.get(
        url, params={"user_id": str(viewer.id), "resource": "user", "record_id": str(uuid.uuid4())}
    )
    assert missing.status_code == 404
    plain = await factory.client_for(await factory.logged_in(roles=["user"]))
    denied = await plain.get(
        url, params={"user_id": str(viewer.id), "resource": "user", "record_id": str(active.id)}
    )
    assert denied.status_code == 403


async def test_nul_in_query_text_is_a_422_naming_the_parameter(
    admin_client: httpx.AsyncClient, superadmin: Any
) -> None:
    # Found by fuzzing: PostgreSQL refuses text holding NUL, so /policies?resource=a%00 was the
    # database error's 503. Refused up front on every backend.
    cases = [
        ("/policies", {"resource": "a\x00b"}, "resource"),
        ("/authz/fields", {"resource": "a\x00b"}, "resource"),
        (
            "/authz/explain-record",
            {"user_id": str(superadmin.id), "resource": "patient", "record_id": "a\x00b"},
            "record_id",
        ),
    ]
    for path, params, field in cases:
        response = await admin_client.get(f"{API}{path}", params=params)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
