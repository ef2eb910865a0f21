"""Imports every table so SQLModel.metadata is complete (Alembic, tests, tooling)."""

from __future__ import annotations

import importlib

from sqlmodel import SQLModel

from app.modules import MODULE_NAMES


def load_all_models() -> type[SQLModel]:
    importlib.import_module("app.authz.models")
    for name in MODULE_NAMES:
        try:
            importlib.import_module(f"app.modules.{name}.models")
        except ModuleNotFoundError as exc:
            if exc.name != f"app.modules.{name}.models":
                raise
    return SQLModel
