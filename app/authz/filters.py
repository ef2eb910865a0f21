"""The row-filter language (Directus-like JSON): declare resources, validate, compile to
SQLAlchemy, evaluate in Python. The SQL and Python semantics agree on every backend.

PUBLIC API (stable; the policy engine and modules build on it)
---------------------------------------------------------------
Types
  FieldSpec(name, type, *, choices=(), searchable=False, sortable=True, filterable=True,
            writable=True, column=None, description=None)
      One protected field of a resource. `type` is one of FIELD_TYPES:
      "string", "text", "integer", "number", "boolean", "date", "datetime", "enum", "uuid",
      "json". `column` names the table column when it differs from `name`.
  ResourceSpec(name, model, fields, *, id_field="id", soft_delete=False, description=None,
               emergency_access=None)
      A resource a module protects (declared in its access_control.py). `model` is the
      SQLModel table class. `.field(name)`, `.column(name)` (the table column),
      `.field_names` (declaration order). `emergency_access(session, principal, record_id,
      now) -> bool`, if set, tells whether a grant of the module's own (patients: break-glass)
      opens that whole record to that principal, outside the policies; the module's reads
      apply it, record explanations report it.
  Variables(user_id, attributes, now)
      The values of `$user.id`, `$user.<attribute>` and `$now` for one request;
      `Variables.for_principal(principal, now)`.
  FilterError(ValueError): `.kind` ("field" | "operator" | "variable" | "value" | "syntax"),
      `.culprit` (the unknown field / operator / variable, or the field whose value is bad),
      `.path` (where in the filter), str() a human message naming the culprit.

Functions
  validate(filter, resource) -> None                      raises FilterError
  compile(filter, resource, variables, *, columns=None) -> ColumnElement[bool]
      `columns` maps field name -> SQL expression to use instead of the table column (the
      policy engine passes masked columns, so a hidden cell compares as NULL).
  evaluate(filter, row, variables, resource=None) -> bool  (row: Mapping field -> value)
  referenced_fields(filter) -> set[str]                   fields a filter names
  resolve_value(value, field, variables) -> Any           a literal or `$variable` -> Python
      value typed for the field (None when a variable is unresolved); used for presets.

Language
  A filter is a JSON object. Keys are field names or the logical operators `_and` (list),
  `_or` (list), `_not` (object). Several keys in one object are AND-ed; `{}` is true,
  `{"_and": []}` true, `{"_or": []}` false. A field maps to an object of operators (several
  are AND-ed): _eq, _neq, _lt, _lte, _gt, _gte (a value), _in, _nin (a list of values),
  _null, _nnull (true/false), _contains, _starts_with (a string; string/text fields).
  A value may be a variable: "$user.id", "$user.<attribute>", "$now".
  Operators per type:
    string, text:          eq neq in nin lt lte gt gte null nnull contains starts_with
    enum, uuid:            eq neq in nin null nnull
    integer, number, date, datetime: eq neq in nin lt lte gt gte null nnull
    boolean:               eq neq in nin null nnull
    json:                  null nnull

Semantics (identical in SQL and Python, on SQLite and PostgreSQL)
  * Two-valued logic. A comparison (every operator except _null/_nnull) with a NULL cell or an
    unresolved/NULL variable is FALSE — _neq and _nin included. `_not` is plain boolean
    negation of its (two-valued) operand. `_in` ignores NULL members.
  * Strings compare by code point (PostgreSQL uses COLLATE "C"); _contains and _starts_with
    are case-sensitive and treat % and _ literally (instr/strpos and substr, never LIKE).
  * Dates / datetimes compare as such; datetimes are UTC (naive literals are taken as UTC);
    `$now` on a date field means today's date (UTC).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Integer, String, and_, case, false, func, literal, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from app.core.inputs import to_utc

if TYPE_CHECKING:
    from app.authz.principal import Principal

FIELD_TYPES = (
    "string",
    "text",
    "integer",
    "number",
    "boolean",
    "date",
    "datetime",
    "enum",
    "uuid",
    "json",
)

COMPARISON_OPS = ("_eq", "_neq", "_lt", "_lte", "_gt", "_gte")
LIST_OPS = ("_in", "_nin")
NULL_OPS = ("_null", "_nnull")
STRING_OPS = ("_contains", "_starts_with")
OPERATORS = (*COMPARISON_OPS, *LIST_OPS, *NULL_OPS, *STRING_OPS)
LOGICAL_OPS = ("_and", "_or", "_not")

_EQUALITY = ("_eq", "_neq", "_in", "_nin", "_null", "_nnull")
_ORDERED = (*_EQUALITY, "_lt", "_lte", "_gt", "_gte")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "string": (*_ORDERED, *STRING_OPS),
    "text": (*_ORDERED, *STRING_OPS),
    "enum": _EQUALITY,
    "uuid": _EQUALITY,
    "integer": _ORDERED,
    "number": _ORDERED,
    "date": _ORDERED,
    "datetime": _ORDERED,
    "boolean": _EQUALITY,
    "json": NULL_OPS,
}

_VARIABLE_RE = re.compile(r"^\$(now|user\.[A-Za-z_][A-Za-z0-9_]{0,63})$")
MAX_DEPTH = 16
MAX_NODES = 500


# --------------------------------------------------------------------------------------------
# Declarations


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    choices: tuple[str, ...] = ()
    searchable: bool = False
    sortable: bool = True
    filterable: bool = True
    writable: bool = True
    column: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {self.type!r} for {self.name}")

    @property
    def column_name(self) -> str:
        return self.column or self.name

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS_BY_TYPE[self.type]


# (session, principal, record id, now) -> does a module's own grant open the whole record?
EmergencyAccess = Callable[[Any, Any, Any, Any], Awaitable[bool]]


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    model: Any  # the SQLModel table class
    fields: tuple[FieldSpec, ...]
    id_field: str = "id"
    soft_delete: bool = False
    description: str | None = None
    emergency_access: EmergencyAccess | None = field(default=None, compare=False, repr=False)
    _by_name: dict[str, FieldSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def has_field(self, name: str) -> bool:
        return name in self._by_name

    def field(self, name: str) -> FieldSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise FilterError(
                f"Unknown field '{name}' on resource '{self.name}'", kind="field", culprit=name
            ) from None

    @property
    def table(self) -> Any:
        return self.model.__table__

    def column(self, name: str) -> ColumnElement[Any]:
        """The table column of a declared field (or of `id_field` / `deleted_at`)."""
        spec = self._by_name.get(name)
        column_name = spec.column_name if spec else name
        result: ColumnElement[Any] = self.table.c[column_name]
        return result

    @property
    def id_column(self) -> ColumnElement[Any]:
        return self.column(self.id_field)


@dataclass(frozen=True)
class Variables:
    user_id: uuid.UUID | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def for_principal(cls, principal: Principal, now: datetime) -> Variables:
        return cls(user_id=principal.user_id, attributes=dict(principal.attributes), now=now)

    def resolve(self, name: str) -> Any:
        """The raw value of `$now` / `$user.id` / `$user.<attr>` (None when unresolved)."""
        if name == "$now":
            return self.now
        if name == "$user.id":
            return self.user_id
        if name.startswith("$user."):
            return self.attributes.get(name[len("$user.") :])
        return None


class FilterError(ValueError):
    def __init__(self, message: str, *, kind: str, culprit: str, path: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.culprit = culprit
        self.path = path


# --------------------------------------------------------------------------------------------
# Values


def is_variable(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


class _Unresolved(Exception):
    pass


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _coerce(value: Any, spec: FieldSpec) -> Any:
    """A JSON/Python value -> the Python value for the field's type. Raises ValueError/TypeError
    when it does not fit."""
    t = spec.type
    if value is None:
        return None
    if t in ("string", "text"):
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    if t == "enum":
        if not isinstance(value, str):
            raise TypeError("expected a string")
        if spec.choices and value not in spec.choices:
            raise ValueError(f"expected one of {', '.join(spec.choices)}")
        return value
    if t == "uuid":
        if isinstance(value, uuid.UUID):
            return value
        if not isinstance(value, str):
            raise TypeError("expected a UUID")
        return uuid.UUID(value)
    if t == "integer":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError("expected an integer")
        number_int = int(value)
        if not _INT64_MIN <= number_int <= _INT64_MAX:
            # Past what the databases store: refused here rather than failing in the driver.
            raise ValueError("integer out of range")
        return number_int
    if t == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise TypeError("expected a number")
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError("expected a finite number")
        return number
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeError("expected a boolean")
    if t == "date":
        if isinstance(value, datetime):
            return value.astimezone(UTC).date() if value.tzinfo else value.date()
        if isinstance(value, date):
            return value
        if not isinstance(value, str):
            raise TypeError("expected a date")
        if len(value) > 10:
            return _coerce_datetime(value).date()
        return date.fromisoformat(value)
    if t == "datetime":
        if isinstance(value, datetime):
            return to_utc(value)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if not isinstance(value, str):
            raise TypeError("expected a datetime")
        return _coerce_datetime(value)
    if t == "json":
        return value
    raise TypeError(f"unsupported type {t}")


def _coerce_datetime(text: str) -> datetime:
    return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def resolve_value(value: Any, spec: FieldSpec, variables: Variables) -> Any:
    """A literal or `$variable` -> the typed Python value (None when a variable is unresolved or
    does not fit the field's type)."""
    if is_variable(value):
        raw = variables.resolve(value)
        if raw is None:
            return None
        if spec.type in ("string", "text", "enum") and isinstance(raw, uuid.UUID):
            raw = str(raw)
        try:
            return _coerce(raw, spec)
        except (TypeError, ValueError):
            return None
    return _coerce(value, spec)


def _row_value(value: Any, spec: FieldSpec) -> Any:
    """A stored value -> comparable Python value (lenient: unknown shapes compare as NULL)."""
    if value is None:
        return None
    if hasattr(value, "value") and not isinstance(value, str | int | float):  # Enum members
        value = value.value
    try:
        return _coerce(value, spec)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Validation


def _field_for(resource: ResourceSpec, name: str, path: str) -> FieldSpec:
    if not resource.has_field(name):
        raise FilterError(
            f"Unknown field '{name}' on resource '{resource.name}'",
            kind="field",
            culprit=name,
            path=path,
        )
    return resource.field(name)


def _validate_value(value: Any, spec: FieldSpec, op: str, path: str) -> None:
    if is_variable(value):
        if not _VARIABLE_RE.match(value):
            raise FilterError(
                f"Unknown variable '{value}' (use $user.id, $user.<attribute> or $now)",
                kind="variable",
                culprit=value,
                path=path,
            )
        if value == "$now" and spec.type not in ("date", "datetime"):
            raise FilterError(
                f"Variable '$now' cannot be compared with {spec.type} field '{spec.name}'",
                kind="variable",
                culprit=value,
                path=path,
            )
        return
    if value is None:
        raise FilterError(
            f"Invalid value for '{spec.name}' ({op}): null (use _null)",
            kind="value",
            culprit=spec.name,
            path=path,
        )
    if op in STRING_OPS and not isinstance(value, str):
        raise FilterError(
            f"Invalid value for '{spec.name}' ({op}): expected a string",
            kind="value",
            culprit=spec.name,
            path=path,
        )
    try:
        _coerce(value, spec)
    except (TypeError, ValueError) as exc:
        raise FilterError(
            f"Invalid value for '{spec.name}' ({op}): {exc}",
            kind="value",
            culprit=spec.name,
            path=path,
        ) from None


def validate(filter: Any, resource: ResourceSpec) -> None:
    """Raise FilterError naming the first unknown field / operator / variable or bad value."""
    counter = [0]
    _validate_node(filter, resource, "", 0, counter)


def _validate_node(
    node: Any, resource: ResourceSpec, path: str, depth: int, counter: list[int]
) -> None:
    counter[0] += 1
    if depth > MAX_DEPTH or counter[0] > MAX_NODES:
        raise FilterError("Filter is too deep or too large", kind="syntax", culprit="filter")
    if not isinstance(node, Mapping):
        raise FilterError(
            "A filter must be a JSON object", kind="syntax", culprit=path or "filter", path=path
        )
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if key in ("_and", "_or"):
            if not isinstance(value, list):
                raise FilterError(
                    f"'{key}' takes a list of filters", kind="syntax", culprit=key, path=here
                )
            for i, item in enumerate(value):
                _validate_node(item, resource, f"{here}[{i}]", depth + 1, counter)
        elif key == "_not":
            _validate_node(value, resource, here, depth + 1, counter)
        elif isinstance(key, str) and key.startswith("_"):
            raise FilterError(f"Unknown operator '{key}'", kind="operator", culprit=key, path=here)
        else:
            spec = _field_for(resource, key, here)
            if not isinstance(value, Mapping) or not value:
                raise FilterError(
                    f"Field '{key}' takes an object of operators, e.g. {{\"_eq\": ...}}",
                    kind="syntax",
                    culprit=key,
                    path=here,
                )
            for op, operand in value.items():
                op_path = f"{here}.{op}"
                if op not in OPERATORS:
                    raise FilterError(
                        f"Unknown operator '{op}'", kind="operator", culprit=op, path=op_path
                    )
                if op not in spec.operators:
                    raise FilterError(
                        f"Operator '{op}' does not apply to {spec.type} field '{key}'",
                        kind="operator",
                        culprit=op,
                        path=op_path,
                    )
                if op in NULL_OPS:
                    if not isinstance(operand, bool):
                        raise FilterError(
                            f"Invalid value for '{key}' ({op}): expected true or false",
                            kind="value",
                            culprit=key,
                            path=op_path,
                        )
                elif op in LIST_OPS:
                    if not isinstance(operand, list) or len(operand) > 1000:
                        raise FilterError(
                            f"Invalid value for '{key}' ({op}): expected a list",
                            kind="value",
                            culprit=key,
                            path=op_path,
                        )
                    for item in operand:
                        if item is not None:
                            _validate_value(item, spec, op, op_path)
                else:
                    _validate_value(operand, spec, op, op_path)


def referenced_fields(filter: Any) -> set[str]:
    """The field names a (valid) filter mentions."""
    found: set[str] = set()
    _collect_fields(filter, found)
    return found


def _collect_fields(node: Any, found: set[str]) -> None:
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        if key in ("_and", "_or") and isinstance(value, list):
            for item in value:
                _collect_fields(item, found)
        elif key == "_not":
            _collect_fields(value, found)
        elif isinstance(key, str) and not key.startswith("_"):
            found.add(key)


def referenced_variables(filter: Any) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif is_variable(node):
            found.add(node)

    walk(filter)
    return found


# --------------------------------------------------------------------------------------------
# SQL


class _StrPos(FunctionElement[int]):
    """1-based position of a substring, case-sensitive, no wildcards (instr / strpos)."""

    type = Integer()
    inherit_cache = True
    name = "gh_strpos"


@compiles(_StrPos)
def _strpos_default(element: _StrPos, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(_StrPos, "postgresql")
def _strpos_pg(element: _StrPos, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


class _Bytewise(FunctionElement[str]):
    """A string expression compared by code point (COLLATE "C" on PostgreSQL; SQLite's default
    BINARY collation already is)."""

    type = String()
    inherit_cache = True
    name = "gh_bytewise"


@compiles(_Bytewise)
def _bytewise_default(element: _Bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


@compiles(_Bytewise, "postgresql")
def _bytewise_pg(element: _Bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'


def compile(
    filter: Any,
    resource: ResourceSpec,
    variables: Variables,
    *,
    columns: Mapping[str, ColumnElement[Any]] | None = None,
) -> ColumnElement[bool]:
    """The filter as a two-valued SQLAlchemy boolean expression (never NULL). Validate first:
    compile assumes a valid filter."""
    return _compile_node(filter, resource, variables, columns or {})


def _all(parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    if not parts:
        return true()
    return parts[0] if len(parts) == 1 else and_(*parts)


def _any(parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    if not parts:
        return false()
    return parts[0] if len(parts) == 1 else or_(*parts)


def _compile_node(
    node: Mapping[str, Any],
    resource: ResourceSpec,
    variables: Variables,
    columns: Mapping[str, ColumnElement[Any]],
) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    for key, value in node.items():
        if key == "_and":
            parts.append(_all([_compile_node(v, resource, variables, columns) for v in value]))
        elif key == "_or":
            parts.append(_any([_compile_node(v, resource, variables, columns) for v in value]))
        elif key == "_not":
            parts.append(not_(_compile_node(value, resource, variables, columns)))
        else:
            spec = resource.field(key)
            column = columns.get(key)
            if column is None:
                column = resource.column(key)
            for op, operand in value.items():
                parts.append(_compile_op(column, spec, op, operand, variables))
    return _all(parts)


def _compile_op(
    column: ColumnElement[Any], spec: FieldSpec, op: str, operand: Any, variables: Variables
) -> ColumnElement[bool]:
    if op == "_null":
        return column.is_(None) if operand else column.is_not(None)
    if op == "_nnull":
        return column.is_not(None) if operand else column.is_(None)
    present = column.is_not(None)
    stringy = spec.type in ("string", "text")
    if op in LIST_OPS:
        values = [resolve_value(v, spec, variables) for v in operand if v is not None]
        values = [v for v in values if v is not None]
        if op == "_in":
            if not values:
                return false()
            return and_(present, column.in_(values))
        if not values:
            return present
        return and_(present, column.not_in(values))
    value = resolve_value(operand, spec, variables)
    if value is None:
        return false()
    if op == "_contains":
        return and_(present, _StrPos(column, literal(value, String())) > 0)
    if op == "_starts_with":
        prefix = func.substr(column, 1, len(value))
        return and_(present, prefix == literal(value, String()))
    if spec.type == "boolean":
        value_expr: Any = literal(value, Boolean())
        left: Any = column
    elif stringy and op in ("_lt", "_lte", "_gt", "_gte"):
        left = _Bytewise(column)
        value_expr = _Bytewise(literal(value, String()))
    else:
        left = column
        value_expr = value
    comparison: ColumnElement[bool]
    if op == "_eq":
        comparison = left == value_expr
    elif op == "_neq":
        comparison = left != value_expr
    elif op == "_lt":
        comparison = left < value_expr
    elif op == "_lte":
        comparison = left <= value_expr
    elif op == "_gt":
        comparison = left > value_expr
    elif op == "_gte":
        comparison = left >= value_expr
    else:  # pragma: no cover - validate() refuses it
        raise FilterError(f"Unknown operator '{op}'", kind="operator", culprit=op)
    return and_(present, comparison)


def masked(column: ColumnElement[Any], visible: ColumnElement[bool]) -> ColumnElement[Any]:
    """CASE WHEN visible THEN column END: the cell is NULL where it is hidden."""
    return case((visible, column))


# --------------------------------------------------------------------------------------------
# Python


def evaluate(
    filter: Any,
    row: Mapping[str, Any],
    variables: Variables,
    resource: ResourceSpec | None = None,
) -> bool:
    """The filter applied to one object (a mapping field -> value). Same semantics as compile().
    Without `resource`, values are compared as they are (no type coercion)."""
    return _eval_node(filter, row, variables, resource)


def _eval_node(
    node: Mapping[str, Any],
    row: Mapping[str, Any],
    variables: Variables,
    resource: ResourceSpec | None,
) -> bool:
    for key, value in node.items():
        if key == "_and":
            ok = all(_eval_node(v, row, variables, resource) for v in value)
        elif key == "_or":
            ok = any(_eval_node(v, row, variables, resource) for v in value)
        elif key == "_not":
            ok = not _eval_node(value, row, variables, resource)
        else:
            spec = resource.field(key) if resource is not None else FieldSpec(key, "json")
            cell = row.get(key)
            if resource is not None:
                cell = _row_value(cell, spec)
            ok = all(_eval_op(cell, spec, op, operand, variables) for op, operand in value.items())
        if not ok:
            return False
    return True


def _eval_resolve(operand: Any, spec: FieldSpec, variables: Variables) -> Any:
    if spec.type == "json":  # untyped evaluation
        return variables.resolve(operand) if is_variable(operand) else operand
    return resolve_value(operand, spec, variables)


def _eval_op(cell: Any, spec: FieldSpec, op: str, operand: Any, variables: Variables) -> bool:
    if op == "_null":
        return (cell is None) == bool(operand)
    if op == "_nnull":
        return (cell is not None) == bool(operand)
    if cell is None:
        return False
    if op in LIST_OPS:
        values = [_eval_resolve(v, spec, variables) for v in operand if v is not None]
        values = [v for v in values if v is not None]
        return (cell in values) if op == "_in" else (cell not in values)
    value = _eval_resolve(operand, spec, variables)
    if value is None:
        return False
    try:
        if op == "_contains":
            return isinstance(cell, str) and value in cell
        if op == "_starts_with":
            return isinstance(cell, str) and cell.startswith(value)
        if op == "_eq":
            return bool(cell == value)
        if op == "_neq":
            return bool(cell != value)
        if op == "_lt":
            return bool(cell < value)
        if op == "_lte":
            return bool(cell <= value)
        if op == "_gt":
            return bool(cell > value)
        if op == "_gte":
            return bool(cell >= value)
    except TypeError:
        return False
    raise FilterError(f"Unknown operator '{op}'", kind="operator", culprit=op)
