#!/usr/bin/env python3
"""Pin pipeline manifests to the images just built (called by images/build.sh --pin).

For every ExperimentPipeline manifest whose spec.code.path is the code directory baked
into the stage images:
  * each stage `image:` naming one of the built images (same last path component,
    e.g. stage-cpu) is rewritten to the built `repository@sha256:<digest>`, so the
    manifest also follows the images to the registry they were pushed to;
  * spec.code.digest is set to the code digest (tycho.provenance.code.digest), so the
    operator, which cannot read the source inside an image, keys the cache on the code.

Edits are line-based so comments and layout survive; the result is re-parsed and
checked. Manifests with other code directories are left alone (and listed).

Usage: pin.py --code-dir pipelines/digits --code-digest HEX
              [--image REPOSITORY@sha256:HEX ...] MANIFEST...
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

IMAGE_LINE = re.compile(r"^(?P<head>\s*(?:-\s+)?image:\s*)(?P<q>[\"']?)(?P<ref>[^\s\"'#]+)(?P=q)(?P<tail>\s*(?:#.*)?)$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def repository(ref: str) -> str:
    """`reg/repo:tag@sha256:x` -> `reg/repo` (a registry port is not a tag)."""
    ref = ref.split("@", 1)[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    return ref[:colon] if colon > slash else ref


def image_name(ref: str) -> str:
    """`reg:5000/org/stage-cpu:tag` -> `stage-cpu`: what a pinned image is matched by."""
    return repository(ref).rsplit("/", 1)[-1]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def set_code_digest(lines: list[str], digest: str) -> list[str]:
    """Set spec.code.digest, adding the key (or the code block) when missing."""
    spec = next((i for i, l in enumerate(lines) if re.match(r"^spec:\s*(#.*)?$", l)), None)
    if spec is None:
        raise ValueError("no top-level spec:")
    end = next((i for i in range(spec + 1, len(lines)) if lines[i].strip() and _indent(lines[i]) == 0), len(lines))
    body = [i for i in range(spec + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    if not body:
        raise ValueError("empty spec:")
    child = _indent(lines[body[0]])
    code = next((i for i in body if _indent(lines[i]) == child and re.match(r"^\s*code:\s*(#.*)?$", lines[i])), None)
    if code is None:
        return lines[:spec + 1] + [" " * child + "code:", " " * child * 2 + f"digest: {digest}"] + lines[spec + 1:]
    members = []
    for i in range(code + 1, end):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            continue
        if _indent(lines[i]) <= child:
            break
        members.append(i)
    if not members:
        return lines[:code + 1] + [" " * child * 2 + f"digest: {digest}"] + lines[code + 1:]
    member_indent = _indent(lines[members[0]])
    for i in members:
        if _indent(lines[i]) == member_indent and re.match(r"^\s*digest:", lines[i]):
            lines = list(lines)
            lines[i] = " " * member_indent + f"digest: {digest}"
            return lines
    last = members[-1]
    return lines[:last + 1] + [" " * member_indent + f"digest: {digest}"] + lines[last + 1:]


def pin_text(text: str, images: dict[str, str], code_digest: str) -> str:
    lines = text.split("\n")
    out = []
    for line in lines:
        m = IMAGE_LINE.match(line)
        if m and image_name(m["ref"]) in images:
            line = f"{m['head']}{m['q']}{images[image_name(m['ref'])]}{m['q']}{m['tail']}"
        out.append(line)
    return "\n".join(set_code_digest(out, code_digest))


def code_dir_of(manifest: Path) -> Path | None:
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if isinstance(d, dict)]
    pipelines = [d for d in docs if d.get("kind") == "ExperimentPipeline"]
    if len(pipelines) != 1:
        return None
    path = ((pipelines[0].get("spec") or {}).get("code") or {}).get("path")
    return (manifest.parent / path).resolve() if path else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code-dir", required=True, type=Path)
    ap.add_argument("--code-digest", required=True)
    ap.add_argument("--image", action="append", default=[], metavar="REPOSITORY@sha256:HEX")
    ap.add_argument("manifests", nargs="+", type=Path)
    args = ap.parse_args(argv)
    digest = args.code_digest.removeprefix("sha256:")
    if not HEX64.match(digest):
        ap.error(f"--code-digest: not a sha256 hex digest: {args.code_digest}")
    images: dict[str, str] = {}
    for item in args.image:
        if not re.match(r"^[^@\s]+@sha256:[0-9a-f]{64}$", item) or repository(item) != item.split("@")[0]:
            ap.error(f"--image {item}: expected REPOSITORY@sha256:<64 hex> (no tag)")
        images[image_name(item)] = item
    code_dir = args.code_dir.resolve()
    for manifest in args.manifests:
        if code_dir_of(manifest) != code_dir:
            print(f"pin: {manifest}: code is not {args.code_dir}; left alone", file=sys.stderr)
            continue
        text = manifest.read_text()
        pinned = pin_text(text, images, digest)
        doc = next(d for d in yaml.safe_load_all(pinned) if isinstance(d, dict) and d.get("kind") == "ExperimentPipeline")
        if doc["spec"]["code"].get("digest") != digest:
            raise SystemExit(f"pin: {manifest}: could not set spec.code.digest")
        for stage in doc["spec"].get("stages", []):
            name = image_name(str(stage.get("image", "")))
            if name in images and stage["image"] != images[name]:
                raise SystemExit(f"pin: {manifest}: could not pin stage {stage.get('name')}")
        if pinned != text:
            manifest.write_text(pinned)
        n = sum(image_name(str(s.get("image", ""))) in images for s in doc["spec"].get("stages", []))
        print(f"pin: {manifest}: code.digest={digest[:12]}..., {n} stage image(s) pinned", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
