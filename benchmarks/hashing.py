"""Hashing throughput of the store vs. `sha256sum` on the same file (default 1 GiB).

Prints MiB/s for tycho's streaming sha256 (what every put/verify pays) and for the
coreutils tool, and their ratio. Usage: python benchmarks/hashing.py [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from tycho.provenance import hashing, store as store_mod  # noqa: E402


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob"
        chunk = os.urandom(1 << 20)
        with open(path, "wb") as f:
            for _ in range(args.size_mib):
                f.write(chunk)
        ours = hashing.sha256_file(path)
        theirs = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
        assert ours == theirs, "digests differ"
        t_ours = best_of(args.repeat, lambda: hashing.sha256_file(path))
        t_tool = best_of(args.repeat, lambda: subprocess.run(["sha256sum", str(path)], capture_output=True, check=True))
        store = store_mod.Store(f"file://{tmp}/store")
        t_put = best_of(1, lambda: store.put_file(path))
        t_verify = best_of(1, lambda: store.verify(ours))
    size = args.size_mib
    print(f"file size                 {size} MiB")
    print(f"tycho sha256_file         {size / t_ours:8.1f} MiB/s ({t_ours:.2f}s)")
    print(f"sha256sum                 {size / t_tool:8.1f} MiB/s ({t_tool:.2f}s)")
    print(f"ratio tycho/sha256sum     {t_tool / t_ours:8.2f}  (1.00 = same speed)")
    print(f"store.put_file (hash+copy){size / t_put:8.1f} MiB/s ({t_put:.2f}s)")
    print(f"store.verify (re-hash)    {size / t_verify:8.1f} MiB/s ({t_verify:.2f}s)")


if __name__ == "__main__":
    main()
