"""What a run needs to know before its first step: where the code is and its identity,
and the digests of external inputs. I/O shared by the local runner, ``explain`` and the
operator (external digests).
"""

from __future__ import annotations

from pathlib import Path

from tycho.api import models
from tycho.provenance import code, documents, hashing, layout, store as store_mod


def code_root(pipeline: models.ExperimentPipeline, manifest_dir: Path) -> Path:
    """The stage code directory: spec.code.path relative to the manifest (default: its folder)."""
    root = (manifest_dir / (pipeline.spec.code.path or ".")).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"spec.code.path: {root} is not a directory (fix: point it at the stage code, "
                                "relative to the manifest)")
    return root


def store_code(store: store_mod.Store, root: Path) -> documents.CodeRef:
    """Store the code archive content-addressed; returns the code reference for records."""
    digest = store.put_bytes(code.archive(root))
    commit, dirty = code.git_commit(root) or (None, None)
    return documents.CodeRef(digest=digest, source="archive", archive=layout.object_rel(digest), commit=commit,
                        dirty=dirty)


def external_digests(pipeline: models.ExperimentPipeline) -> dict[str, str]:
    """Digest per external URL: the pinned sha256, or the data's hash when not pinned."""
    out: dict[str, str] = {}
    for stage in pipeline.spec.stages:
        for inp in stage.inputs:
            if inp.url and inp.url not in out:
                if inp.sha256:
                    out[inp.url] = inp.sha256.removeprefix("sha256:")
                else:
                    import fsspec  # only for unpinned URLs: keeps fsspec off the common path

                    with fsspec.open(inp.url, "rb", **store_mod.storage_options(inp.url)) as f:
                        out[inp.url] = hashing.sha256_stream(f)
    return out
