"""TensorFlow set-up and a byte-reproducible model file format.

Keras' own `.keras` files are zips with wall-clock timestamps and a `date_saved` field,
so two identical trainings would produce different digests. The `model` outputs of
these stages are instead a deterministic zip (see common.zip_bytes) holding
  format.json       format name/version and the weight manifest (variable paths, shapes, dtypes)
  model.json        the architecture, model.to_json() re-serialised with sorted keys
  weights/NNNN.npy  model.get_weights() in order
and load_model() rebuilds the network from them. Only what inference needs is stored
(no optimizer state).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from common import StageError, canonical_json, npy_bytes, write_bytes, zip_bytes

if TYPE_CHECKING:
    import keras

FORMAT = "tycho-keras-weights"
FORMAT_VERSION = 1


def configure_tensorflow(seed: int, deterministic: bool = True) -> None:
    """Seed every RNG and make TensorFlow's kernels and threading deterministic.

    Must run before any TensorFlow op executes: thread pools cannot be resized later.
    With deterministic=False (used to measure what determinism costs) op determinism is
    left off, TF_DETERMINISTIC_OPS from the stage wrapper is dropped before TensorFlow
    reads it, and TensorFlow picks its own thread counts; runs are then seeded but may
    differ in the last bits.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not deterministic:
        os.environ.pop("TF_DETERMINISTIC_OPS", None)
    import tensorflow as tf

    if deterministic:
        # One inter-op thread fixes the order in which independent ops run; reductions
        # inside an op are made order-stable by op determinism.
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.experimental.enable_op_determinism()
    seed_everything(seed)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and the Keras/TensorFlow RNGs (weight init, dropout, shuffling)."""
    import keras

    keras.utils.set_random_seed(seed)


def model_bytes(model: keras.Model) -> bytes:
    """Serialise architecture and weights; equal models give equal bytes."""
    architecture = json.loads(model.to_json())
    weights = model.get_weights()
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "weights": [
            {"path": v.path, "shape": list(w.shape), "dtype": str(w.dtype)} for v, w in zip(model.weights, weights)
        ],
    }
    entries = [("format.json", canonical_json(manifest)), ("model.json", canonical_json(architecture))]
    entries += [(f"weights/{i:04d}.npy", npy_bytes(w)) for i, w in enumerate(weights)]
    return zip_bytes(entries)


def save_model(path: Path, model: keras.Model) -> None:
    write_bytes(path, model_bytes(model))


def load_model(path: Path) -> keras.Model:
    """Rebuild a model written by save_model (inference only: it is not compiled)."""
    import keras

    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("format.json"))
            if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
                raise StageError(
                    f"{path.name}: unsupported model format {manifest.get('format')!r} v{manifest.get('version')!r}"
                )
            architecture = zf.read("model.json").decode("utf-8")
            weights = [
                np.lib.format.read_array(io.BytesIO(zf.read(f"weights/{i:04d}.npy")), allow_pickle=False)
                for i in range(len(manifest["weights"]))
            ]
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise StageError(f"{path.name}: not a model written by model_io.save_model: {exc}") from exc
    model = keras.models.model_from_json(architecture)
    model.set_weights(weights)
    return model


def predict_logits(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits in fixed-size batches (batching is part of the numerics, so keep it constant)."""
    if len(x) == 0:
        return np.zeros((0, int(model.outputs[0].shape[-1])), dtype=np.float32)
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
