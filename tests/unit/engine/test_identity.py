"""Image and code identity: one set of rules for every executor that runs images, so a
container run and a cluster run of the same manifest compute the same keys."""

from __future__ import annotations

from typing import Any

from tests.unit.kube import kubefakes as fk
from tycho.api import models, validation
from tycho.engine import identity
from tycho.planning import cachekey
from tycho.provenance import documents

DIGEST = "d" * 64


def _stage(image: str) -> models.Stage:
    doc: dict[str, Any] = fk.toy_doc()
    doc["spec"]["stages"][0]["image"] = image
    return validation.check(doc).spec.stages[0]


def test_a_pinned_image_is_keyed_by_its_digest_whoever_resolves_it() -> None:
    stage = _stage(f"localhost/tycho/stage-cpu@sha256:{DIGEST}")
    cluster_ref, cluster_part = identity.image(stage)
    laptop_ref, laptop_part = identity.image(stage, documents.ImageRef(reference=stage.image, digest=DIGEST,
                                                                       resolved_by="podman"))
    assert cluster_part == laptop_part == {"digest": DIGEST}
    assert cluster_ref.digest == laptop_ref.digest == DIGEST
    assert (cluster_ref.resolved_by, laptop_ref.resolved_by) == ("image-reference", "podman")


def test_a_tag_is_keyed_by_the_digest_an_engine_resolved_else_by_the_reference() -> None:
    stage = _stage("tycho/stage-cpu:0.1.0")
    ref, part = identity.image(stage, documents.ImageRef(reference="x", digest=DIGEST, resolved_by="docker"))
    assert part == {"digest": DIGEST} and ref == documents.ImageRef(reference="tycho/stage-cpu:0.1.0", digest=DIGEST,
                                                                   resolved_by="docker")
    ref, part = identity.image(stage)
    assert part == {"reference": "tycho/stage-cpu:0.1.0"} and ref.digest is None
    # The same image by tag (resolved) and pinned: the same key part.
    assert identity.image(_stage(f"tycho/stage-cpu@sha256:{DIGEST}"))[1] == {"digest": DIGEST}


def test_pinned_digest_reads_only_sha256_pins() -> None:
    assert identity.pinned_digest(f"a/b:1@sha256:{DIGEST}") == DIGEST
    assert identity.pinned_digest("a/b:1") is None


def test_code_identity_prefers_the_declared_digest_else_stands_for_what_the_image_holds() -> None:
    in_image = identity.code(fk.toy().spec)
    assert in_image.source == "image-reference" and in_image.digest == cachekey.digest({"code": "in-image"})
    pinned = validation.check(fk.toy_doc(code={"digest": "sha256:" + "c" * 64}))
    assert identity.code(pinned.spec) == documents.CodeRef(digest="c" * 64, source="spec.code.digest")
