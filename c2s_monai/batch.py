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

Reruns and cohorts:

- :class:`CompletedOutputs`, given to :class:`GuardLoad`, finds the inputs whose complete
  output already exists (where the run's ``SaveDenoisedd`` would write it): they are not read
  again but recorded as ``skipped`` (and logged), so running a killed command again only
  denoises what is left (the bundle's ``skip_existing``);
- under ``torchrun`` (``configs/multi_gpu_inference.json``) each process denoises its share of
  the inputs (:class:`RankShare`, a ``DataLoader`` sampler) and :class:`BatchSummary` with
  ``gather=True`` merges the records of every process (:func:`merge_summaries`) into one
  ``summary.json``, written by rank 0.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.data import list_data_collate
from monai.engines.utils import PrepareBatch, default_prepare_batch
from monai.transforms import Transform
from torch.utils.data import Sampler

from c2s_monai.errors import root_cause
from c2s_monai.io import write_text_atomic
from c2s_monai.naming import DENOISED_POSTFIX, NIFTI_OUTPUT_SUFFIX, input_kind, output_path
from c2s_monai.noise_level import map_file
from c2s_monai.settings import parse_flag

__all__ = [
    "BatchFailedError",
    "BatchSummary",
    "CompletedOutputs",
    "GuardIteration",
    "GuardLoad",
    "RankShare",
    "SkipFailures",
    "collate_with_failures",
    "merge_summaries",
]

logger = logging.getLogger(__name__)

FAILURE_KEY = "c2s_failure"
SKIPPED_KEY = "c2s_skipped"
STATUSES = ("denoised", "skipped", "failed", "not processed")
# the file names write_dicom_series gives a series' slices: IM_0001.dcm, IM_0002.dcm, ...
DICOM_SLICE_NAME = re.compile(r"IM_(\d{4,})\.dcm")


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

    ``{"inputs": N, "denoised": n, "skipped": s, "failed": m, "not_processed": k, "seconds": t,
    "results": [...]}`` with one result per input in input order:
    ``{"input", "status": "denoised", "output"}`` (with ``"overwritten": true`` where an earlier
    output was replaced), ``{"input", "status": "skipped", "output"}``
    (its complete output existed: :class:`CompletedOutputs`) or
    ``{"input", "status": "failed", "stage": "load" | "denoise", "error", "message"}``
    (``"not processed"``: the run never reached it).

    Args:
        output_file: the JSON file (``None``: kept in memory only).
        inputs: every input of the run, in order.
        source_key: batch key of an item's input path.
        output_key: output key of the written file's path (:class:`c2s_monai.io.writers.SaveDenoisedd`).
        gather: under ``torch.distributed`` (``torchrun``) with several processes, each
            denoising its share of ``inputs``: when the run completes every process hands its
            records to every other (``all_gather_object``), rank 0 alone logs and writes the
            merged summary (:func:`merge_summaries`), :meth:`check` judges the merged result on
            every rank and :meth:`exit_on_failure` on rank 0. Every process must complete its
            run (taking in the records is a collective operation).
        absolute_paths: record inputs and outputs as absolute paths, as the per-file JSON
            reports hold them (:func:`c2s_monai.api.denoise_files` does); otherwise as given.
    """

    def __init__(
        self,
        output_file=None,
        inputs: Iterable = (),
        source_key: str = "source",
        output_key: str = "output_path",
        gather: bool = False,
        absolute_paths: bool = False,
    ) -> None:
        self.output_file = Path(output_file) if output_file else None
        self.absolute_paths = parse_flag(absolute_paths, "absolute_paths")
        self.inputs = [self._path(i) for i in inputs]
        self.source_key = source_key
        self.output_key = output_key
        self.gather = parse_flag(gather, "gather")
        self.rank = 0
        self.results: dict[str, dict] = {}
        self.started = time.time()

    def _path(self, path) -> str:
        """``path`` as recorded: absolute (symbolic links resolved, as in the per-file reports) with ``absolute_paths``."""
        return str(Path(str(path)).resolve()) if self.absolute_paths and path else str(path)

    def denoised(self, source, output, overwritten: bool = False) -> None:
        """Record an input denoised into ``output``; ``overwritten``: an earlier output there was replaced."""
        source = self._path(source)
        self.results[source] = {"input": source, "status": "denoised", "output": self._path(output) if output else None}
        if overwritten:
            self.results[source]["overwritten"] = True

    def skipped(self, source, output) -> None:
        """Record (and log) an input not denoised again because its complete ``output`` exists."""
        source = self._path(source)
        self.results[source] = {"input": source, "status": "skipped", "output": self._path(output)}
        logger.info("%s: skipped, its complete output exists: %s (skip_existing false denoises it again)", source, output)

    def failed(self, source, stage: str, error: BaseException) -> None:
        self.record(failure_record(source, stage, error))

    def record(self, failure: Mapping) -> None:
        """Keep a failure record (as :func:`failure_record` makes) and log it."""
        source = self._path(failure["input"])
        self.results[source] = {**failure, "input": source, "status": "failed"}
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
        count = {status: sum(r["status"] == status for r in results) for status in STATUSES}
        return {
            "inputs": len(results),
            "denoised": count["denoised"],
            "skipped": count["skipped"],
            "failed": count["failed"],
            "not_processed": count["not processed"],
            "seconds": round(time.time() - self.started, 1),
            "results": results,
        }

    def gather_ranks(self) -> None:
        """With ``gather`` under ``torch.distributed``: take in the records of every process (all of them call this)."""
        if not (self.gather and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, self.as_dict())
        merged = merge_summaries(parts, inputs=self.inputs)
        self.results, self.started, self.rank = merged.results, merged.started, dist.get_rank()

    def write(self) -> Path | None:
        """Write the summary (atomically) to ``output_file``; return its path (``None`` on ranks other than 0 with ``gather``)."""
        self.gather_ranks()
        if self.rank > 0:
            return None
        summary = self.as_dict()
        skipped = f", {summary['skipped']} skipped (their complete outputs exist)" if summary["skipped"] else ""
        logger.info("%d of %d inputs denoised%s, %d failed", summary["denoised"], summary["inputs"], skipped, summary["failed"])
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
        With ``gather`` (``torchrun``) rank 0 alone does this, for the merged result (the one
        ``summary.json`` it wrote), and the other ranks return: their exit status 0 does not
        make ``torchrun`` stop rank 0 before it has printed the message, and ``torchrun``
        exits with rank 0's status 1.
        """
        if self.rank > 0:
            return
        try:
            self.check()
        except BatchFailedError as error:
            raise SystemExit(f"error: {error}") from None


def _summary_parts(parts: Iterable[Mapping | str | os.PathLike]) -> list[Mapping]:
    loaded = []
    for part in parts:
        if isinstance(part, Mapping):
            loaded.append(part)
        else:
            try:
                loaded.append(json.loads(Path(part).read_text()))
            except (OSError, ValueError) as error:
                raise ValueError(f"{part}: not a readable summary.json ({type(error).__name__}: {error}).") from error
    return loaded


def merge_summaries(parts: Iterable[Mapping | str | os.PathLike], output_file=None, inputs: Iterable | None = None) -> BatchSummary:
    """One :class:`BatchSummary` from several: the processes of a ``torchrun`` job, or jobs that each ran a share.

    ``parts`` are summaries as :meth:`BatchSummary.as_dict` gives them or ``summary.json`` files.
    An input takes its result from the part that processed it (``"not processed"`` in one part
    never hides a result of another; of two results the later part's wins, e.g. a share run
    again); it is ``"not processed"`` if no part processed it. Results follow ``inputs`` (every
    input of the job, in order), then the other inputs in the order the parts list them.
    ``seconds`` is the longest part's. The merged summary has the single-run schema, is
    written to ``output_file`` if given, and its :meth:`~BatchSummary.check` judges all parts.

    >>> a = {"seconds": 2.0, "results": [{"input": "a", "status": "denoised", "output": "a_d"}, {"input": "b", "status": "not processed"}]}
    >>> b = {"seconds": 3.0, "results": [{"input": "b", "status": "skipped", "output": "b_d"}]}
    >>> merged = merge_summaries([a, b], inputs=["b", "a", "c"]).as_dict()
    >>> [(r["input"], r["status"]) for r in merged["results"]], merged["seconds"], merged["not_processed"]
    ([('b', 'skipped'), ('a', 'denoised'), ('c', 'not processed')], 3.0, 1)
    """
    loaded = _summary_parts(parts)
    results: dict[str, dict] = {}
    listed: list[str] = []
    for part in loaded:
        for result in part.get("results", []):
            source = str(result["input"])
            listed.append(source)
            if result.get("status") != "not processed":
                results[source] = dict(result)
    summary = BatchSummary(output_file, inputs=inputs if inputs is not None else dict.fromkeys(listed))
    known = set(summary.inputs)
    summary.inputs += [s for s in dict.fromkeys(listed) if s not in known]
    summary.results = results
    summary.started = time.time() - max((float(part.get("seconds") or 0) for part in loaded), default=0.0)
    if summary.output_file is not None:
        summary.write()
    return summary


class RankShare(Sampler[int]):
    """This process's share of a dataset under ``torch.distributed``: every ``num_replicas``-th index from ``rank``.

    A ``DataLoader`` sampler (``configs/multi_gpu_inference.json``): the shares of all ranks
    hold every index once, none repeated to make them even: what
    ``monai.data.partition_dataset(..., shuffle=False, even_divisible=False)[rank]`` and MONAI's
    ``DistributedSampler(shuffle=False, even_divisible=False)`` give, also when there are fewer
    items than processes (the extra ranks get none, where those two refuse to split).
    Without an initialised process group: every index.

    >>> [list(RankShare(range(5), rank=r, num_replicas=2)) for r in (0, 1)]
    [[0, 2, 4], [1, 3]]
    >>> list(RankShare(range(1), rank=2, num_replicas=3))
    []
    """

    def __init__(self, dataset: Sized, rank: int | None = None, num_replicas: int | None = None) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas if num_replicas is not None else dist.get_world_size() if distributed else 1
        self.rank = rank if rank is not None else dist.get_rank() if distributed else 0
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} is not one of the {self.num_replicas} processes.")
        self.indices = range(self.rank, len(dataset), self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class CompletedOutputs:
    """Which inputs a rerun skips: those whose complete output already exists.

    The output is where ``writer`` (the run's :class:`c2s_monai.io.writers.SaveDenoisedd`, so
    the very settings it writes with: ``output_dir``, ``output_postfix``, ``dicom_output``,
    ``subfolder_key``) writes an item's output, by :func:`c2s_monai.naming.output_path`:
    ``<output_dir>/[<subfolder>/]<name>_<postfix>.nii.gz``, or the folder
    ``<output_dir>/[<subfolder>/]<series>_<postfix>`` for a DICOM series written as DICOM.
    Outputs appear whole or not at all (a NIfTI file is renamed into place when written, a
    DICOM series folder when every slice is), so an existing NIfTI file is complete; a series
    folder counts as complete when it holds the slices ``IM_0001.dcm`` ... ``IM_<n>.dcm``
    without a gap and nothing else (what the writer leaves).

    Calling it with a datalist item gives the complete output's path, or ``None`` (none yet,
    or ``enabled`` is false: the bundle's ``skip_existing false`` denoises everything again).

    Args:
        writer: the ``SaveDenoisedd`` of the run's postprocessing.
        enabled: ``False`` never skips (a string as typed on a command line is read as a flag).
        source_key: key of an item's input path (what the writer's reference image was loaded from).
    """

    def __init__(self, writer: Any, enabled: Any = True, source_key: str = "source") -> None:
        self.writer = writer
        self.enabled = parse_flag(enabled, "skip_existing")
        self.source_key = source_key

    def output(self, item: Mapping) -> tuple[Path, bool]:
        """The path ``writer`` writes ``item``'s output to, and whether it is a DICOM series folder."""
        source = Path(str(item[self.source_key]))
        subfolder_key = getattr(self.writer, "subfolder_key", None)
        subfolder = str(item.get(subfolder_key) or "") if subfolder_key else ""
        folder = input_kind(source) == "dicom" and bool(getattr(self.writer, "dicom_output", False))
        target = output_path(
            source,
            getattr(self.writer, "output_dir", None) or None,
            getattr(self.writer, "output_postfix", DENOISED_POSTFIX),
            "" if folder else NIFTI_OUTPUT_SUFFIX,
            subfolder,
        )
        return target, folder

    def __call__(self, item: Mapping) -> Path | None:
        if not self.enabled or not item.get(self.source_key):
            return None
        target, folder = self.output(item)
        complete = complete_series_folder(target) if folder else target.is_file()
        return target if complete else None


def complete_series_folder(folder: Path) -> bool:
    """A folder holding ``IM_0001.dcm`` ... ``IM_<n>.dcm`` (n >= 1) and nothing else: a series the writer finished."""
    if not folder.is_dir():
        return False
    names = [p.name for p in folder.iterdir()]
    numbers = sorted(int(m.group(1)) for m in map(DICOM_SLICE_NAME.fullmatch, names) if m)
    return bool(numbers) and len(numbers) == len(names) and numbers == list(range(1, len(numbers) + 1))


class GuardLoad(Transform):
    """Apply ``transform`` to a datalist item; if it raises, return a failure record instead.

    The record (``{FAILURE_KEY: {"input", "stage": "load", "error", "message"}}``) travels through
    the ``DataLoader`` (also from worker processes) to :class:`SkipFailures`.

    Args:
        transform: the preprocessing (loading and checks).
        source_key: key of the item's input path.
        skip: a :class:`CompletedOutputs`: an item whose complete output exists is not loaded
            but becomes ``{SKIPPED_KEY: {"input", "output"}}``, which :class:`SkipFailures`
            records as skipped. ``None``: every item is loaded.
    """

    def __init__(self, transform: Callable, source_key: str = "source", skip: Callable[[Mapping], Path | None] | None = None) -> None:
        self.transform = transform
        self.source_key = source_key
        self.skip = skip

    def __call__(self, data: Mapping):
        try:
            done = self.skip(data) if self.skip is not None else None
            if done is not None:
                return {SKIPPED_KEY: {"input": str(data.get(self.source_key)), "output": str(done)}}
            return self.transform(data)
        except Exception as error:  # noqa: BLE001 (any failure of one input is that input's, not the run's)
            return {FAILURE_KEY: failure_record(data.get(self.source_key), "load", error)}


def collate_with_failures(items: list) -> dict:
    """``list_data_collate`` of the items that loaded, with the failure records under ``FAILURE_KEY``, the skipped under ``SKIPPED_KEY``."""
    good = [item for item in items if FAILURE_KEY not in item and SKIPPED_KEY not in item]
    batch = list_data_collate(good) if good else {}
    batch[FAILURE_KEY] = [item[FAILURE_KEY] for item in items if FAILURE_KEY in item]
    batch[SKIPPED_KEY] = [item[SKIPPED_KEY] for item in items if SKIPPED_KEY in item]
    return batch


class SkipFailures:
    """Iterate over ``loader``, handing its failure (and skip) records to ``summary`` and yielding only good batches.

    Not a sized ``DataLoader``: MONAI's workflows then run one epoch until the data end, however
    many inputs failed or were skipped.
    """

    def __init__(self, loader: Iterable, summary: BatchSummary) -> None:
        self.loader = loader
        self.summary = summary

    def __iter__(self):
        for batch in self.loader:
            for failure in batch.pop(FAILURE_KEY, []):
                self.summary.record(failure)
            for skipped in batch.pop(SKIPPED_KEY, []):
                self.summary.skipped(skipped["input"], skipped["output"])
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


def input_items(datalist: Sequence, sigma_map=None) -> list[dict]:
    """The bundle's inference items ``{"image", "source"[, "sigma_map"]}`` of ``datalist`` (paths).

    A ``sigma_map`` file (:func:`c2s_monai.noise_level.map_file`) is the noise map of the one
    input: refused with several inputs, whose grids it cannot all fit.
    """
    given = map_file(sigma_map)
    if given is not None and len(datalist) != 1:
        raise ValueError(
            f"sigma_map {given}: a map file fits one input's grid, and the datalist holds {len(datalist)} inputs; use "
            "sigma_map 'auto' (a map estimated per input), or run each input with its own map."
        )
    return [{"image": str(f), "source": str(f), **({"sigma_map": given} if given else {})} for f in datalist]


class PrepareNoisyBatch(PrepareBatch):
    """A MONAI ``prepare_batch`` that passes the batch's ``extra_keys`` present in it to the inferer as keyword arguments.

    As ``monai.engines.PrepareBatchExtraInput``, but a key an item does not have (no noise map
    given, ``sigma_map``), or a map key holding a mode (``"none"``/``"auto"``, not a map), is left
    out instead of failing: :class:`~c2s_monai.C2SInferer` then uses its own settings.
    """

    def __init__(self, extra_keys: Sequence[str] = ("sigma_map",)) -> None:
        self.extra_keys = tuple(extra_keys)

    def __call__(self, batchdata: dict, device=None, non_blocking: bool = False, **kwargs):
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        extra = {}
        for key in self.extra_keys:
            value = batchdata.get(key)
            if value is not None and not (key == "sigma_map" and not isinstance(value, torch.Tensor)):
                extra[key] = value.to(device=device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value
        return image, label, (), extra
