"""Cache keys: stable across processes and key order, changed by any one component."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tycho.api import models
from tycho.planning import cachekey


def stage(**over: object) -> models.Stage:
    base: dict[str, object] = {"name": "train", "image": "img:1", "command": ["python", "train.py"],
                               "params": {"epochs": 3, "lr": 0.1}, "outputs": ["model"],
                               "env": [{"name": "MODE", "value": "fast"},
                                       {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    base.update(over)
    return models.Stage.model_validate(base)


def key_of(s: models.Stage, image: str = "img:1", code: str = "c0", inputs: dict[str, str] | None = None) -> str:
    return cachekey.key(cachekey.components(s, cachekey.image_part(reference=image), code, inputs or {"data": "d0"}))


def test_key_is_the_same_in_another_process() -> None:
    here = key_of(stage())
    script = ("import sys; sys.path.insert(0, 'operator');"
              "from tests.unit.planning.test_cachekey import key_of, stage; print(key_of(stage()))")
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert here == there


def test_key_ignores_mapping_order() -> None:
    a = stage(params={"epochs": 3, "lr": 0.1})
    b = stage(params={"lr": 0.1, "epochs": 3})
    assert key_of(a) == key_of(b)
    assert key_of(a, inputs={"x": "1", "y": "2"}) == key_of(a, inputs={"y": "2", "x": "1"})


@pytest.mark.parametrize("change", [
    lambda: key_of(stage(params={"epochs": 4, "lr": 0.1})),
    lambda: key_of(stage(params={"epochs": 3, "lr": 0.1, "extra": True})),
    lambda: key_of(stage(command=["python", "train2.py"])),
    lambda: key_of(stage(args=["--fast"])),
    lambda: key_of(stage(env=[{"name": "MODE", "value": "slow"}])),
    lambda: key_of(stage(cache={"version": "2"})),
    lambda: key_of(stage(outputs=["model", "history"])),
    lambda: key_of(stage(outputs=[{"name": "model", "type": "directory"}])),
    lambda: key_of(stage(), image="img:2"),
    lambda: key_of(stage(), code="c1"),
    lambda: key_of(stage(), inputs={"data": "d1"}),
], ids=["param", "new-param", "command", "args", "env", "cache-version", "outputs", "output-type", "image", "code",
         "input-data"])
def test_any_one_component_changes_the_key(change) -> None:  # type: ignore[no-untyped-def]
    assert change() != key_of(stage())


def test_secret_env_values_never_enter_the_key() -> None:
    parts = cachekey.components(stage(), cachekey.image_part(reference="img:1"), "c0", {})
    assert parts["env"] == {"MODE": "fast"}


def test_int_and_float_params_are_distinct() -> None:
    assert key_of(stage(params={"epochs": 3, "lr": 1})) != key_of(stage(params={"epochs": 3, "lr": 1.0}))


def test_changed_names_each_difference() -> None:
    old = cachekey.components(stage(), cachekey.image_part(reference="img:1"), "c0", {"data": "d0"})
    new = cachekey.components(stage(params={"epochs": 5, "lr": 0.1}), cachekey.image_part(reference="img:2"), "c0",
                              {"data": "d0"})
    assert cachekey.changed(old, new) == ["image.reference: img:1 -> img:2", "params.epochs: 3 -> 5"]


def test_a_known_image_digest_is_the_image_whatever_its_name() -> None:
    digest = "sha256:" + "e" * 64
    by_tag = cachekey.image_part(reference="reg/stage:1", digest=digest)
    by_other_name = cachekey.image_part(reference="mirror.local/stage@" + digest, digest="e" * 64)
    assert by_tag == by_other_name == {"digest": "e" * 64}
    local = cachekey.image_part(reference="reg/stage:1", environment={"python": "3.11.7"})
    assert local == {"reference": "reg/stage:1", "environment": {"python": "3.11.7"}}
