"""Cluster admins' policy for pipelines, enforced by the operator before any Job exists.

The same rules ship as a ValidatingAdmissionPolicy in the chart (``charts/tycho/templates/
admission-policy.yaml``), so the API server refuses a violating pipeline on apply; the
operator enforces them too (a policy installed later, a cluster without the admission
policy, or one created before the policy): a violation makes the pipeline ``Invalid``
with the field path, and nothing runs. Pure: a function of the spec and the settings.
"""

from __future__ import annotations

from collections.abc import Iterable

from tycho.api import models, problems
from tycho.settings import Settings


def check(pipeline: models.ExperimentPipeline, settings: Settings) -> list[problems.Problem]:
    return list(_problems(pipeline, settings))


def _problems(pipeline: models.ExperimentPipeline, s: Settings) -> Iterable[problems.Problem]:
    Problem = problems.Problem
    ns = pipeline.metadata.namespace or ""
    if s.allowed_namespaces and ns not in s.allowed_namespaces:
        yield Problem("metadata.namespace", f"pipelines may not run in namespace {ns!r} (cluster policy)",
                      "use one of: " + ", ".join(s.allowed_namespaces))
    secret_ref = pipeline.spec.storage.secret_ref
    if s.allowed_secrets and secret_ref is not None and secret_ref.name not in s.allowed_secrets:
        yield Problem("spec.storage.secretRef.name", f"Secret {secret_ref.name!r} is not allowed (cluster policy)",
                      "use one of: " + ", ".join(s.allowed_secrets))
    for i, stage in enumerate(pipeline.spec.stages):
        base = f"spec.stages[{i}]"
        if s.allowed_registries and not stage.image.startswith(s.allowed_registries):
            yield Problem(f"{base}.image", f"{stage.image!r} is not from an allowed registry (cluster policy)",
                          "use an image under: " + ", ".join(s.allowed_registries))
        if s.require_digests and "@sha256:" not in stage.image:
            yield Problem(f"{base}.image", "images must be pinned by digest (cluster policy)",
                          "append @sha256:<digest> (images/build.sh --pin prints it)")
        for j, var in enumerate(stage.env):
            ref = var.value_from.secret_key_ref if var.value_from else None
            if s.allowed_secrets and ref is not None and ref.name not in s.allowed_secrets:
                yield Problem(f"{base}.env[{j}].valueFrom.secretKeyRef.name",
                              f"Secret {ref.name!r} is not allowed (cluster policy)",
                              "use one of: " + ", ".join(s.allowed_secrets))
        for j, tol in enumerate(stage.tolerations):
            if s.allowed_toleration_keys and (tol.key or "") not in s.allowed_toleration_keys:
                yield Problem(f"{base}.tolerations[{j}].key", f"tolerating {tol.key or 'every taint'!r} is not "
                              "allowed (cluster policy)", "tolerate one of: " + ", ".join(s.allowed_toleration_keys))
        for key in stage.node_selector:
            if s.allowed_node_selector_keys and key not in s.allowed_node_selector_keys:
                yield Problem(f"{base}.nodeSelector.{key}", f"selecting nodes by {key!r} is not allowed (cluster "
                              "policy)", "select on one of: " + ", ".join(s.allowed_node_selector_keys))
