"""What identifies a stage's image and code in its cache key, wherever an image runs it.

The one home of these rules for every executor that runs stages in their images (the
container executor on this machine, Kubernetes Jobs on a cluster): when both name the
same image digest and code digest, they compute the same key, so a store shared by a
laptop and a cluster hits across them (docs/contracts.md §3). Pure.

- image: a reference pinned ``NAME@sha256:HEX`` is identified by that digest, whoever
  runs it; an unpinned reference by the digest the container engine resolved (the
  container executor), else by the reference itself (a cluster: the node resolves tags
  later, so pin images by digest to share a cache);
- code: ``spec.code.digest`` (``images/build.sh --pin`` sets it) or, without it, a
  constant meaning "the code in the image" (the image part then stands for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tycho.api import models
from tycho.planning import cachekey
from tycho.provenance import documents

IN_IMAGE = cachekey.digest({"code": "in-image"})
"""The code part of a key when the code is whatever the image holds."""


def pinned_digest(reference: str) -> str | None:
    """The hex digest a reference is pinned to (``NAME@sha256:HEX``), or None for a tag."""
    _, at, digest = reference.partition("@sha256:")
    return digest if at and digest else None


def image(stage: models.Stage, resolved: documents.ImageRef | None = None
          ) -> tuple[documents.ImageRef, Mapping[str, Any]]:
    """The stage's image as known before it runs, and the image part of its key.

    ``resolved``: what a container engine found for the reference (its digest and who
    resolved it); a pinned reference keeps its own digest, so a cluster that only reads
    the reference computes the same key."""
    pinned = pinned_digest(stage.image)
    if pinned is not None:
        ref = documents.ImageRef(reference=stage.image, digest=pinned,
                                 resolved_by=resolved.resolved_by if resolved else "image-reference")
    elif resolved is not None and resolved.digest:
        ref = resolved.model_copy(update={"reference": stage.image})
    else:
        ref = documents.ImageRef(reference=stage.image)
    return ref, cachekey.image_part(reference=stage.image, digest=ref.digest)


def code(spec: models.Spec) -> documents.CodeRef:
    """The code part of the keys of a run whose stages run the code in their images.

    The runner cannot read the code baked into an image, so it uses ``spec.code.digest``.
    Without it the code is "what the image holds", and the image part of the key (its
    digest, or its reference) stands for it. Either way the wrapper archives the code it
    ran and records it, so ``tycho reproduce`` runs exactly that code."""
    if spec.code.digest:
        return documents.CodeRef(digest=spec.code.digest.removeprefix("sha256:"), source="spec.code.digest")
    return documents.CodeRef(digest=IN_IMAGE, source="image-reference")
