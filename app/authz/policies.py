"""Field- and row-level policies: merge a principal's policies per resource and action, compile
them into SQL (row clause, masked columns) and evaluate them in Python (write checks, explain).

PUBLIC API (stable; the patients module and others build on it)
----------------------------------------------------------------
Declaring (in a module's access_control.py):
    from app.authz.policies import FieldSpec, PolicySpec, ResourceSpec
    PATIENT = ResourceSpec(name="patient", model=Patient, fields=(FieldSpec("mrn", "string",
        searchable=True), FieldSpec("date_of_birth", "date"), FieldSpec("admission_status",
        "enum", choices=("admitted", "outpatient", "discharged")), ...), soft_delete=True)
    ACCESS_CONTROL = AccessControl(..., resources=(PATIENT,), default_policies=(
        PolicySpec(role="nurse", resource="patient", action="read", fields=("given_name", ...),
                   row_filter={"ward": {"_eq": "$user.ward"}}), ...))
  `id_field` is implicitly readable in every admitted row and never writable. Declare
  `writable=False` on fields the server manages (created_at, ...). Default policies are seeded
  (app/modules/policies/seed.py) for a (role, resource, action) that has no policy yet.

Registry:
    registry() -> ResourceRegistry: .get(name) -> ResourceSpec | None, .require(name) (NotFound),
    .all(), .register(spec) (tests / scratch resources).

Getting a plan (one per request, per resource and action):
    plan = await plan_for(session, principal, "patient", "read", now=runtime.clock.now())
  Policies are read once per principal (cached in principal.memo, rebuilt when the authz
  version moves). Super-admins (`*:*`) get an implicit full policy. No policy -> a plan that
  admits nothing (plan.is_empty).
    build_plan(resource, action, rules, variables, superadmin=False) -> AccessPlan   (pure)

AccessPlan — reading (per-cell merge: a row is admitted by ANY read policy; in a row, a field is
present only if a policy that grants the field admits that row):
    plan.row_clause()              -> SQL boolean: OR of the row filters (false() when empty)
    plan.visible_clause(field)     -> SQL boolean: where this field's cell is visible
    plan.column(field)             -> masked SQL expression: CASE WHEN visible THEN col END
                                      (the bare column when visible in every admitted row);
                                      use it in SELECT, WHERE, ORDER BY, GROUP BY, COUNT.
    plan.columns(fields=None)      -> {field: masked expression}
    plan.select_columns(fields)    -> labelled expressions to put in ONE select: each field
                                      labelled by its name, plus a boolean flag labelled
                                      flag_label(field) for each conditionally visible field.
    plan.row_to_dict(row, fields)  -> the response dict from a fetched row mapping: hidden
                                      fields ABSENT (not null).
    plan.readable_fields           -> fields readable in at least one row (frozenset)
    plan.unconditional_fields      -> fields visible in every admitted row
    plan.ensure_readable(names)    -> raise FieldsForbidden (403 naming them) for names
                                      readable in no row (use for filter/sort/q/fields/group_by)
    plan.where(filter_json)        -> validate (422 naming the culprit) + ensure_readable +
                                      compile over the MASKED columns
    plan.search_clause(q, fields=None) -> case-insensitive substring search over searchable
                                      masked columns (false() when none is readable)
    plan.order_by(["family_name", "-admitted_at"]) -> ORDER BY clauses on masked columns,
                                      NULLs last on both backends, id as tie-breaker
AccessPlan — Python, on one object (a mapping field -> value; row_of(resource, obj)):
    plan.admits(row), plan.admitting_rules(row), plan.visible_fields(row), plan.mask(row)
AccessPlan — writes (plan built for action create / update / delete):
    plan.writable_fields           -> fields some policy lets the caller write
    plan.check_create(values, defaults) -> values + presets; 403 FieldsForbidden naming non-writable
                                      or preset fields sent, PolicyCheckFailed naming the check
    plan.check_update(current, changes) -> changes + presets. `current` is the full row as it
                                      is (fetch it with the READ plan first: not found -> 404).
                                      RecordForbidden (403) when no update policy admits it;
                                      fields as above; the row after the update must pass check.
    plan.check_delete(current)     -> RecordForbidden (403) when no delete policy admits it.
Explain:
    explain_record(read_plan, row) -> which policies admit the row, which grant each field,
                                      why each hidden field is hidden.
    fields_summary(session, principal, resource, now) -> readable / writable fields.
Errors (app.core.errors subclasses): FieldsForbidden (403, extra {"fields": [...]}),
    PolicyCheckFailed (403), RecordForbidden (403), filter_error_to_http(FilterError) -> 422.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import false, func, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.authz import filters as flt
from app.authz.filters import (
    FieldSpec,
    FilterError,
    ResourceSpec,
    Variables,
    referenced_fields,
    referenced_variables,
)
from app.authz.principal import Principal
from app.core.errors import Forbidden, NotFound, ValidationFailed

__all__ = [
    "ACTIONS",
    "AccessPlan",
    "FieldSpec",
    "FieldsForbidden",
    "FilterError",
    "PolicyCheckFailed",
    "PolicyRule",
    "PolicySpec",
    "RecordForbidden",
    "ResourceRegistry",
    "ResourceSpec",
    "Variables",
    "build_plan",
    "explain_record",
    "fetch_rules",
    "fields_summary",
    "filter_error_to_http",
    "flag_label",
    "load_rules",
    "plan_for",
    "registry",
    "row_of",
]

ACTIONS = ("read", "create", "update", "delete")
ALL_FIELDS = "*"
_FLAG_PREFIX = "__visible__"


# --------------------------------------------------------------------------------------------
# Declarations and registry


@dataclass(frozen=True)
class PolicySpec:
    """A default policy a module declares (seeded once per role, resource and action)."""

    role: str
    resource: str
    action: str
    fields: tuple[str, ...] = (ALL_FIELDS,)
    row_filter: dict[str, Any] | None = None
    presets: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    description: str | None = None


@dataclass(frozen=True)
class PolicyRule:
    """One active policy as the engine uses it (a Policy row, or the implicit super-admin one)."""

    id: uuid.UUID | None
    role_id: uuid.UUID | None
    resource: str
    action: str
    fields: tuple[str, ...] = (ALL_FIELDS,)
    row_filter: dict[str, Any] | None = None
    presets: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    description: str | None = None
    role_name: str | None = None
    implicit: bool = False

    @classmethod
    def from_row(cls, row: Any, role_name: str | None = None) -> PolicyRule:
        return cls(
            id=_uuid(row.id),
            role_id=_uuid(row.role_id),
            resource=row.resource,
            action=row.action,
            fields=tuple(row.fields or ()),
            row_filter=row.row_filter or None,
            presets=row.presets or None,
            check=row.check or None,
            description=row.description,
            role_name=role_name,
        )

    def grants(self, resource: ResourceSpec) -> frozenset[str]:
        if ALL_FIELDS in self.fields:
            return frozenset(resource.field_names)
        return frozenset(f for f in self.fields if resource.has_field(f))

    @property
    def label(self) -> str:
        if self.implicit:
            return "implicit super-admin policy"
        name = self.description or f"policy {self.id}"
        return f"{name} (role {self.role_name})" if self.role_name else name

    def describe(self) -> dict[str, Any]:
        return {
            "id": str(self.id) if self.id else None,
            "role_id": str(self.role_id) if self.role_id else None,
            "role": self.role_name,
            "description": self.description,
            "implicit": self.implicit,
            "row_filter": self.row_filter,
        }


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class ResourceRegistry:
    def __init__(self, resources: Iterable[ResourceSpec] = ()) -> None:
        self._resources: dict[str, ResourceSpec] = {}
        for spec in resources:
            self.register(spec)

    def register(self, spec: ResourceSpec) -> None:
        self._resources[spec.name] = spec

    def unregister(self, name: str) -> None:
        self._resources.pop(name, None)

    def get(self, name: str) -> ResourceSpec | None:
        return self._resources.get(name)

    def require(self, name: str) -> ResourceSpec:
        spec = self._resources.get(name)
        if spec is None:
            raise NotFound(f"Unknown resource '{name}'", code="unknown_resource")
        return spec

    def all(self) -> list[ResourceSpec]:
        return sorted(self._resources.values(), key=lambda r: r.name)


_REGISTRY: ResourceRegistry | None = None


def _module_controls() -> list[Any]:
    from app.modules import MODULE_NAMES

    controls = []
    for name in MODULE_NAMES:
        try:
            module = importlib.import_module(f"app.modules.{name}.access_control")
        except ModuleNotFoundError as exc:  # pragma: no cover - every module has one
            if exc.name != f"app.modules.{name}.access_control":
                raise
            continue
        controls.append(module.ACCESS_CONTROL)
    return controls


def registry() -> ResourceRegistry:
    """Every resource declared by a module's access_control (collected once)."""
    global _REGISTRY
    if _REGISTRY is None:
        resources: list[ResourceSpec] = []
        for control in _module_controls():
            resources.extend(r for r in control.resources if isinstance(r, ResourceSpec))
        _REGISTRY = ResourceRegistry(resources)
    return _REGISTRY


def default_policies() -> list[PolicySpec]:
    result: list[PolicySpec] = []
    for control in _module_controls():
        result.extend(p for p in control.default_policies if isinstance(p, PolicySpec))
    return result


# --------------------------------------------------------------------------------------------
# Errors


class FieldsForbidden(Forbidden):
    code = "fields_forbidden"

    def __init__(self, fields: Iterable[str], detail: str | None = None) -> None:
        names = sorted(set(fields))
        super().__init__(
            detail or "You may not use these fields: " + ", ".join(names),
            extra={"fields": names},
        )


class PolicyCheckFailed(Forbidden):
    code = "policy_check_failed"


class RecordForbidden(Forbidden):
    code = "record_forbidden"


def filter_error_to_http(exc: FilterError, *, param: str = "filter") -> ValidationFailed:
    """A FilterError as a 422 naming the culprit (unknown field / operator / variable ...)."""
    return ValidationFailed(
        str(exc),
        code=f"invalid_filter_{exc.kind}",
        errors=[{"field": param, "message": str(exc), "culprit": exc.culprit, "path": exc.path}],
        extra={"culprit": exc.culprit, "kind": exc.kind},
    )


# --------------------------------------------------------------------------------------------
# Loading policies


async def fetch_rules(
    conn: AsyncSession | AsyncConnection, role_ids: Iterable[uuid.UUID]
) -> list[PolicyRule]:
    """Every active policy of these roles (no cache)."""
    ids = list(role_ids)
    if not ids:
        return []
    from app.authz.models import Policy, Role

    policies = Policy.__table__  # type: ignore[attr-defined]
    roles = Role.__table__  # type: ignore[attr-defined]
    stmt = (
        select(*policies.c, roles.c.name.label("role_name"))
        .join(roles, roles.c.id == policies.c.role_id)
        .where(policies.c.is_active.is_(True), policies.c.role_id.in_(ids))
        .order_by(policies.c.created_at, policies.c.id)
    )
    rows = await conn.execute(stmt)
    return [PolicyRule.from_row(row, row.role_name) for row in rows]


async def load_rules(session: AsyncSession, principal: Principal) -> list[PolicyRule]:
    """The principal's active policies, memoized on the principal (which is rebuilt when the
    authz version moves). Not memoized while the session holds an uncommitted authz change."""
    memo_key = "policy_rules"
    cached: list[PolicyRule] | None = principal.memo.get(memo_key)
    if cached is not None:
        return cached
    rules = await fetch_rules(session, principal.role_ids)
    if not session.info.get("authz_bumped"):
        principal.memo[memo_key] = rules
    return rules


def _superadmin_rule(resource: str, action: str) -> PolicyRule:
    return PolicyRule(id=None, role_id=None, resource=resource, action=action, implicit=True)


async def plan_for(
    session: AsyncSession,
    principal: Principal,
    resource: str | ResourceSpec,
    action: str,
    *,
    now: datetime,
) -> AccessPlan:
    """The merged plan of the principal for a resource and action (see module docstring)."""
    spec = resource if isinstance(resource, ResourceSpec) else registry().require(resource)
    memo_key = ("policy_plan", spec.name, action)
    cached: AccessPlan | None = principal.memo.get(memo_key)
    if cached is not None and not cached.uses_now:
        return cached
    variables = Variables.for_principal(principal, now)
    if principal.is_superadmin:
        plan = build_plan(spec, action, [], variables, superadmin=True)
    else:
        rules = await load_rules(session, principal)
        plan = build_plan(spec, action, rules, variables)
    if not session.info.get("authz_bumped"):
        principal.memo[memo_key] = plan
    return plan


def build_plan(
    resource: ResourceSpec,
    action: str,
    rules: Iterable[PolicyRule],
    variables: Variables,
    *,
    superadmin: bool = False,
) -> AccessPlan:
    """Pure: the plan for these rules (those of other resources/actions are ignored)."""
    selected = [r for r in rules if r.resource == resource.name and r.action == action]
    if superadmin:
        selected = [_superadmin_rule(resource.name, action)]
    return AccessPlan(resource, action, tuple(selected), variables)


def row_of(resource: ResourceSpec, obj: Any) -> dict[str, Any]:
    """A mapping field -> value of an ORM object (or mapping) for Python evaluation."""
    if isinstance(obj, Mapping):
        return dict(obj)
    result = {f.name: getattr(obj, f.column_name, None) for f in resource.fields}
    result[resource.id_field] = getattr(obj, resource.id_field, None)
    return result


def flag_label(field_name: str) -> str:
    return _FLAG_PREFIX + field_name


# --------------------------------------------------------------------------------------------
# The plan


@dataclass
class AccessPlan:
    resource: ResourceSpec
    action: str
    rules: tuple[PolicyRule, ...]
    variables: Variables
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        spec = self.resource
        self._grants = {i: r.grants(spec) for i, r in enumerate(self.rules)}
        readable: set[str] = set()
        for granted in self._grants.values():
            readable |= granted
        self.readable_fields: frozenset[str] = frozenset(readable)
        unfiltered = [i for i, r in enumerate(self.rules) if r.row_filter is None]
        all_filters = {_key(r.row_filter) for r in self.rules}
        unconditional = set()
        for name in readable:
            granting = [i for i, g in self._grants.items() if name in g]
            if any(i in unfiltered for i in granting) or all_filters <= {
                _key(self.rules[i].row_filter) for i in granting
            }:
                unconditional.add(name)
        self.unconditional_fields: frozenset[str] = frozenset(unconditional)
        self.conditional_fields: frozenset[str] = self.readable_fields - self.unconditional_fields
        writable = {f.name for f in spec.fields if f.writable}
        self.writable_fields: frozenset[str] = self.readable_fields & frozenset(writable)
        self.uses_now = any(
            "$now" in referenced_variables([r.row_filter, r.check, r.presets]) for r in self.rules
        )

    # -- facts ---------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return not self.rules

    @property
    def unrestricted_rows(self) -> bool:
        return any(r.row_filter is None for r in self.rules)

    def granting_rules(self, field_name: str) -> list[PolicyRule]:
        return [r for i, r in enumerate(self.rules) if field_name in self._grants[i]]

    # -- SQL -----------------------------------------------------------------------------

    def _rule_clause(self, rule: PolicyRule) -> ColumnElement[bool]:
        key = ("rule", id(rule))
        clause = self._cache.get(key)
        if clause is None:
            if rule.row_filter is None:
                clause = true()
            else:
                clause = flt.compile(rule.row_filter, self.resource, self.variables)
            self._cache[key] = clause
        return clause

    def _or(self, rules: Sequence[PolicyRule]) -> ColumnElement[bool]:
        if not rules:
            return false()
        if any(r.row_filter is None for r in rules):
            return true()
        unique: dict[str, PolicyRule] = {}
        for r in rules:
            unique.setdefault(_key(r.row_filter), r)
        clauses = [self._rule_clause(r) for r in unique.values()]
        return clauses[0] if len(clauses) == 1 else or_(*clauses)

    def row_clause(self) -> ColumnElement[bool]:
        """Rows admitted by any policy of the plan (false() when there is none)."""
        if "row" not in self._cache:
            self._cache["row"] = self._or(self.rules)
        return self._cache["row"]

    def visible_clause(self, field_name: str) -> ColumnElement[bool]:
        """Where the cell is visible (within admitted rows): true() when it is visible in every
        admitted row, false() when no policy grants it."""
        if field_name == self.resource.id_field or field_name in self.unconditional_fields:
            return true()
        if field_name not in self.readable_fields:
            return false()
        key = ("visible", field_name)
        if key not in self._cache:
            self._cache[key] = self._or(self.granting_rules(field_name))
        return self._cache[key]

    def column(self, field_name: str) -> ColumnElement[Any]:
        """The masked cell: NULL wherever it is hidden (so filters, sorts, groups and counts
        behave as if it did not exist)."""
        raw = self.resource.column(field_name)
        if field_name == self.resource.id_field or field_name in self.unconditional_fields:
            return raw
        if field_name not in self.readable_fields:
            return literal(None, raw.type)
        key = ("column", field_name)
        if key not in self._cache:
            self._cache[key] = flt.masked(raw, self.visible_clause(field_name))
        return self._cache[key]

    def columns(self, fields: Iterable[str] | None = None) -> dict[str, ColumnElement[Any]]:
        names = self.resource.field_names if fields is None else tuple(fields)
        return {name: self.column(name) for name in names}

    def select_columns(self, fields: Iterable[str] | None = None) -> list[ColumnElement[Any]]:
        """Labelled expressions for one SELECT: the id, each readable requested field (masked)
        and a visibility flag per conditionally visible field."""
        names = self._requested(fields)
        result: list[ColumnElement[Any]] = [self.resource.id_column.label(self.resource.id_field)]
        for name in names:
            if name == self.resource.id_field:
                continue
            result.append(self.column(name).label(name))
            if name in self.conditional_fields:
                result.append(self.visible_clause(name).label(flag_label(name)))
        return result

    def _requested(self, fields: Iterable[str] | None) -> list[str]:
        if fields is None:
            return [n for n in self.resource.field_names if n in self.readable_fields]
        names = list(dict.fromkeys(fields))
        self.ensure_readable(names)
        return names

    def row_to_dict(self, row: Mapping[str, Any], fields: Iterable[str] | None = None) -> dict:
        """The response object from a row fetched with select_columns(): hidden fields absent."""
        names = self._requested(fields) if fields is not None else None
        id_field = self.resource.id_field
        result: dict[str, Any] = {}
        if id_field in row:
            result[id_field] = row[id_field]
        for name in names if names is not None else self.resource.field_names:
            if name == id_field or name not in self.readable_fields:
                continue
            if name in self.conditional_fields:
                flag = row.get(flag_label(name))
                if not flag:
                    continue
            if name in row:
                result[name] = row[name]
        return result

    def ensure_readable(self, names: Iterable[str]) -> None:
        """403 naming the fields readable in no row (unknown fields are named too)."""
        id_field = self.resource.id_field
        bad = [n for n in names if n != id_field and n not in self.readable_fields]
        if bad:
            raise FieldsForbidden(bad)

    def where(self, filter_json: Any, *, param: str = "filter") -> ColumnElement[bool]:
        """A client's filter: 422 naming what is unknown, 403 naming fields readable in no
        row, else the SQL clause over masked columns."""
        try:
            flt.validate(filter_json, self.resource)
        except FilterError as exc:
            raise filter_error_to_http(exc, param=param) from None
        names = referenced_fields(filter_json)
        self.ensure_readable(names)
        return flt.compile(filter_json, self.resource, self.variables, columns=self.columns(names))

    def search_clause(self, q: str, fields: Iterable[str] | None = None) -> ColumnElement[bool]:
        """Case-insensitive substring match of `q` over searchable readable masked columns."""
        if fields is None:
            names = [
                f.name
                for f in self.resource.fields
                if f.searchable and f.name in self.readable_fields
            ]
        else:
            names = list(fields)
            self.ensure_readable(names)
        needle = q.lower()
        clauses = [
            func.coalesce(flt._StrPos(func.lower(self.column(n)), literal(needle)), 0) > 0
            for n in names
        ]
        if not clauses:
            return false()
        return or_(*clauses)

    def order_by(self, sort: Iterable[str]) -> list[ColumnElement[Any]]:
        """["family_name", "-admitted_at"] -> ORDER BY over masked columns, NULLs last on both
        backends, then the id as tie-breaker. 403 naming fields readable in no row."""
        names = [(s[1:], True) if s.startswith("-") else (s, False) for s in sort if s]
        self.ensure_readable([n for n, _ in names])
        clauses: list[ColumnElement[Any]] = []
        for name, desc in names:
            column = self.column(name)
            clauses.append(column.is_(None).asc())
            clauses.append(column.desc() if desc else column.asc())
        clauses.append(self.resource.id_column.asc())
        return clauses

    # -- Python --------------------------------------------------------------------------

    def _admits_rule(self, rule: PolicyRule, row: Mapping[str, Any]) -> bool:
        if rule.row_filter is None:
            return True
        return flt.evaluate(rule.row_filter, row, self.variables, self.resource)

    def admitting_rules(self, row: Mapping[str, Any]) -> list[PolicyRule]:
        return [r for r in self.rules if self._admits_rule(r, row)]

    def admits(self, row: Mapping[str, Any]) -> bool:
        return any(self._admits_rule(r, row) for r in self.rules)

    def visible_fields(self, row: Mapping[str, Any]) -> set[str]:
        visible: set[str] = set()
        for i, rule in enumerate(self.rules):
            if self._admits_rule(rule, row):
                visible |= self._grants[i]
        return visible

    def mask(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One object as the caller may see it: {} when not admitted, hidden fields absent."""
        visible = self.visible_fields(row)
        if not visible and not self.admits(row):
            return {}
        result = {self.resource.id_field: row.get(self.resource.id_field)}
        result.update({n: row.get(n) for n in self.resource.field_names if n in visible})
        return result

    # -- writes --------------------------------------------------------------------------

    def _resolved_presets(self, rule: PolicyRule) -> dict[str, Any]:
        presets: dict[str, Any] = {}
        for name, value in (rule.presets or {}).items():
            spec = self.resource.field(name)
            presets[name] = flt.resolve_value(value, spec, self.variables)
        return presets

    def _check_write(
        self,
        candidates: Sequence[PolicyRule],
        values: Mapping[str, Any],
        base: Mapping[str, Any],
    ) -> dict[str, Any]:
        sent = set(values)
        non_writable = {
            n for n in sent if not self.resource.has_field(n) or not self.resource.field(n).writable
        }
        union: set[str] = set()
        for rule in candidates:
            union |= rule.grants(self.resource)
        over = (sent - union) | non_writable
        if over:
            raise FieldsForbidden(
                over,
                "You may not write these fields: " + ", ".join(sorted(over)),
            )
        preset_conflicts: set[str] = set()
        failed: list[PolicyRule] = []
        for rule in candidates:
            if not sent <= rule.grants(self.resource):
                continue
            presets = self._resolved_presets(rule)
            clash = sent & set(presets)
            if clash:
                preset_conflicts |= clash
                continue
            result = {**base, **values, **presets}
            if rule.check is None or flt.evaluate(
                rule.check, result, self.variables, self.resource
            ):
                return {**values, **presets}
            failed.append(rule)
        if failed:
            raise PolicyCheckFailed(
                "The record would not satisfy the check of " + "; ".join(r.label for r in failed),
                extra={"failed_checks": [r.describe() for r in failed]},
            )
        if preset_conflicts:
            raise FieldsForbidden(
                preset_conflicts,
                "These fields are set by the server and may not be sent: "
                + ", ".join(sorted(preset_conflicts)),
            )
        raise FieldsForbidden(
            sent,
            "No single policy lets you write these fields together: " + ", ".join(sorted(sent)),
        )

    def check_create(
        self, values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The values to insert (sent + presets) or 403 (fields / presets / check).

        `defaults` is the row as the database would store it with nothing sent (column
        defaults): each `check` is judged on defaults + sent + presets, so that no check can be
        passed by leaving out a field whose default violates it."""
        if not self.rules:
            raise Forbidden(
                f"You may not create {self.resource.name} records", code="action_forbidden"
            )
        return self._check_write(self.rules, values, defaults or {})

    def check_update(
        self, current: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The changes to apply (sent + presets) or 403: the record is outside every update
        policy, a field is not writable, or the updated row would fail the check."""
        candidates = self.admitting_rules(current)
        if not candidates:
            raise RecordForbidden(f"You may not update this {self.resource.name} record")
        return self._check_write(candidates, changes, current)

    def check_delete(self, current: Mapping[str, Any]) -> None:
        if not self.admits(current):
            raise RecordForbidden(f"You may not delete this {self.resource.name} record")


def _key(row_filter: Any) -> str:
    import json

    return json.dumps(row_filter, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------------
# Explain and forms


def explain_record(plan: AccessPlan, row: Mapping[str, Any]) -> dict[str, Any]:
    """Which policies admit the row, which grant each field, why each hidden field is hidden."""
    admitting = plan.admitting_rules(row)
    admitting_ids = {id(r) for r in admitting}
    fields: dict[str, Any] = {}
    for spec in plan.resource.fields:
        granting = plan.granting_rules(spec.name)
        visible_by = [r for r in granting if id(r) in admitting_ids]
        if visible_by:
            reason = None
        elif not admitting:
            reason = "The record is outside every read policy of the user"
        elif not granting:
            reason = "No read policy of the user grants this field"
        else:
            reason = (
                "Granted only by policies whose row filter does not admit this record: "
                + "; ".join(r.label for r in granting)
            )
        fields[spec.name] = {
            "visible": bool(visible_by),
            "granted_by": [r.describe() for r in granting],
            "visible_through": [r.describe() for r in visible_by],
            "reason": reason,
        }
    return {
        "resource": plan.resource.name,
        "admitted": bool(admitting),
        "policies": [
            {**r.describe(), "admits": id(r) in admitting_ids, "fields": sorted(r.fields)}
            for r in plan.rules
        ],
        "admitting_policies": [r.describe() for r in admitting],
        "fields": fields,
    }


async def fields_summary(
    session: AsyncSession, principal: Principal, resource: str | ResourceSpec, *, now: datetime
) -> dict[str, Any]:
    """The caller's readable / writable fields for a resource (for forms)."""
    spec = resource if isinstance(resource, ResourceSpec) else registry().require(resource)
    plans = {a: await plan_for(session, principal, spec, a, now=now) for a in ACTIONS}
    order = spec.field_names

    def ordered(names: Iterable[str]) -> list[str]:
        chosen = set(names)
        return [n for n in order if n in chosen]

    return {
        "resource": spec.name,
        "read": ordered(plans["read"].readable_fields),
        "read_everywhere": ordered(plans["read"].unconditional_fields),
        "read_conditional": ordered(plans["read"].conditional_fields),
        "create": ordered(plans["create"].writable_fields),
        "update": ordered(plans["update"].writable_fields),
        "can_create": not plans["create"].is_empty,
        "can_update": not plans["update"].is_empty,
        "can_delete": not plans["delete"].is_empty,
        "presets": {
            a: sorted({k for r in plans[a].rules for k in (r.presets or {})})
            for a in ("create", "update")
        },
    }


def validate_policy_parts(
    resource: ResourceSpec,
    *,
    fields: Sequence[str],
    row_filter: Any,
    presets: Mapping[str, Any] | None,
    check: Any,
) -> None:
    """FilterError naming the first unknown field / operator / variable / bad value of a policy
    (fields list, row filter, presets, check)."""
    for name in fields:
        if name != ALL_FIELDS and not resource.has_field(name):
            raise FilterError(
                f"Unknown field '{name}' on resource '{resource.name}'",
                kind="field",
                culprit=name,
                path="fields",
            )
    if row_filter is not None:
        _validate_prefixed(row_filter, resource, "row_filter")
    if check is not None:
        _validate_prefixed(check, resource, "check")
    for name, value in (presets or {}).items():
        if not resource.has_field(name):
            raise FilterError(
                f"Unknown field '{name}' on resource '{resource.name}'",
                kind="field",
                culprit=name,
                path="presets",
            )
        spec = resource.field(name)
        # Caught when the policy is saved, not as a failing write later: a preset is written
        # into every record the policy creates or updates.
        if not spec.writable:
            raise FilterError(
                f"'{name}' is set by the server and cannot be preset",
                kind="field",
                culprit=name,
                path=f"presets.{name}",
            )
        if value is None and not resource.column(name).nullable:
            raise FilterError(
                f"Invalid preset for '{name}': the field cannot be empty",
                kind="value",
                culprit=name,
                path=f"presets.{name}",
            )
        if flt.is_variable(value):
            _validate_prefixed({name: {"_eq": value}}, resource, f"presets.{name}")
        elif value is not None:
            try:
                flt.resolve_value(value, spec, Variables())
            except (TypeError, ValueError) as exc:
                raise FilterError(
                    f"Invalid preset for '{name}': {exc}",
                    kind="value",
                    culprit=name,
                    path=f"presets.{name}",
                ) from None


def _validate_prefixed(filter_json: Any, resource: ResourceSpec, prefix: str) -> None:
    try:
        flt.validate(filter_json, resource)
    except FilterError as exc:
        exc.path = f"{prefix}.{exc.path}" if exc.path else prefix
        raise
