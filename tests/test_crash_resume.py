"""Crash-safe training: a run killed with SIGKILL and started again with the same command ends as if never killed.

The checkpoint of every epoch holds the network, EMA, optimiser, scheduler, trainer state and
every random stream (c2s_monai.engines.RandomState), and is written atomically; the run resumes
from the newest one by default. So a run killed in its third epoch and started again loses only
that epoch's work and ends with the very weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.bundle import create_workflow

import c2s_monai
from c2s_monai.engines import checkpoint_handler
from c2s_monai.handlers import ResumeFromCheckpoint, latest_checkpoint
from c2s_monai.losses.gdsm import GDSMLoss

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
TINY = [8, 8, 16, 32, 64, 8]
ITERATIONS = 2
TRAIN = {
    "features": TINY, "flips": 1, "slice_batch": 4, "max_epochs": 3, "iterations_per_epoch": ITERATIONS, "batch_size": 2,
    "patch_size": 32, "warmup_iterations": 1, "max_val_volumes": 1,
}


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(0)
    for index in range(2):
        image = np.zeros((40, 36, 3), np.float32)
        image[8:32, 6 + index : 28] = 600.0
        nib.save(nib.Nifti1Image(image + rng.normal(0, 30, image.shape).astype(np.float32), np.eye(4)), folder / f"scan{index}.nii.gz")
    return folder


pytestmark = pytest.mark.usefixtures("one_thread")


def _command(bundle_root: Path, scans: Path, extra_config: Path | None = None) -> list[str]:
    configs = ["bundle/configs/train.json"] + ([str(extra_config)] if extra_config else [])
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(configs).replace('"', "'")]
    for key, value in {**TRAIN, "dataset_dir": str(scans), "bundle_root": str(bundle_root)}.items():
        command += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    return command


def _run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env=env)


def _sigkill_in_iteration(iteration: int, folder: Path) -> Path:
    """A config merged after train.json that SIGKILLs the process when ``iteration`` completes."""
    run = json.loads((CONFIGS / "train.json").read_text())["run"]
    at = run.index("$@train#trainer.run()")
    kill = f"$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once={iteration}), lambda engine: os.kill(os.getpid(), 9))"
    path = folder / "sigkill.json"
    path.write_text(json.dumps({"run": run[:at] + [kill] + run[at:]}))
    return path


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_sigkill_then_the_same_command_resumes_and_ends_as_an_uninterrupted_run(scans, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    reference = create_workflow(
        config_file=str(CONFIGS / "train.json"), workflow_type="train", logging_file=False,
        **{**TRAIN, "dataset_dir": str(scans), "bundle_root": str(tmp_path / "reference")},
    )
    reference.run()
    reference.finalize()

    run = tmp_path / "run"
    killed = _run(_command(run, scans, _sigkill_in_iteration(2 * ITERATIONS + 1, tmp_path)))  # in the third epoch
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    checkpoints = run / "models" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_1.pt", "checkpoint_2.pt"]
    assert not (run / "models" / "model.pt").exists()

    resumed = _run(_command(run, scans))  # the same command as the user's
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"Restored all variables from {checkpoints / 'checkpoint_2.pt'}" in resumed.stdout + resumed.stderr
    final = _weights(checkpoints / "checkpoint_3.pt")
    assert final["trainer"]["iteration"] == 3 * ITERATIONS
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint_2.pt", "checkpoint_3.pt"]

    expected, got = _weights(tmp_path / "reference" / "models" / "model.pt"), _weights(run / "models" / "model.pt")
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"the resumed run differs from the uninterrupted one in {different[:3]}"


SETTINGS = {"sigma_data": "auto", "iterations_per_epoch": 3, "patch_size": 32, "batch_size": 2, "features": TINY, "warmup_iterations": 1, "epochs": 3, "progress": False}


def test_api_run_interrupted_mid_epoch_resumes_to_the_same_weights(scans, tmp_path, monkeypatch):
    scan = scans / "scan0.nii.gz"
    uninterrupted = c2s_monai.train([scan], tmp_path / "a", **SETTINGS)
    calls, forward = [], GDSMLoss.forward

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # the second iteration of epoch 2
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GDSMLoss, "forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        c2s_monai.train([scan], tmp_path / "b", **SETTINGS)
    monkeypatch.setattr(GDSMLoss, "forward", forward)
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "checkpoint_1.pt"
    resumed = c2s_monai.train([scan], tmp_path / "b", **SETTINGS)
    expected, got = _weights(uninterrupted), _weights(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    state = _weights(tmp_path / "b" / "checkpoints" / "checkpoint_3.pt")
    assert set(state) == {"network", "ema_network", "optimizer", "lr_scheduler", "trainer", "random_state", "checkpointer"}
    assert set(state["random_state"]["ranks"][0]) >= {"torch", "numpy", "python", "monai", "transforms", "sampler"}


def _toy_trainer(checkpoint_dir: Path, epochs: int = 3) -> tuple[Engine, torch.nn.Linear, dict]:
    model = torch.nn.Linear(2, 2)
    trainer = Engine(lambda engine, batch: model.weight.data.add_(1.0))
    save = {"network": model, "trainer": trainer}
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint_handler(save, str(checkpoint_dir)))
    return trainer, model, save


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one(tmp_path, monkeypatch):
    """ignite's Checkpoint deletes the oldest file before writing the newest: two are kept, so a kill
    during a write still leaves a complete checkpoint, and the write itself goes to a temporary file."""
    saves, original = [], torch.save

    def dies_at_the_third(*args, **kwargs):
        saves.append(1)
        if len(saves) == 3:
            raise KeyboardInterrupt  # killed while writing the third checkpoint
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "save", dies_at_the_third)
    trainer, _, _ = _toy_trainer(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        trainer.run([0, 1], max_epochs=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_2.pt"]  # checkpoint_1 went first; no partial file
    assert torch.load(latest_checkpoint(tmp_path), weights_only=True)["trainer"]["iteration"] == 4


def test_resume_false_starts_over_and_leftovers_are_removed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("checkpoints")
    trainer, _model, save = _toy_trainer(tmp_path)
    trainer.run([0, 1], max_epochs=2)
    (tmp_path / "tmpa1b2c3").write_bytes(b"half a checkpoint from a killed writer")
    fresh, _, save = _toy_trainer(tmp_path_factory.mktemp("unused"))
    ResumeFromCheckpoint(tmp_path, save, resume=True).attach(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1.pt", "checkpoint_2.pt"]
    fresh.run([0, 1], max_epochs=3)
    assert fresh.state.iteration == 6 and fresh.state.epoch == 3  # resumed at epoch 2

    other, _, save = _toy_trainer(tmp_path_factory.mktemp("unused"))
    handler = ResumeFromCheckpoint(tmp_path, save, resume="false")
    handler.attach(other)
    assert handler.checkpoint is None and list(tmp_path.glob("checkpoint_*.pt")) == []
