"""Records are write-once on S3 too, without a check-then-put race: a conditional PUT
(``If-None-Match: *``) lets exactly one of several writers create a record, against the
real MinIO of the test cluster. Two retried pods of one stage publishing at once both end
with the one record that won, signed once, and it verifies."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import uuid
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tycho.provenance import audit, layout, signing, slsa, store as store_mod
from tycho.stage import fetch as fetch_mod, publish as publish_mod, supervise, work as work_mod
from tycho.stage.invocation import Invocation

pytestmark = pytest.mark.cluster


@pytest.fixture
def store(cluster: Cluster) -> store_mod.Store:
    return store_mod.Store(f"s3://{cluster.s3['TYCHO_S3_BUCKET']}/race-{uuid.uuid4().hex[:8]}")


def test_of_writers_racing_to_create_a_record_exactly_one_wins(store: store_mod.Store) -> None:
    writers = 8
    start = threading.Barrier(writers)

    def write(i: int) -> bytes | None:
        start.wait()
        try:
            store.write_bytes_once("records/r1/train.json", f"writer {i}\n".encode())
        except store_mod.WriteOnceViolation:
            return None
        return f"writer {i}\n".encode()

    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        won = [w for w in pool.map(write, range(writers)) if w is not None]
    assert len(won) == 1 and store.read_bytes("records/r1/train.json") == won[0]


def _invocation(store: str, code: Path) -> Invocation:
    script = "import os; open(os.path.join(os.environ['TYCHO_OUTPUTS'], 'model'), 'w').write('weights')"
    return Invocation.model_validate({
        "pipeline": {"name": "p", "uid": "0", "generation": 1},
        "run_id": "r1", "stage": "train", "invocation_id": "job-uid", "store": store,
        "image": {"reference": "img"}, "command": ["python", "-c", script], "outputs": [{"name": "model"}],
        "code": {"digest": "0" * 64, "archive": layout.object_rel("0" * 64)}, "workdir": str(code),
        "cache_key": "1" * 64})


def test_two_attempts_publishing_at_once_end_with_one_signed_record(store: store_mod.Store, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    key = signing.ensure_key(tmp_path / "signing.key")
    monkeypatch.setenv(signing.KEY_ENV, str(key))
    (tmp_path / "code").mkdir()
    inv = _invocation(store.url, tmp_path / "code")
    works = []
    for attempt in (1, 2):  # two pods of one execution ran; both reach publish
        work = work_mod.Work(tmp_path / f"pod{attempt}")
        fetch_mod.fetch(inv, store, work)
        assert supervise.run(inv, work, lambda line: None)
        works.append(work)
    start = threading.Barrier(2)

    def publish(work: work_mod.Work) -> str:
        start.wait()
        return publish_mod.publish(inv, store, work, lambda line: None).record

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        records = list(pool.map(publish, works))
    assert records == [layout.record_rel("r1", "train", None)] * 2
    assert store.list("records/r1") == ["train.json"]
    data = store.read_bytes(records[0])  # the winner's record, and a signature over exactly its bytes
    assert audit.check_signature(store, records[0], data, slsa.parse(json.loads(data)), audit.file_keys([key])) == []
