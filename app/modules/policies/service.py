"""Policies: use cases (CRUD with write-time validation and delegation safety, change preview,
the caller's fields, record explain). Every change bumps the authz version and is audited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, or_, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz import filters as flt
from app.authz.dependencies import PRINCIPAL_STORE
from app.authz.filters import (
    OPERATORS_BY_TYPE,
    FilterError,
    ResourceSpec,
    Variables,
    referenced_fields,
)
from app.authz.models import Policy
from app.authz.policies import (
    ACTIONS,
    ALL_FIELDS,
    AccessPlan,
    PolicyRule,
    build_plan,
    explain_record,
    fetch_rules,
    fields_summary,
    filter_error_to_http,
    load_rules,
    plan_for,
    registry,
    validate_policy_parts,
)
from app.authz.principal import Principal, PrincipalStore
from app.authz.versioning import bump_authz_version
from app.core.errors import Forbidden, NotFound, ValidationFailed
from app.core.runtime import Runtime
from app.modules.audit.service import AuditService, diff
from app.modules.policies import schemas
from app.modules.policies.repository import PolicyRepository

PREVIEW_USER_CAP = 200
AUDITED_FIELDS = (
    "role_id",
    "resource",
    "action",
    "fields",
    "row_filter",
    "presets",
    "check",
    "description",
    "is_active",
)
VARIABLES = ("$user.id", "$user.<attribute>", "$now")


class PolicyDelegationDenied(Forbidden):
    code = "delegation_denied"
    title = "Delegation denied"
    keep_changes = True  # the refusal's audit row must survive


def _snapshot(policy: Policy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in AUDITED_FIELDS}


def _key(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


class PoliciesService:
    def __init__(self, session: AsyncSession, runtime: Runtime, principal: Principal) -> None:
        self.session = session
        self.runtime = runtime
        self.principal = principal
        self.repository = PolicyRepository(session)
        self.audit = AuditService(session)

    # -- catalogue ---------------------------------------------------------------------

    def resources(self) -> list[schemas.ResourceDescription]:
        return [
            schemas.ResourceDescription(
                name=r.name,
                description=r.description,
                id_field=r.id_field,
                soft_delete=r.soft_delete,
                actions=list(ACTIONS),
                variables=list(VARIABLES),
                fields=[
                    schemas.FieldDescription(
                        name=f.name,
                        type=f.type,
                        choices=list(f.choices),
                        operators=list(OPERATORS_BY_TYPE[f.type]),
                        searchable=f.searchable,
                        sortable=f.sortable,
                        filterable=f.filterable,
                        writable=f.writable,
                        description=f.description,
                    )
                    for f in r.fields
                ],
            )
            for r in registry().all()
        ]

    # -- CRUD --------------------------------------------------------------------------

    async def search(
        self,
        *,
        role_id: uuid.UUID | None,
        resource: str | None,
        action: str | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Policy], int]:
        return await self.repository.search(
            role_id=role_id, resource=resource, action=action, limit=limit, offset=offset
        )

    async def get(self, policy_id: uuid.UUID) -> Policy:
        policy = await self.repository.get(policy_id)
        if policy is None:
            raise NotFound("Policy not found")
        return policy

    def _resource(self, name: str) -> ResourceSpec:
        spec = registry().get(name)
        if spec is None:
            raise ValidationFailed(
                f"Unknown resource '{name}'",
                code="unknown_resource",
                errors=[{"field": "resource", "message": f"Unknown resource '{name}'"}],
            )
        return spec

    async def _validate(self, values: dict[str, Any]) -> ResourceSpec:
        spec = self._resource(values["resource"])
        if await self.repository.role_name(values["role_id"]) is None:
            raise ValidationFailed.for_field("role_id", "Unknown role", code="unknown_role")
        fields = values["fields"]
        if not fields:
            raise ValidationFailed.for_field("fields", "At least one field (or '*') is required")
        if values["action"] in ("read", "delete") and (
            values.get("presets") or values.get("check")
        ):
            part = "presets" if values.get("presets") else "check"
            raise ValidationFailed.for_field(
                part, f"{part} only applies to create and update policies"
            )
        try:
            validate_policy_parts(
                spec,
                fields=fields,
                row_filter=values.get("row_filter"),
                presets=values.get("presets"),
                check=values.get("check"),
            )
        except FilterError as exc:
            field = exc.path.split(".", 1)[0] if exc.path else "filter"
            if field not in ("fields", "row_filter", "presets", "check"):
                field = "row_filter"
            raise filter_error_to_http(exc, param=field) from None
        return spec

    async def _ensure_can_delegate(self, values: dict[str, Any], spec: ResourceSpec) -> None:
        """The caller must hold, for the same resource and action, policies with no row filter
        or the identical row filter (and, for writes, no check or the identical check) that
        grant every field of the new policy. Super-admins are exempt."""
        if self.principal.is_superadmin or not values.get("is_active", True):
            return
        mine = await load_rules(self.session, self.principal)
        new_filter = _key(values.get("row_filter"))
        new_check = _key(values.get("check"))
        same_scope = [
            r
            for r in mine
            if r.resource == spec.name
            and r.action == values["action"]
            and (r.row_filter is None or _key(r.row_filter) == new_filter)
            and (r.check is None or _key(r.check) == new_check)
        ]
        fields = values["fields"]
        wanted = set(spec.field_names) if ALL_FIELDS in fields else set(fields)
        available: set[str] = set()
        for rule in same_scope:
            available |= rule.grants(spec)
        exceeding = sorted(wanted - available)
        # A row filter or check of the editor's own making that names a field the editor cannot
        # read on every row would be an oracle: whoever holds the new policy (a second account)
        # sees which rows match a hidden value. Repeating a filter or check the editor already
        # holds reveals nothing new.
        named: set[str] = set()
        if not any(r.row_filter is not None and _key(r.row_filter) == new_filter for r in mine):
            named |= referenced_fields(values.get("row_filter"))
        if not any(r.check is not None and _key(r.check) == new_check for r in mine):
            named |= referenced_fields(values.get("check"))
        readable_everywhere: set[str] = set()
        for rule in mine:
            if rule.resource == spec.name and rule.action == "read" and rule.row_filter is None:
                readable_everywhere |= rule.grants(spec)
        unreadable = sorted(named - readable_everywhere)
        problems: list[str] = []
        if not same_scope:
            problems.append("rows")
        problems.extend(exceeding)
        problems.extend(f for f in unreadable if f not in problems)
        if problems:
            self.audit.record(
                "policy.delegation_denied",
                "policy",
                values.get("id"),
                outcome="denied",
                details={
                    "resource": spec.name,
                    "action": values["action"],
                    "role_id": str(values["role_id"]),
                    "exceeding": problems,
                },
            )
            what = []
            if "rows" in problems:
                what.append(
                    "rows beyond yours (you hold no policy on these rows for "
                    f"{spec.name}:{values['action']})"
                )
            if exceeding:
                what.append("fields: " + ", ".join(exceeding))
            if unreadable:
                what.append(
                    "conditions on fields you cannot read on every row: " + ", ".join(unreadable)
                )
            raise PolicyDelegationDenied(
                "You cannot grant a policy broader than your own: " + "; ".join(what),
                extra={"exceeding": problems},
            )

    async def create(self, data: schemas.PolicyCreate) -> Policy:
        values = data.model_dump()
        spec = await self._validate(values)
        await self._ensure_can_delegate(values, spec)
        policy = await self.repository.add(Policy(**values))
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record("policy.create", "policy", policy.id, changes=diff(None, values))
        return policy

    async def update(self, policy_id: uuid.UUID, data: schemas.PolicyUpdate) -> Policy:
        policy = await self.get(policy_id)
        before = _snapshot(policy)
        changes = data.model_dump(exclude_unset=True)
        for name in ("role_id", "resource", "action", "fields", "description", "is_active"):
            if name in changes and changes[name] is None and name != "description":
                raise ValidationFailed.for_field(name, f"{name} cannot be null")
        values = {**before, **changes, "id": policy.id}
        spec = await self._validate(values)
        await self._ensure_can_delegate(values, spec)
        for name, value in changes.items():
            setattr(policy, name, value)
        await self.repository.flush()
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record(
            "policy.update", "policy", policy.id, changes=diff(before, _snapshot(policy))
        )
        return policy

    async def delete(self, policy_id: uuid.UUID) -> None:
        policy = await self.get(policy_id)
        before = _snapshot(policy)
        await self.repository.delete(policy)
        await bump_authz_version(self.session, self.runtime.state)
        self.audit.record("policy.delete", "policy", policy_id, changes=diff(before, None))

    # -- preview -----------------------------------------------------------------------

    async def preview(self, request: schemas.PolicyPreviewRequest) -> schemas.PolicyPreviewResponse:
        """Who gains / loses which fields and how many records; nothing is written."""
        old: PolicyRule | None = None
        new: PolicyRule | None = None
        new_active = False
        if request.operation == "create":
            if request.policy is None:
                raise ValidationFailed.for_field("policy", "Required for a create preview")
            values = request.policy.model_dump()
            await self._validate(values)
            new, new_active = _rule(uuid.uuid4(), values)
        else:
            if request.policy_id is None:
                raise ValidationFailed.for_field("policy_id", "Required")
            policy = await self.get(request.policy_id)
            old, _ = _rule(policy.id, _snapshot(policy))
            if request.operation == "update":
                changes = request.changes.model_dump(exclude_unset=True) if request.changes else {}
                values = {**_snapshot(policy), **changes}
                await self._validate(values)
                new, new_active = _rule(policy.id, values)
        touched = [r for r in (old, new) if r is not None]
        role_ids = list(dict.fromkeys(r.role_id for r in touched if r.role_id is not None))
        pairs = list(dict.fromkeys((r.resource, r.action) for r in touched))

        targets: dict[uuid.UUID | None, str] = {}
        total = 0
        store: PrincipalStore = self.runtime.services[PRINCIPAL_STORE]
        guest_role = (await self.repository.role_ids_by_name(["guest"])).get("guest")
        for role_id in role_ids:
            users, count = await self.repository.affected_users(role_id, PREVIEW_USER_CAP)
            total += count
            for user_id, username in users:
                targets.setdefault(user_id, username)
        include_guest = False
        if guest_role is not None:
            guest = await store.load_guest()
            include_guest = any(rid in guest.role_ids for rid in role_ids)
        if include_guest:
            targets[None] = "guest"
            total += 1

        now = self.runtime.clock.now()
        # Record counts are bound by the caller's own read policies (no oracle): only the rows
        # the caller may read are counted, and each row filter is evaluated over the caller's
        # masked cells, so a count never depends on a cell the caller cannot read.
        viewers: dict[str, AccessPlan] = {}
        for resource_name, _ in pairs:
            viewed = registry().get(resource_name)
            if viewed is not None:
                viewers[resource_name] = await plan_for(
                    self.session, self.principal, viewed, "read", now=now
                )
        # Who is affected is named only to a caller who may read users at all; the others get
        # the ids and the figures.
        show_names = self.principal.has("user:read")
        results: list[schemas.PreviewUser] = []
        for target_id, username in list(targets.items())[:PREVIEW_USER_CAP]:
            principal: Principal | None = (
                await store.load_guest() if target_id is None else await store.load(target_id)
            )
            if principal is None:
                continue
            current = await fetch_rules(self.session, principal.role_ids)
            proposed = [r for r in current if old is None or r.id != old.id]
            if new is not None and new_active and new.role_id in principal.role_ids:
                proposed.append(new)
            variables = Variables.for_principal(principal, now)
            change_list: list[schemas.PreviewChange] = []
            for resource_name, action in pairs:
                spec = registry().get(resource_name)
                if spec is None:
                    continue
                before = build_plan(
                    spec, action, current, variables, superadmin=principal.is_superadmin
                )
                after = build_plan(
                    spec, action, proposed, variables, superadmin=principal.is_superadmin
                )
                viewer = viewers[resource_name]
                gained, lost = await self.repository.count_difference(
                    spec,
                    _rows_seen_by(before, viewer),
                    _rows_seen_by(after, viewer),
                    within=viewer.row_clause(),
                )
                field_attr = "readable_fields" if action == "read" else "writable_fields"
                before_fields = getattr(before, field_attr)
                after_fields = getattr(after, field_attr)
                order = spec.field_names
                change_list.append(
                    schemas.PreviewChange(
                        resource=resource_name,
                        action=action,
                        fields_gained=[f for f in order if f in after_fields - before_fields],
                        fields_lost=[f for f in order if f in before_fields - after_fields],
                        records_gained=gained,
                        records_lost=lost,
                    )
                )
            results.append(
                schemas.PreviewUser(
                    user_id=target_id,
                    username=username if show_names or target_id is None else None,
                    changes=change_list,
                )
            )
        return schemas.PolicyPreviewResponse(
            operation=request.operation,
            role_ids=role_ids,
            affected_users_total=total,
            users=results,
            truncated=total > len(results),
        )

    # -- fields and explain --------------------------------------------------------------

    async def fields(self, resource: str) -> dict[str, Any]:
        return await fields_summary(
            self.session, self.principal, resource, now=self.runtime.clock.now()
        )

    async def _emergency_access(
        self, spec: ResourceSpec, principal: Principal, record_id: Any, now: datetime
    ) -> bool:
        if spec.emergency_access is None:
            return False
        return await spec.emergency_access(self.session, principal, record_id, now)

    async def explain_record(
        self, user_id: uuid.UUID, resource: str, record_id: str
    ) -> dict[str, Any]:
        spec = registry().require(resource)
        store: PrincipalStore = self.runtime.services[PRINCIPAL_STORE]
        target = await store.get(user_id)
        if target is None:
            raise NotFound("User not found")
        try:
            typed_id: Any = uuid.UUID(record_id)
        except ValueError:
            raise NotFound("Record not found") from None
        row = await self.repository.get_record(spec, typed_id)
        now = self.runtime.clock.now()
        # No oracle: a record the caller may not read is not found, and the target's policies
        # are evaluated on the cells the caller may read (a hidden cell as if it did not exist).
        viewer = await plan_for(self.session, self.principal, spec, "read", now=now)
        if row is None:
            raise NotFound("Record not found")
        if await self._emergency_access(spec, self.principal, typed_id, now):
            seen = dict(row)  # the caller reads the whole record anyway
        elif viewer.admits(row):
            seen = viewer.mask(row)
        else:
            raise NotFound("Record not found")
        plan = await plan_for(self.session, target, spec, "read", now=now)
        explanation = explain_record(plan, seen)
        if await self._emergency_access(spec, target, typed_id, now):
            explanation = _opened_by_emergency_access(explanation)
        if target.is_superadmin:
            explanation["note"] = "Super-administrators hold an implicit full policy"
        if spec.soft_delete and row.get("deleted_at") is not None:
            explanation["note"] = "The record is soft-deleted"
        return {"user_id": user_id, "record_id": record_id, **explanation}


def _opened_by_emergency_access(explanation: dict[str, Any]) -> dict[str, Any]:
    """The user reads the whole record through the module's own grant, whatever the policies
    say: every field is visible; what the policies alone would show stays in the lists."""
    fields = {
        name: {**detail, "visible": True, "reason": None}
        for name, detail in explanation["fields"].items()
    }
    return {
        **explanation,
        "admitted": True,
        "fields": fields,
        "emergency_access": True,
        "note": "An emergency (break-glass) grant opens the whole record to the user, outside"
        " the policies, until it expires",
    }


def _rows_seen_by(plan: AccessPlan, viewer: AccessPlan) -> ColumnElement[bool]:
    """The rows `plan` admits, as `viewer` can tell: each row filter compiled over the viewer's
    masked columns (exact when the viewer reads every referenced field in every row)."""
    if plan.is_empty:
        return false()
    if plan.unrestricted_rows:
        return true()
    clauses = [
        flt.compile(
            rule.row_filter,
            plan.resource,
            plan.variables,
            columns=viewer.columns(referenced_fields(rule.row_filter)),
        )
        for rule in plan.rules
    ]
    return clauses[0] if len(clauses) == 1 else or_(*clauses)


def _rule(policy_id: uuid.UUID, values: dict[str, Any]) -> tuple[PolicyRule, bool]:
    """A proposed policy as a rule, and whether it is active (an inactive one confers nothing)."""
    rule = PolicyRule(
        id=policy_id,
        role_id=values["role_id"],
        resource=values["resource"],
        action=values["action"],
        fields=tuple(values.get("fields") or ()),
        row_filter=values.get("row_filter") or None,
        presets=values.get("presets") or None,
        check=values.get("check") or None,
        description=values.get("description"),
    )
    return rule, bool(values.get("is_active", True))
