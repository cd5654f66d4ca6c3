"""Generates the ExperimentPipeline CustomResourceDefinition from the pydantic models.

Kubernetes wants a *structural* schema: every node typed, no ``$ref``, no ``type`` inside
``anyOf``, ``nullable`` instead of ``null`` types. Pydantic's JSON Schema is close; this
module rewrites it. Called by ``tycho crd`` and by the test that keeps the committed CRD
(``charts/tycho/files/crd.yaml``) equal to what the models say.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tycho.api import models, rules, schema, status as xp

JsonSchema = dict[str, Any]
_DROP_KEYS = {"title"}


def _resolve(node: Any, defs: dict[str, JsonSchema]) -> Any:
    """Inline every ``$ref`` (the models have no recursion, so this terminates)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            target.update(extra)
            return _resolve(target, defs)
        return {k: _resolve(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _structural(node: JsonSchema) -> JsonSchema:
    """Rewrite one resolved schema node into its structural form."""
    node = {k: v for k, v in node.items() if k not in _DROP_KEYS}
    if "default" in node and not isinstance(node["default"], (str, int, float, bool)):
        del node["default"]  # only scalar defaults: the API server fills them in, visibly
    if "anyOf" in node:
        options = node.pop("anyOf")
        nullable = any(o.get("type") == "null" for o in options)
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1:
            merged = _structural({**rest[0], **node})
        elif {o.get("type") for o in rest} <= {"integer", "number", "string"} and "string" in {
            o.get("type") for o in rest
        }:
            merged = {**node, "x-kubernetes-int-or-string": True}
        else:
            # A union of shapes (e.g. a param that is a scalar or a list): any JSON value,
            # checked by tycho.api.validation instead of the API server.
            merged = {**node, "x-kubernetes-preserve-unknown-fields": True}
        if nullable:
            merged["nullable"] = True
        return merged
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("type") == "object":
        if "properties" in node:
            node["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            node["additionalProperties"] = _structural(extra)
            if not node["additionalProperties"]:
                node["additionalProperties"] = {"x-kubernetes-preserve-unknown-fields": True}
        elif extra is True:
            node.pop("additionalProperties")
            node["x-kubernetes-preserve-unknown-fields"] = True
        elif extra is False:
            node.pop("additionalProperties")
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        node["items"] = _structural(node["items"])
    return node


def _without_defaults(node: Any) -> Any:
    """The status is written whole by the operator: defaults there would only add noise."""
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    return node


def schema_of(model: type[schema.Model]) -> JsonSchema:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(_resolve(raw, raw.get("$defs", {})))


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    spec_schema = schema_of(models.Spec)
    spec_schema["description"] = "What to run: stages, their code, data and storage."
    status_schema = _without_defaults(schema_of(xp.Status))
    status_schema["description"] = "Observed state, written by the operator."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{models.PLURAL}.{models.GROUP}"},
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": list(models.SHORT_NAMES),
                "categories": ["tycho"],
            },
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": xp.PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A reproducible ML pipeline: stages run as Jobs, every output recorded "
                                           "with its provenance.",
                            "required": ["spec"],
                            "x-kubernetes-validations": list(rules.PIPELINE),
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    """The CRD as YAML, stable byte for byte (the committed file is compared to this)."""
    header = "# Generated by `tycho crd` from tycho.api.models; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=True, width=100)


def render_admission_rules() -> str:
    """The validations the chart's ValidatingAdmissionPolicy applies to every pipeline
    (``tycho.api.rules.MANIFEST``), as the YAML list the chart includes."""
    header = "# Generated by `tycho crd --admission-rules` from tycho.api.rules; do not edit by hand.\n"
    return header + yaml.safe_dump(list(rules.MANIFEST), sort_keys=True, width=100)
