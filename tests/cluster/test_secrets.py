"""Stage code cannot reach the store's credentials or the signing key on a cluster: a
stage that searches every visible process environment and command line and the files a
container sees finds neither, while it does find the one Secret it declared (proof that
the search works). The harness runs the pod's containers as a kubelet would: each with
only its own environment, the user's in its own PID and mount namespace."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.cluster.space import Space
from tests.support.cluster import REPO, SECRET, SIGNING_SECRET
from tycho.provenance import store as store_mod

pytestmark = pytest.mark.cluster
CANARY = "canary-7f3a9c1e5b"


@pytest.mark.alone  # on a real node other pods' files are out of sight; here they are this machine's
def test_a_secret_hunting_stage_finds_no_store_credentials_and_no_signing_key(space: Space) -> None:
    s3 = space.cluster.s3
    pem = space.kube.secret(space.ns, SIGNING_SECRET)["signing.key"]
    body = next(line for line in pem.splitlines() if line and not line.startswith("-----"))
    needles = {"secret key": s3["AWS_SECRET_ACCESS_KEY"], "access key": s3["AWS_ACCESS_KEY_ID"], "signing key": body,
               "canary": CANARY}
    space.cluster.kubectl("-n", space.ns, "create", "secret", "generic", "canary", f"--from-literal=value={CANARY}")
    space.code_dir = REPO / "tests" / "cluster" / "secret_search"
    doc = space.toy("hunt")
    doc["spec"]["stages"] = [{
        "name": "search", "image": "tycho/stage-cpu:test", "command": ["python", "search.py"],
        "params": {"sha256": sorted(hashlib.sha256(v.encode()).hexdigest() for v in needles.values()),
                   "lengths": sorted({len(v) for v in needles.values()}), "repo": str(REPO)},
        "env": [{"name": "MY_CANARY", "valueFrom": {"secretKeyRef": {"name": "canary", "key": "value"}}}],
        "outputs": ["found.json"]}]
    space.apply(doc)
    job = space.wait_job("search")
    proc = space.execute(job)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = space.wait_phase("Succeeded", name="hunt", timeout=60)
    digest = status["stages"][0]["outputs"][0]["sha256"]
    report = json.loads(store_mod.Store(space.store).get_bytes(digest))
    named = {hashlib.sha256(v.encode()).hexdigest(): k for k, v in needles.items()}
    found = sorted(named.get(f, f) for f in report["found"])
    assert found == ["canary"], report  # its own Secret, and nothing else
    assert report["scanned"]["processes"] >= 1 and report["scanned"]["files"] > 50, report
    # The same credentials were in this pod: the fetch and publish containers used them.
    pod = job["spec"]["template"]["spec"]
    assert any(e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == SECRET
               for c in pod["initContainers"] for e in c["env"])
    assert CANARY not in proc.stdout  # masked if it were printed
