"""Batch denoising that goes on past a bad input, then says what failed.

A night's run over thousands of volumes must not stop at one bad file. The bundle's inference
(``configs/inference.json``) and :func:`c2s_monai.api.denoise_files` (``c2s-monai denoise``)
process each input on its own:

- loading and checking: :class:`GuardLoad` wraps the preprocessing so that a failure becomes a
  record instead of an exception, :func:`collate_with_failures` batches the good items and
  keeps the records beside them, and :class:`SkipFailures` (around the ``DataLoader``) takes the
  records out of the stream: the evaluator only sees inputs that loaded;
- denoising and writing: :class:`GuardIteration`, the evaluator's ``iteration_update``, records a
  failure of one input and lets the evaluator go on with the next;
- :class:`BatchSummary` keeps the outcome of every input, writes ``summary.json`` when the run
  ends, and :meth:`BatchSummary.check` then raises :class:`BatchFailedError` if any input failed
  (:meth:`BatchSummary.exit_on_failure`: exits with status 1), so that the command exits non-zero.

Nothing is written for a failed input: outputs are written atomically and reports only for
written outputs. The summary is written at the end of a run; a run that is itself killed
leaves none.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ignite.engine import Engine, Events
from monai.data import list_data_collate
from monai.transforms import Transform

from c2s_monai.errors import root_cause
from c2s_monai.io import write_text_atomic

__all__ = ["BatchFailedError", "BatchSummary", "GuardIteration", "GuardLoad", "SkipFailures", "collate_with_failures"]

logger = logging.getLogger(__name__)

FAILURE_KEY = "c2s_failure"


class BatchFailedError(RuntimeError):
    """Some inputs of a batch run failed; the message says how many and where the summary is."""


def failure_record(source, stage: str, error: BaseException) -> dict:
    error = root_cause(error)
    return {"input": str(source), "stage": stage, "error": type(error).__name__, "message": str(error)}


def _items(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class BatchSummary:
    """The outcome of every input of a batch run, written to a JSON file at the end.

    Attach to the evaluator (a MONAI ``handlers`` entry): after every iteration it records the
    inputs denoised (their ``source_key`` in the batch, their ``output_key`` in the output), and
    when the run completes it writes ``output_file``:

    ``{"inputs": N, "denoised": n, "failed": m, "not_processed": k, "results": [...]}`` with one
    result per input in input order: ``{"input", "status": "denoised", "output"}`` or
    ``{"input", "status": "failed", "stage": "load" | "denoise", "error", "message"}``.

    Args:
        output_file: the JSON file (``None``: kept in memory only).
        inputs: every input of the run, in order.
        source_key: batch key of an item's input path.
        output_key: output key of the written file's path (:class:`c2s_monai.io.writers.SaveDenoisedd`).
    """

    def __init__(self, output_file=None, inputs: Iterable = (), source_key: str = "source", output_key: str = "output_path") -> None:
        self.output_file = Path(output_file) if output_file else None
        self.inputs = [str(i) for i in inputs]
        self.source_key = source_key
        self.output_key = output_key
        self.results: dict[str, dict] = {}
        self.started = time.time()

    def denoised(self, source, output) -> None:
        self.results[str(source)] = {"input": str(source), "status": "denoised", "output": str(output) if output else None}

    def failed(self, source, stage: str, error: BaseException) -> None:
        self.record(failure_record(source, stage, error))

    def record(self, failure: Mapping) -> None:
        """Keep a failure record (as :func:`failure_record` makes) and log it."""
        self.results[str(failure["input"])] = {**failure, "status": "failed"}
        logger.error("%s failed (%s): %s", failure["input"], failure["stage"], failure["message"])

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.results.values() if r["status"] == "failed"]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.COMPLETED, lambda _: self.write())

    def _iteration_completed(self, engine: Engine) -> None:
        for item, output in zip(_items(engine.state.batch), _items(engine.state.output), strict=False):
            if isinstance(item, Mapping) and self.source_key in item:
                self.denoised(item[self.source_key], output.get(self.output_key) if isinstance(output, Mapping) else None)

    def as_dict(self) -> dict:
        order = self.inputs + [s for s in self.results if s not in self.inputs]
        results = [self.results.get(s, {"input": s, "status": "not processed"}) for s in order]
        count = {status: sum(r["status"] == status for r in results) for status in ("denoised", "failed", "not processed")}
        return {
            "inputs": len(results),
            "denoised": count["denoised"],
            "failed": count["failed"],
            "not_processed": count["not processed"],
            "seconds": round(time.time() - self.started, 1),
            "results": results,
        }

    def write(self) -> Path | None:
        """Write the summary (atomically) to ``output_file``; return its path."""
        summary = self.as_dict()
        logger.info("%d of %d inputs denoised, %d failed", summary["denoised"], summary["inputs"], summary["failed"])
        if self.output_file is None:
            return None
        return write_text_atomic(self.output_file, json.dumps(summary, indent=2))

    def check(self) -> None:
        """Raise :class:`BatchFailedError` if any input failed (the command then exits non-zero)."""
        failures = self.failures
        if failures:
            where = f" (every failure is listed in {self.output_file})" if self.output_file else ""
            first = "".join(f"\n  - {f['message']}" for f in failures[:3]) + ("\n  - ..." if len(failures) > 3 else "")
            raise BatchFailedError(f"{len(failures)} of {len(self.as_dict()['results'])} inputs failed{where}:{first}")

    def exit_on_failure(self) -> None:
        """End the process with exit status 1 and the :meth:`check` message if any input failed.

        For command-line runs (``python -m monai.bundle run``): a ``SystemExit`` passes MONAI's
        config-expression wrapping, so the last line printed is this message, not a traceback.
        """
        try:
            self.check()
        except BatchFailedError as error:
            raise SystemExit(f"error: {error}") from None


class GuardLoad(Transform):
    """Apply ``transform`` to a datalist item; if it raises, return a failure record instead.

    The record (``{FAILURE_KEY: {"input", "stage": "load", "error", "message"}}``) travels through
    the ``DataLoader`` (also from worker processes) to :class:`SkipFailures`.

    Args:
        transform: the preprocessing (loading and checks).
        source_key: key of the item's input path.
    """

    def __init__(self, transform: Callable, source_key: str = "source") -> None:
        self.transform = transform
        self.source_key = source_key

    def __call__(self, data: Mapping):
        try:
            return self.transform(data)
        except Exception as error:  # noqa: BLE001 (any failure of one input is that input's, not the run's)
            return {FAILURE_KEY: failure_record(data.get(self.source_key), "load", error)}


def collate_with_failures(items: list) -> dict:
    """``list_data_collate`` of the items that loaded, with the failure records under ``FAILURE_KEY``."""
    good = [item for item in items if FAILURE_KEY not in item]
    batch = list_data_collate(good) if good else {}
    batch[FAILURE_KEY] = [item[FAILURE_KEY] for item in items if FAILURE_KEY in item]
    return batch


class SkipFailures:
    """Iterate over ``loader``, handing its failure records to ``summary`` and yielding only good batches.

    Not a sized ``DataLoader``: MONAI's workflows then run one epoch until the data end, however
    many inputs failed.
    """

    def __init__(self, loader: Iterable, summary: BatchSummary) -> None:
        self.loader = loader
        self.summary = summary

    def __iter__(self):
        for batch in self.loader:
            for failure in batch.pop(FAILURE_KEY, []):
                self.summary.record(failure)
            if batch:
                yield batch


class GuardIteration:
    """A MONAI evaluator's ``iteration_update`` that records a failing input and goes on.

    Runs the evaluator's own iteration (inference, then the postprocessing that writes the
    output); if it raises, the batch's inputs are recorded as failed in ``summary`` and the
    iteration ends with an empty output, which the report handlers skip.

    Args:
        summary: where failures are recorded.
        source_key: batch key of the inputs' paths.
        skip_failures: ``False`` records the failure and raises it again: for evaluators with
            ignite metrics (PSNR, SSIM), which cannot take an empty output.
    """

    def __init__(self, summary: BatchSummary, source_key: str = "source", skip_failures: bool = True) -> None:
        self.summary = summary
        self.source_key = source_key
        self.skip_failures = skip_failures

    def __call__(self, engine: Engine, batchdata: dict):
        try:
            return engine._iteration(engine, batchdata)  # type: ignore[attr-defined]  # a MONAI Workflow's own iteration
        except Exception as error:  # one input's failure (noise estimation, memory, writing) is not the run's
            for source in _items(batchdata.get(self.source_key)):
                self.summary.failed(source, "denoise", error)
            if not self.skip_failures:
                self.summary.write()
                raise
            engine.state.batch = []  # type: ignore[assignment]  # ignite annotates State.batch as int | None; it holds the batch
            return []
