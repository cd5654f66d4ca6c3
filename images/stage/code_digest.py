"""Build-time check of the pipeline code baked into a stage image (run by images/stage/Dockerfile).

Computes the code digest of DIR exactly as the local runner does
(tycho.provenance.code.digest), fails when it differs from EXPECTED (the digest
images/build.sh computed from the source tree and will write into spec.code.digest),
and prints it.

Usage: python code_digest.py DIR [EXPECTED]
"""

import sys
from pathlib import Path

from tycho.provenance import code


def main() -> int:
    digest = code.digest(Path(sys.argv[1]))
    expected = (sys.argv[2] if len(sys.argv) > 2 else "").removeprefix("sha256:")
    if expected and expected != digest:
        print(f"code digest of {sys.argv[1]} is {digest}, expected {expected}: the build context "
              "differs from the source tree (see images/stage/Dockerfile.dockerignore)", file=sys.stderr)
        return 1
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
