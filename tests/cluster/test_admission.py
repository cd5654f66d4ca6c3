"""The API server and ``tycho validate`` give the same answer: every manifest of the bad
corpus (tests/unit/api/bad_manifests) that ``tycho validate`` refuses, ``kubectl apply
--dry-run=server`` refuses too (CRD schema, its CEL rules, the chart's admission policy;
``tycho.api.rules``), except what a header says the server cannot check, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import REPO, Cluster

pytestmark = pytest.mark.cluster

CORPUS = sorted((REPO / "tests" / "unit" / "api" / "bad_manifests").glob("*.yaml"))
REFUSALS = ("is invalid", "denied request", "BadRequest", "no matches for kind", "error parsing")
"""How kubectl says the server (or, for text no client can parse, kubectl) refused."""


def server_header(path: Path) -> str:
    """``accepts`` / ``unreadable`` when the corpus file says so (with its reason), else ``refuses``."""
    second = path.read_text().splitlines()[1]
    if not second.startswith("# server: "):
        return "refuses"
    verdict, _, why = second.removeprefix("# server: ").partition(": ")
    assert verdict in ("accepts", "unreadable") and why, f"{path.name}: say what the server does and why"
    return verdict


def test_the_api_server_refuses_what_tycho_validate_refuses(cluster: Cluster) -> None:
    disagreements = []
    for path in CORPUS:
        expected = server_header(path)
        applied = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", str(path), check=False)
        refused = applied.returncode != 0 and any(r in applied.stderr for r in REFUSALS)
        if applied.returncode != 0 and not refused:
            disagreements.append(f"{path.stem}: failed for another reason: {applied.stderr.strip()[:300]}")
        elif refused != (expected != "accepts"):
            disagreements.append(f"{path.stem}: server {'refused' if refused else 'accepted'}, header says "
                                 f"{expected}: {(applied.stderr or applied.stdout).strip()[:300]}")
    assert not disagreements, "\n".join(disagreements)


def test_the_server_names_the_field_and_the_fix_as_validate_does(cluster: Cluster) -> None:
    out = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f",
                          str(REPO / "tests" / "unit" / "api" / "bad_manifests" / "self_input.yaml"), check=False)
    assert "spec.stages[0].inputs" in out.stderr and "a stage cannot read its own output" in out.stderr
    out = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f",
                          str(REPO / "tests" / "unit" / "api" / "bad_manifests" / "unknown_output.yaml"), check=False)
    assert "spec.stages[].inputs[].from must name an output its stage declares" in out.stderr


def test_the_reference_pipelines_are_accepted(cluster: Cluster) -> None:
    for path in [REPO / "pipelines" / "digits.yaml", *sorted((REPO / "tests" / "fixtures" / "toy").glob("*.yaml"))]:
        text = path.read_text().replace("NOTES_URL", "s3://tycho/inputs/notes.txt")  # the toy's placeholder
        applied = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", "-", input=text, check=False)
        assert applied.returncode == 0, f"{path.name}: {applied.stderr}"
