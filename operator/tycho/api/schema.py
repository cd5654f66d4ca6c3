"""The building blocks of the API types: the base model and the helper that puts CRD-only
schema next to a field (the grammar of names and the bounds are ``tycho.api.grammar``).

``tycho.api.models`` (the spec) and ``tycho.api.status`` (what the operator writes)
are built from these; ``tycho.api.crd`` turns them into the CustomResourceDefinition.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from pathlib import Path
from typing import Any

import pydantic
from pydantic import alias_generators


def crd(**schema: pydantic.JsonValue) -> dict[str, pydantic.JsonValue]:
    """Extra OpenAPI for the CRD only (``json_schema_extra``, read by tycho.api.crd):
    pydantic does not enforce it, so validation keeps its own messages with field paths
    and fixes."""
    return schema


@functools.cache
def _attribute_docs(module: str) -> dict[str, dict[str, str]]:
    """Class name -> field name -> the docstring under the field, read from a module's
    source in one parse. (pydantic's ``use_attribute_docstrings`` parses the module once per
    class at import, which made importing the API a quarter of a second.)"""
    docs: dict[str, dict[str, str]] = {}
    source = sys.modules[module].__file__
    if source is None:
        return docs
    for node in ast.parse(Path(source).read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        for field, after in zip(node.body, node.body[1:]):
            if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                fields[field.target.id] = inspect.cleandoc(after.value.value)
        docs[node.name] = fields
    return docs


class Model(pydantic.BaseModel):
    """Base: camelCase on the wire (Kubernetes style), unknown fields rejected. Field
    docstrings become the JSON schema's descriptions (and so ``kubectl explain``'s)."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        docs = _attribute_docs(cls.__module__).get(cls.__name__, {})
        for name, field in cls.model_fields.items():
            prop = target.get("properties", {}).get(field.alias or name)
            if prop is not None and name in docs and "description" not in prop:
                prop["description"] = docs[name]
        return schema


class StatusModel(Model):
    """Base of the status types: the operator writes them, commands that read a manifest
    never do, so their validators are built on first use instead of at import."""

    model_config = pydantic.ConfigDict(defer_build=True)
