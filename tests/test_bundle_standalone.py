"""The bundle runs without this repository's layout: from its own folder, from a copy, from anywhere with --bundle_root."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"


@pytest.fixture(scope="module")
def copied(tmp_path_factory) -> Path:
    """The bundle copied (configs, weights, docs, LICENSE) into a folder of another name, away from the repository."""
    target = tmp_path_factory.mktemp("elsewhere") / "c2s_mri_denoising"
    shutil.copytree(BUNDLE, target, ignore=shutil.ignore_patterns("eval", "runs", "cache", "*.onnx", "*.ts"))
    return target


def _run(args, cwd) -> None:
    command = [sys.executable, "-m", "monai.bundle", "run", *args, "--flips", "1", "--qa_slices", "1"]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def _denoised(output_dir: Path) -> None:
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["denoised"] == 1 and summary["failed"] == 0, summary
    assert list(output_dir.glob("*_denoised.nii.gz"))


def test_inference_runs_from_the_bundle_folder_of_a_copy(copied):
    _run(["--config_file", "configs/inference.json"], cwd=copied)
    _denoised(copied / "eval")


def test_inference_runs_from_anywhere_with_bundle_root(copied, tmp_path):
    out = tmp_path / "out"
    _run(["--config_file", str(copied / "configs" / "inference.json"), "--bundle_root", str(copied), "--output_dir", str(out)], cwd=tmp_path)
    _denoised(out)


def test_a_config_workflow_loads_the_copy_by_its_paths(copied):
    """The Model Zoo's unit-test pattern: ConfigWorkflow on the configs with bundle_root, properties checked."""
    workflow = ConfigWorkflow(
        config_file=str(copied / "configs" / "inference.json"), workflow_type="infer", bundle_root=str(copied), meta_file=str(copied / "configs" / "metadata.json"),
        logging_file=str(copied / "configs" / "logging.conf"),
    )
    workflow.initialize()
    assert workflow.check_properties() in ([], None)
    assert Path(workflow.parser.get_parsed_content("ckpt_path")) == copied / "models" / "model.pt"


def test_the_bundle_has_its_license_and_data_license():
    assert (BUNDLE / "LICENSE").read_text().startswith((REPO / "LICENSE").read_text()[:200])
    assert "MNI" in (BUNDLE / "docs" / "data_license.txt").read_text()
