"""The committed CRD is exactly what the models generate, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tycho.api import crd

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "charts" / "tycho" / "files" / "crd.yaml"


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, child in node.get("properties", {}).items():
            out += walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            out += walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == crd.render(), "run `make crd` and commit charts/tycho/files/crd.yaml"


def test_schema_is_structural() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"), f"{path} has no type"
        assert node.get("type") != "null", path


def test_fields_carry_descriptions_for_kubectl_explain() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    stage = schema["properties"]["spec"]["properties"]["stages"]["items"]
    for field in ("name", "image", "command", "params", "inputs", "resources", "retries", "cache"):
        assert stage["properties"][field].get("description"), field


def test_printer_columns_show_phase_progress_metric_sweeps_and_age() -> None:
    columns = crd.build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == ["Phase", "Progress", "Metric", "Sweep", "Age"]


def test_reference_pipeline_satisfies_the_crd_schema() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    doc = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    jsonschema.validate(doc, _as_jsonschema(schema))


def test_crd_schema_rejects_an_unknown_stage_field_type() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    doc = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    doc["spec"]["stages"][0]["retries"] = {"limit": "many"}
    try:
        jsonschema.validate(doc, _as_jsonschema(schema))
    except jsonschema.ValidationError as err:
        assert "many" in err.message
    else:
        raise AssertionError("a string retry limit passed the schema")


def _as_jsonschema(node: Any) -> Any:
    """OpenAPI's nullable -> JSON Schema's null type, so jsonschema can check documents."""
    if isinstance(node, dict):
        out = {k: _as_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        if node.get("x-kubernetes-int-or-string"):
            out["type"] = ["integer", "string", "number"]
        return out
    if isinstance(node, list):
        return [_as_jsonschema(v) for v in node]
    return node
