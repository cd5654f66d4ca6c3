"""A throwaway workspace holding the toy pipeline, its external input and a local store."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from rich.console import Console

from tycho.api import models, overrides, validation
from tycho.executors import process
from tycho.provenance import documents
from tycho.runners import local, progress

TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy"


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(TOY, root, dirs_exist_ok=True)
        self.notes = root / "notes.txt"
        self.notes.write_text("hello\n")
        manifest = root / "toy.yaml"
        manifest.write_text(manifest.read_text().replace("NOTES_URL", f"file://{self.notes}"))
        self.manifest = manifest
        self.store_url = f"file://{root / 'store'}"
        self.output = io.StringIO()

    def pipeline(self, **changes: str) -> models.ExperimentPipeline:
        pipeline = validation.load_text(self.manifest.read_text())
        return overrides.apply(pipeline, [f"{k}={v}" for k, v in changes.items()]) if changes else pipeline

    def options(self, **kw: object) -> local.Options:
        return local.Options(store_url=self.store_url, manifest_dir=self.root, logs_dir=self.root / "logs",
                             view_dir=self.root / "runs", **kw)  # type: ignore[arg-type]

    def reporter(self) -> progress.Reporter:
        return progress.LineReporter(Console(file=self.output, width=200))

    def executor(self) -> process.ProcessExecutor:
        reporter = self.reporter()
        return process.ProcessExecutor(self.root / "work", self.root / "logs", reporter)

    def run(self, pipeline: models.ExperimentPipeline | None = None, **kw: object) -> documents.RunSummary:
        reporter = self.reporter()
        executor = process.ProcessExecutor(self.root / "work", self.root / "logs", reporter)
        return local.run(pipeline or self.pipeline(), self.options(**kw), reporter, executor).summary

    def object(self, digest: str) -> Path:
        return self.root / "store" / "objects" / "sha256" / digest
