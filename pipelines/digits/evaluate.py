"""Stage `evaluate`: run the evaluate.ipynb report with papermill on the test split.

This script computes the test logits of the baseline and tuned models (TensorFlow stays
out of the notebook kernel: its native log lines carry timestamps and process ids that
would end up in the report) and passes them to the notebook through a scratch
directory that is also the kernel's working directory. Only `bins` is injected as a
papermill parameter, so no path ever appears in the executed notebook.

The executed notebook is then cleaned of everything that differs between runs (papermill
timings and paths, nbclient's per-cell execution timestamps, the random id of the
injected-parameters cell) and of stderr streams (diagnostics such as first-run font
cache messages, forwarded to the stage log instead) and written with sorted keys. HTML
is rendered from the cleaned notebook.

Outputs: report_ipynb, report_html, confusion_matrix (PNG), reliability_diagram (PNG),
metrics (JSON written by the notebook, re-serialised canonically). The calibration record
goes to the notebook as it is, so the report shows the checks calibrate reported (e.g.
TY-TEMPERATURE-BOUND: a temperature at a bound of its search is no fit).

Model checks, reported with their codes (docs/checks.md) when they fire:
  TY-GENERALISATION-GAP  train accuracy above test accuracy by more than `gap_max`
  TY-CALIBRATION         calibration error after temperature scaling above `ece_max`
  TY-RECALL-FLOOR        a class whose test recall is under `recall_min`
Each fires at the severity of param `model_checks` (warn by default; fail, or off).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scoring
from common import (
    Contract,
    StageError,
    append_metrics,
    canonical_json,
    check_level,
    read_npz,
    report_check,
    run_stage,
    write_bytes,
    write_npz,
)
from model_io import configure_tensorflow, load_model, predict_logits

CODE_DIR = Path(__file__).resolve().parent
NOTEBOOK = CODE_DIR / "evaluate.ipynb"
KERNEL_NAME = "python3"
INPUTS_FILE = "evaluation_inputs.npz"
CALIBRATION_FILE = "calibration.json"  # the calibrate stage's record: its checks go into the report
FIGURES = {"confusion_matrix": "confusion_matrix.png", "reliability_diagram": "reliability_diagram.png"}
HEADLINE_METRICS = ("test_accuracy", "test_nll", "test_ece", "test_ece_uncalibrated", "baseline_test_accuracy")


def install_kernelspec(root: Path) -> None:
    """A `python3` kernelspec pinned to this interpreter, found first through JUPYTER_PATH.

    Without it papermill would use whichever `python3` kernelspec Jupyter finds, which
    may belong to another environment.
    """
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def kernel_environment(scratch: Path) -> None:
    """Environment the kernel inherits: our kernelspec, scoring.py importable, no user profile."""
    jupyter = scratch / "jupyter"
    install_kernelspec(jupyter)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(jupyter), os.environ.get("JUPYTER_PATH", "")) if p)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE_DIR), os.environ.get("PYTHONPATH", "")) if p)
    os.environ["IPYTHONDIR"] = str(scratch / "ipython")
    os.environ["MPLBACKEND"] = "Agg"


def clean_notebook(nb: Any, parameters: dict[str, Any]) -> list[str]:
    """Strip run-specific metadata in place; returns the stderr text that was removed."""
    nb.metadata.pop("papermill", None)
    nb.metadata["papermill"] = {"parameters": parameters}
    stderr: list[str] = []
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                stderr.append(output.get("text", ""))
            else:
                kept.append(output)
        cell.outputs = kept
    ids = [cell.get("id") for cell in nb.cells]
    if len(set(ids)) != len(ids):
        raise StageError(f"evaluate.ipynb has duplicate cell ids: {ids}")
    return stderr


def run_notebook(scratch: Path, bins: int) -> tuple[bytes, bytes]:
    """Execute, clean and render the report; returns (notebook JSON, HTML)."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    kernel_environment(scratch)
    executed = scratch / "executed.ipynb"
    parameters = {"bins": bins}
    try:
        papermill.execute_notebook(
            str(NOTEBOOK),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=str(scratch),
            progress_bar=False,
            log_output=False,
            execution_timeout=600,
        )
    except papermill.PapermillExecutionError as exc:
        raise StageError(f"evaluate.ipynb failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}") from exc

    nb = nbformat.read(str(executed), as_version=4)
    for text in clean_notebook(nb, parameters):
        sys.stderr.write(text)
    nbformat.validate(nb)
    notebook_json = nbformat.writes(nb).encode("utf-8") + b"\n"
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(
        nb, resources={"metadata": {"name": "Digits evaluation report"}}
    )
    return notebook_json, html.encode("utf-8")


def main(contract: Contract) -> None:
    bins = contract.param("bins", 10)
    if bins < 1:
        raise StageError(f"param bins must be >= 1, got {bins}")
    configure_tensorflow(seed=0)

    splits = read_npz(contract.input("splits"))
    calibration = json.loads(contract.input("calibration").read_text(encoding="utf-8"))
    temperature = calibration.get("temperature")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise StageError(f"input calibration has no positive temperature: {temperature!r}")
    x_test, y_test = splits["x_test"], splits["y_test"].astype(np.int64)
    if len(y_test) == 0:
        raise StageError("the test split is empty: nothing to evaluate")

    tuned = load_model(contract.input("tuned"))
    logits_tuned = predict_logits(tuned, x_test)
    with tempfile.TemporaryDirectory(prefix="tycho-evaluate-") as tmp:
        scratch = Path(tmp)
        write_npz(
            scratch / INPUTS_FILE,
            {
                "y_test": y_test,
                "class_names": splits["class_names"],
                "temperature": np.float64(temperature),
                "logits_baseline": predict_logits(load_model(contract.input("baseline")), x_test),
                "logits_tuned": logits_tuned,
            },
        )
        write_bytes(scratch / CALIBRATION_FILE, canonical_json(calibration))
        notebook_json, html = run_notebook(scratch, bins)
        metrics = json.loads((scratch / "metrics.json").read_text(encoding="utf-8"))
        for output, filename in FIGURES.items():
            write_bytes(contract.output(output), (scratch / filename).read_bytes())

    write_bytes(contract.output("report_ipynb"), notebook_json)
    write_bytes(contract.output("report_html"), html)
    write_bytes(contract.output("metrics"), canonical_json(metrics))
    append_metrics(contract, {name: metrics[name] for name in HEADLINE_METRICS})
    model_checks(contract, splits, tuned, logits_tuned, metrics)
    print(
        f"evaluate: test_accuracy {metrics['test_accuracy']:.4f}, test_ece {metrics['test_ece']:.4f}",
        file=sys.stderr,
    )


def model_checks(contract: Contract, splits: dict[str, np.ndarray], tuned: Any, logits_test: np.ndarray,
                 metrics: dict[str, Any]) -> None:
    """Generalisation gap, calibration error and per-class recall of the tuned model."""
    level = check_level(contract, "model_checks", "warn")
    y_test = splits["y_test"].astype(np.int64)
    train_accuracy = scoring.accuracy(predict_logits(tuned, splits["x_train"]), splits["y_train"].astype(np.int64))
    gap = train_accuracy - float(metrics["test_accuracy"])
    recall = scoring.recall_per_class(logits_test, y_test, len(splits["class_names"]))
    append_metrics(contract, {"train_accuracy": train_accuracy, "generalisation_gap": gap,
                              "min_class_recall": float(np.nanmin(recall))})
    if level == "off":
        return
    gap_max, ece_max, recall_min = (contract.param("gap_max", 0.05), contract.param("ece_max", 0.05),
                                    contract.param("recall_min", 0.9))
    if gap > gap_max:
        report_check("TY-GENERALISATION-GAP", level, f"train accuracy {train_accuracy:.4f} is above test accuracy "
                     f"{metrics['test_accuracy']:.4f} by {gap:.4f} (> gap_max {gap_max})",
                     {"train_accuracy": train_accuracy, "test_accuracy": metrics["test_accuracy"], "gap": gap})
    if metrics["test_ece"] > ece_max:
        report_check("TY-CALIBRATION", level, f"expected calibration error {metrics['test_ece']:.4f} after "
                     f"temperature scaling (before: {metrics['test_ece_uncalibrated']:.4f}) is above ece_max {ece_max}",
                     {"ece": metrics["test_ece"], "ece_uncalibrated": metrics["test_ece_uncalibrated"],
                      "temperature": metrics["temperature"]})
    names = [str(n) for n in splits["class_names"]]
    low = {names[i]: round(float(r), 6) for i, r in enumerate(recall) if not np.isnan(r) and r < recall_min}
    if low:
        report_check("TY-RECALL-FLOOR", level, f"{len(low)} class(es) under recall_min {recall_min} on the test "
                     "split: " + ", ".join(f"{k} ({v:.3f})" for k, v in low.items()), {"recall": low})


if __name__ == "__main__":
    run_stage(main)
