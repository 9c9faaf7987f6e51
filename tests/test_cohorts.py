"""Cohorts: inference under torchrun (a share of the inputs per process, one summary.json) and reruns that skip completed outputs.

`bundle/configs/multi_gpu_inference.json`, merged after `inference.json`, runs here as two gloo
processes on the CPU; `skip_existing` (true by default) makes a rerun denoise only the inputs
whose complete output is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import make_dicom_series, noisy, truncated_nifti_gz, write_nifti
from monai.bundle import create_workflow
from monai.data import partition_dataset

from c2s_monai.batch import BatchFailedError, BatchSummary, CompletedOutputs, GuardLoad, RankShare, merge_summaries
from c2s_monai.context import DEFAULT_CONTEXT_SLICES
from c2s_monai.io.readers import LoadVolume
from c2s_monai.io.writers import SaveDenoisedd, write_dicom_series
from c2s_monai.networks import NoiseConditionedUNet

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
TINY = [8, 8, 16, 32, 64, 8]
NAMES = [f"scan{i}" for i in range(5)]
TORCHRUN_CONFIGS = "['bundle/configs/inference.json','bundle/configs/multi_gpu_inference.json']"
REPORT_LINE = re.compile(r"^\[default(\d)\]:.* - c2s_monai\.handlers\.reports - INFO - (\S+) -> (\S+) ", re.MULTILINE)
SKIP_LINE = re.compile(r"^\[default(\d)\]:.* - c2s_monai\.batch - INFO - (\S+): skipped, its complete output exists: (\S+) ", re.MULTILINE)

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo"),
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Five small NIfTI scans and a tiny model."""
    root = tmp_path_factory.mktemp("cohort")
    (root / "in").mkdir()
    for index, name in enumerate(NAMES):
        write_nifti(root / "in" / f"{name}.nii.gz", noisy(index, shape=(24, 20, 3)))
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=TINY, context_slices=DEFAULT_CONTEXT_SLICES).state_dict(), root / "model.pt")
    return root


def _bundle_run(cohort: Path, output_dir: Path, *extra: str, inputs: Path | None = None, nproc: int | None = 2) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node nproc -m monai.bundle run` with both configs (nproc None: one process, inference.json alone)."""
    if nproc is None:
        command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "bundle/configs/inference.json"]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc_per_node={nproc}", "--tee", "3",
            "-m", "monai.bundle", "run", "--config_file", TORCHRUN_CONFIGS,
        ]  # fmt: skip
    command += [
        "--dataset_dir", str(inputs or cohort / "in"), "--ckpt_path", str(cohort / "model.pt"), "--output_dir", str(output_dir),
        "--features", json.dumps(TINY), "--flips", "1", "--slice_batch", "4", *extra,
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _log(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def _inputs(cohort: Path) -> list[str]:
    return [str(cohort / "in" / f"{name}.nii.gz") for name in NAMES]


def _mtimes(folder: Path) -> dict[str, int]:
    """Every file but summary.json (which a run rewrites) with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "summary.json"}


@pytest.fixture(scope="module")
def first_run(cohort):
    """Two gloo processes denoise the five scans into cohort/out."""
    result = _bundle_run(cohort, cohort / "out")
    assert result.returncode == 0, _log(result)[-4000:]
    return result


def _copy_of_first_run(cohort: Path, first_run, tmp_path: Path) -> Path:
    output_dir = tmp_path / "out"
    shutil.copytree(cohort / "out", output_dir)  # copy2: the modification times are kept
    return output_dir


# ---------------------------------------------------------------- torchrun


def test_two_processes_denoise_every_input_once_into_one_summary(cohort, first_run):
    output_dir = cohort / "out"
    denoised = REPORT_LINE.findall(_log(first_run))
    # every input exactly once, each process its share: every second input from its rank
    assert sorted(source for _, source, _ in denoised) == _inputs(cohort)
    assert {source: int(rank) for rank, source, _ in denoised} == {source: index % 2 for index, source in enumerate(_inputs(cohort))}
    assert sorted(p.name for p in output_dir.glob("*_denoised.nii.gz")) == [f"{name}_denoised.nii.gz" for name in NAMES]
    # one summary, the schema of a single process's, in input order; no partial summaries, no temporary files
    summary = json.loads((output_dir / "summary.json").read_text())
    assert {k: v for k, v in summary.items() if k not in ("seconds", "results")} == {
        "inputs": 5, "denoised": 5, "skipped": 0, "failed": 0, "not_processed": 0,
    }  # fmt: skip
    assert set(summary) == set(BatchSummary().as_dict())
    assert [(r["input"], r["status"], r["output"]) for r in summary["results"]] == [
        (source, "denoised", str(output_dir / f"{name}_denoised.nii.gz")) for source, name in zip(_inputs(cohort), NAMES)
    ]
    assert [p.name for p in output_dir.glob("summary*")] == ["summary.json"]
    assert not list(output_dir.glob(".tmp*"))
    assert _log(first_run).count("5 of 5 inputs denoised") == 1  # rank 0 logs the merged result
    # a process denoises its share as a single process does
    single = create_workflow(
        config_file=str(CONFIGS / "inference.json"), workflow_type="infer", logging_file=False, dataset_dir=_inputs(cohort)[1],
        ckpt_path=str(cohort / "model.pt"), output_dir=str(cohort / "single"), features=TINY, flips=1, slice_batch=4,
    )  # fmt: skip
    single.run()
    single.finalize()
    np.testing.assert_allclose(
        nib.load(cohort / "single" / "scan1_denoised.nii.gz").get_fdata(), nib.load(output_dir / "scan1_denoised.nii.gz").get_fdata(), rtol=1e-5, atol=1e-3
    )


def test_a_rerun_skips_every_completed_input_says_so_and_writes_nothing_new(cohort, first_run, tmp_path):
    output_dir = _copy_of_first_run(cohort, first_run, tmp_path)
    before = _mtimes(output_dir)
    result = _bundle_run(cohort, output_dir)
    assert result.returncode == 0, _log(result)[-4000:]
    log = _log(result)
    assert not REPORT_LINE.findall(log)
    assert sorted((source, output) for _, source, output in SKIP_LINE.findall(log)) == [
        (source, str(output_dir / f"{name}_denoised.nii.gz")) for source, name in zip(_inputs(cohort), NAMES)
    ]
    assert "0 of 5 inputs denoised, 5 skipped (their complete outputs exist), 0 failed" in log
    summary = json.loads((output_dir / "summary.json").read_text())
    assert (summary["inputs"], summary["denoised"], summary["skipped"], summary["failed"], summary["not_processed"]) == (5, 0, 5, 0, 0)
    assert [(r["input"], r["status"], r["output"]) for r in summary["results"]] == [
        (source, "skipped", str(output_dir / f"{name}_denoised.nii.gz")) for source, name in zip(_inputs(cohort), NAMES)
    ]
    assert _mtimes(output_dir) == before  # the same files (outputs, reports, figures), none written again


def test_a_rerun_denoises_only_the_input_whose_output_is_missing(cohort, first_run, tmp_path):
    output_dir = _copy_of_first_run(cohort, first_run, tmp_path)
    (output_dir / "scan3_denoised.nii.gz").unlink()
    # what a writer killed half-way leaves: a temporary file, not the output
    (output_dir / ".tmp_k1ll3d.nii.gz").write_bytes(b"half a volume")
    before = _mtimes(output_dir)
    result = _bundle_run(cohort, output_dir)
    assert result.returncode == 0, _log(result)[-4000:]
    assert [(rank, source) for rank, source, _ in REPORT_LINE.findall(_log(result))] == [("1", _inputs(cohort)[3])]
    assert len(SKIP_LINE.findall(_log(result))) == 4
    summary = json.loads((output_dir / "summary.json").read_text())
    assert (summary["denoised"], summary["skipped"], summary["failed"]) == (1, 4, 0)
    assert [r["status"] for r in summary["results"]] == ["skipped", "skipped", "skipped", "denoised", "skipped"]
    after = _mtimes(output_dir)
    rewritten = {name for name in after if after[name] != before.get(name)}
    assert rewritten == {"scan3_denoised.nii.gz", "scan3_denoised.json", "scan3_denoised_qa.png", "scan3_denoised_noise_map.nii.gz"}
    nib.load(output_dir / "scan3_denoised.nii.gz").get_fdata()


def test_skip_existing_false_denoises_everything_again(cohort, first_run, tmp_path):
    output_dir = _copy_of_first_run(cohort, first_run, tmp_path)
    before = _mtimes(output_dir)
    result = _bundle_run(cohort, output_dir, "--skip_existing", "false", nproc=None)  # as typed: the string "false"
    assert result.returncode == 0, _log(result)[-4000:]
    assert "skipped" not in _log(result)
    summary = json.loads((output_dir / "summary.json").read_text())
    assert (summary["denoised"], summary["skipped"]) == (5, 0)
    after = _mtimes(output_dir)
    assert all(after[f"{name}_denoised.nii.gz"] > before[f"{name}_denoised.nii.gz"] for name in NAMES)


def test_a_failed_input_fails_the_torchrun_job_with_one_message(cohort, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a_scan", "c_scan"):
        shutil.copy(cohort / "in" / "scan0.nii.gz", inputs / f"{name}.nii.gz")
    truncated_nifti_gz(inputs).rename(inputs / "b_broken.nii.gz")  # rank 1's share
    result = _bundle_run(cohort, tmp_path / "out", inputs=inputs)
    assert result.returncode != 0
    log = _log(result)
    assert log.count("error: 1 of 3 inputs failed (every failure is listed in") == 1, log[-4000:]
    assert re.search(r"\[default0\]:error: 1 of 3 inputs failed .*\n\[default0\]:  - \S*b_broken\.nii\.gz: cannot be read as NIfTI", log)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(Path(r["input"]).name, r["status"]) for r in summary["results"]] == [
        ("a_scan.nii.gz", "denoised"), ("b_broken.nii.gz", "failed"), ("c_scan.nii.gz", "denoised"),
    ]  # fmt: skip
    assert summary["results"][1]["stage"] == "load"


def test_more_processes_than_inputs(cohort, tmp_path):
    """A process without a share waits for the others; the summary holds every input."""
    result = _bundle_run(cohort, tmp_path / "out", inputs=cohort / "in" / "scan2.nii.gz")
    assert result.returncode == 0, _log(result)[-4000:]
    assert [(rank, Path(source).name) for rank, source, _ in REPORT_LINE.findall(_log(result))] == [("0", "scan2.nii.gz")]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["inputs"], summary["denoised"]) == (1, 1)


# ---------------------------------------------------------------- the parts


@pytest.mark.parametrize("length", [3, 5, 7, 16])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_rank_share_is_monai_partition_without_padding(length, world):
    shares = [list(RankShare(range(length), rank=rank, num_replicas=world)) for rank in range(world)]
    assert shares == partition_dataset(list(range(length)), num_partitions=world, shuffle=False, even_divisible=False)
    assert sorted(i for share in shares for i in share) == list(range(length))
    assert [len(RankShare(range(length), rank=rank, num_replicas=world)) for rank in range(world)] == [len(s) for s in shares]


def test_rank_share_of_fewer_items_than_processes():
    assert [list(RankShare(range(2), rank=rank, num_replicas=4)) for rank in range(4)] == [[0], [1], [], []]
    assert list(RankShare(range(3))) == [0, 1, 2]  # no process group: everything
    with pytest.raises(ValueError, match="rank 2 is not one of the 2 processes"):
        RankShare(range(3), rank=2, num_replicas=2)


def test_merge_summaries_of_files_gives_the_single_run_schema(tmp_path):
    first, second = BatchSummary(tmp_path / "a.json", inputs=["x", "y"]), BatchSummary(tmp_path / "b.json", inputs=["z"])
    first.denoised("x", "x_denoised.nii.gz")
    first.failed("y", "load", ValueError("y: broken"))
    second.skipped("z", "z_denoised.nii.gz")
    first.write()
    second.write()
    merged = merge_summaries([tmp_path / "a.json", tmp_path / "b.json"], tmp_path / "summary.json", inputs=["z", "y", "x", "w"])
    written = json.loads((tmp_path / "summary.json").read_text())
    assert set(written) == set(first.as_dict())
    assert [(r["input"], r["status"]) for r in written["results"]] == [("z", "skipped"), ("y", "failed"), ("x", "denoised"), ("w", "not processed")]
    assert (written["inputs"], written["denoised"], written["skipped"], written["failed"], written["not_processed"]) == (4, 1, 1, 1, 1)
    with pytest.raises(BatchFailedError, match=r"1 of 4 inputs failed \(every failure is listed in .*summary.json\):\n  - y: broken"):
        merged.check()
    # a later part's result wins over an earlier one's; "not processed" never hides one
    again = {"seconds": 1.0, "results": [{"input": "y", "status": "denoised", "output": "y_d"}, {"input": "x", "status": "not processed"}]}
    rerun = merge_summaries([tmp_path / "a.json", again])
    assert [(r["input"], r["status"]) for r in rerun.as_dict()["results"]] == [("x", "denoised"), ("y", "denoised")]
    rerun.check()
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json: not a readable summary\.json"):
        merge_summaries([tmp_path / "broken.json"])


def _saver(output_dir: Path, **settings) -> SaveDenoisedd:
    return SaveDenoisedd(keys="pred", output_dir=str(output_dir), **settings)


def test_completed_outputs_follow_the_writers_naming_rule(tmp_path):
    scan = write_nifti(tmp_path / "sub-1_T1w.nii.gz", noisy(0))
    item = {"image": str(scan), "source": str(scan), "subject": "s1"}
    out = tmp_path / "out"
    check = CompletedOutputs(_saver(out))
    assert check(item) is None
    (out / ".tmp_x.nii.gz").write_bytes(b"partial")  # a killed writer's temporary is no output
    assert check(item) is None
    # the output the writer itself writes counts
    image = LoadVolume()(str(scan))
    written = _saver(out)({"pred": image, "image": image})["output_path"]
    assert check(item) == Path(written) == out / "sub-1_T1w_denoised.nii.gz"
    for disabled in (False, "false", "no"):
        assert CompletedOutputs(_saver(out), enabled=disabled)(item) is None
    assert CompletedOutputs(_saver(out, output_postfix="other"))(item) is None
    assert CompletedOutputs(_saver(out, subfolder_key="subject"))(item) is None  # <out>/s1/sub-1_T1w_denoised.nii.gz
    with pytest.raises(ValueError, match="skip_existing must be true or false"):
        CompletedOutputs(_saver(out), enabled="maybe")
    # GuardLoad: a skipped item is not loaded
    loads = []
    guard = GuardLoad(lambda data: loads.append(data) or data, skip=check)
    assert guard(item) == {"c2s_skipped": {"input": str(scan), "output": str(out / "sub-1_T1w_denoised.nii.gz")}}
    assert loads == []


def test_a_dicom_series_output_counts_when_every_slice_is_there(tmp_path):
    series = tmp_path / "in" / "t2_series"
    make_dicom_series(series, num_slices=4)
    volume = LoadVolume()(str(series))
    out = tmp_path / "out"
    item = {"image": str(series), "source": str(series)}
    check = CompletedOutputs(_saver(out, dicom_output=True))
    assert check(item) is None
    folder = out / "t2_series_denoised"
    folder.mkdir(parents=True)
    assert check(item) is None  # an empty folder
    write_dicom_series(volume, series, folder)
    assert sorted(p.name for p in folder.iterdir()) == [f"IM_{i:04d}.dcm" for i in range(1, 5)]
    assert check(item) == folder
    assert CompletedOutputs(_saver(out))(item) is None  # NIfTI output of the same series: another path
    (folder / "IM_0002.dcm").unlink()
    assert check(item) is None  # a gap
    write_dicom_series(volume, series, folder)
    (folder / "notes.txt").write_text("not the writer's")
    assert check(item) is None
