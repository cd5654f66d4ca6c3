"""Stage `train`: a small seeded CNN on the train split, validated on the validation split.

Outputs `model` (model_io format) and `history` (per-epoch loss/accuracy as JSON); the
same curves go to TYCHO_METRICS with "step" = epoch so they can be plotted live. The
`tune` stage is a sweep whose every trial is this script with other params.

Param `deterministic` (default true) exists to measure the cost of determinism: with
false, op determinism and the fixed thread pools are skipped and the model is only
seeded, so its bytes may change between runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from common import Contract, StageError, append_metrics, read_npz, run_stage, write_json
from model_io import configure_tensorflow, save_model, seed_everything

if TYPE_CHECKING:
    import keras

CURVE_NAMES = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrainConfig:
    seed: int
    epochs: int
    batch_size: int
    learning_rate: float
    kernel_size: int
    filters: int

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "kernel_size", "filters"):
            if getattr(self, name) < 1:
                raise StageError(f"param {name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise StageError(f"param learning_rate must be > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class Splits:
    """The arrays of the `splits` input that training needs."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int

    @classmethod
    def load(cls, arrays: dict[str, np.ndarray]) -> Splits:
        try:
            splits = cls(
                x_train=arrays["x_train"],
                y_train=arrays["y_train"].astype(np.int64),
                x_val=arrays["x_val"],
                y_val=arrays["y_val"].astype(np.int64),
                n_classes=len(arrays["class_names"]),
            )
        except KeyError as exc:
            raise StageError(f"input splits lacks array {exc}") from exc
        if len(splits.y_train) == 0 or len(splits.y_val) == 0:
            raise StageError("input splits has an empty train or validation split")
        return splits


def build_model(input_shape: tuple[int, ...], n_classes: int, kernel_size: int, filters: int, seed: int) -> keras.Model:
    """Conv(f) -> Conv(2f) -> MaxPool -> Conv(4f) -> GlobalAvgPool -> Dropout -> Dense(10) logits.

    Layers are named explicitly: Keras' automatic names count models built earlier in the
    process, which would make the architecture JSON of a tuning trial depend on its index.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="image")
    h = layers.Conv2D(filters, kernel_size, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.Conv2D(2 * filters, kernel_size, padding="same", activation="relu", name="conv2")(h)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Conv2D(4 * filters, kernel_size, padding="same", activation="relu", name="conv3")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    h = layers.Dropout(0.2, seed=seed, name="dropout")(h)
    logits = layers.Dense(n_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="digits_cnn")


def fit(
    config: TrainConfig,
    splits: Splits,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[keras.Model, list[dict[str, float]]]:
    """Seed, build, compile and train a fresh model; returns it with its per-epoch curves."""
    import keras

    config.validate()
    keras.backend.clear_session()
    seed_everything(config.seed)
    model = build_model(
        tuple(splits.x_train.shape[1:]), splits.n_classes, config.kernel_size, config.filters, config.seed
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    curves: list[dict[str, float]] = []

    def record(epoch: int, logs: dict[str, Any] | None) -> None:
        row = {name: float((logs or {})[name]) for name in CURVE_NAMES}
        curves.append(row)
        if on_epoch is not None:
            on_epoch(epoch + 1, row)

    model.fit(
        splits.x_train,
        splits.y_train,
        validation_data=(splits.x_val, splits.y_val),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=record)],
    )
    return model, curves


def read_config(contract: Contract) -> TrainConfig:
    return TrainConfig(
        seed=contract.param("seed", 7),
        epochs=contract.param("epochs", 30),
        batch_size=contract.param("batch_size", 32),
        learning_rate=contract.param("learning_rate", 0.003),
        kernel_size=contract.param("kernel_size", 3),
        filters=contract.param("filters", 16),
    )


def main(contract: Contract) -> None:
    config = read_config(contract)
    config.validate()
    deterministic = contract.param("deterministic", True)
    configure_tensorflow(config.seed, deterministic)
    splits = Splits.load(read_npz(contract.input("splits")))

    started = time.perf_counter()
    model, curves = fit(config, splits, lambda epoch, row: append_metrics(contract, row, step=epoch))
    elapsed = time.perf_counter() - started

    save_model(contract.output("model"), model)
    final = curves[-1]
    write_json(
        contract.output("history"),
        {
            "params": asdict(config),
            "deterministic": deterministic,
            "epochs": [{"epoch": i + 1, **row} for i, row in enumerate(curves)],
            "final": final,
        },
    )
    append_metrics(
        contract,
        {**final, "best_val_accuracy": max(r["val_accuracy"] for r in curves), "parameters": model.count_params()},
    )
    # Wall time goes to the log, never to outputs or metrics: it differs on every run.
    print(f"train: {config.epochs} epochs in {elapsed:.1f}s, val_accuracy {final['val_accuracy']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
