"""Direct tests of the training and evaluation handlers: EMAWarmup (with WarmupEMAHandler),
GuardIteration, DenoisingReportHandler and NoReferenceReportHandler.

Each test runs a real ignite ``Engine`` or MONAI ``SupervisedEvaluator`` on tiny tensors. The
evaluators' network returns half its input, so the denoised volume, and with it every
no-reference value of the reports, is known in advance; ``C2SInferer`` (float32, eager torch)
records the sigma of every volume for the report handlers.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor, list_data_collate
from monai.engines import SupervisedEvaluator
from monai.inferers import SimpleInferer

from c2s_monai import C2SInferer
from c2s_monai.batch import BatchSummary, GuardIteration
from c2s_monai.evaluation import NO_REFERENCE_METRICS, no_reference_metrics
from c2s_monai.handlers import (
    DenoisingReportHandler,
    EMAWarmup,
    NoReferenceReportHandler,
    WarmupEMAHandler,
)

SHAPE = (12, 10, 4)  # (x, y, slices) of every test volume


# ------------------------------------------------------------------ EMAWarmup, WarmupEMAHandler


def _warmup(momentum: float, n: int) -> float:
    """The schedule of the EMAWarmup docstring, written out independently."""
    return max(momentum, 9.0 / (10.0 + n))


@pytest.mark.parametrize("momentum", [1e-3, 0.05, 0.3, 1.0])
def test_ema_warmup_momentum_and_decay_follow_the_documented_formulas(momentum):
    warmup = EMAWarmup(momentum)
    previous = math.inf
    for n in [*range(50), 89, 90, 91, 179, 180, 181, 1000, 8989, 8990, 8991, 100_000]:
        value = warmup(n)
        assert value == pytest.approx(_warmup(momentum, n), rel=1e-12, abs=0)
        # the decay 1 - momentum of the docstring: min(1 - momentum, (1 + n) / (10 + n))
        assert 1.0 - value == pytest.approx(min(1.0 - momentum, (1.0 + n) / (10.0 + n)), abs=1e-12)
        assert value <= previous  # the momentum only decreases (the average slows down)
        previous = value


def test_ema_warmup_known_values():
    warmup = EMAWarmup(1e-3)
    assert warmup(0) == pytest.approx(0.9)  # at the start the average nearly follows the weights
    assert warmup(8) == pytest.approx(0.5)
    assert warmup(80) == pytest.approx(0.1)
    assert warmup(8990) == pytest.approx(1e-3)  # 9 / 9000: the crossover to the base momentum
    assert warmup(10**6) == 1e-3
    assert EMAWarmup(1.0)(0) == 1.0 and EMAWarmup(1.0)(10**6) == 1.0  # momentum 1: the EMA is the network


@pytest.mark.parametrize("momentum", [0.0, -0.1, 1.5, 2.0])
def test_ema_warmup_rejects_a_momentum_outside_0_1(momentum):
    with pytest.raises(ValueError, match="ema momentum must be in"):
        EMAWarmup(momentum)


def _ema_run(momentum: float, weights: list[float], start_iteration: int = 0, epoch_length: int | None = None):
    """Run ``len(weights)`` iterations that set a one-weight network to ``weights[k]``; return
    (the momentum at attach, [(iteration, momentum, ema weight) after each iteration], the initial weight)."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(-2.0)

    def step(engine, _):
        with torch.no_grad():
            model.weight.fill_(weights[engine.state.iteration - start_iteration - 1])

    engine = Engine(step)
    epoch_length = epoch_length or len(weights)
    if start_iteration:
        engine.load_state_dict({"iteration": start_iteration, "epoch_length": epoch_length, "max_epochs": start_iteration // epoch_length + 1})
    handler = WarmupEMAHandler(model, momentum=momentum)
    handler.attach(engine)
    at_attach = engine.state.ema_momentum
    trace = []
    engine.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: trace.append((e.state.iteration, e.state.ema_momentum, float(handler.ema_model.weight))),
    )
    engine.run(range(epoch_length), max_epochs=(start_iteration + len(weights)) // epoch_length)
    return at_attach, trace, -2.0


def test_warmup_ema_weights_follow_the_ema_equation():
    """ema_n = (1 - m_n) ema_(n-1) + m_n w_n with m_n = max(momentum, 9 / (10 + n)), n the iteration."""
    weights = [float(v) for v in np.linspace(1.0, 4.0, 30) ** 2]
    at_attach, trace, ema = _ema_run(0.3, weights)
    assert at_attach == pytest.approx(0.9)  # iteration 0
    assert [t[0] for t in trace] == list(range(1, 31))
    for (n, momentum, ema_weight), w in zip(trace, weights, strict=True):
        expected_momentum = _warmup(0.3, n)
        assert momentum == pytest.approx(expected_momentum)
        ema = (1.0 - expected_momentum) * ema + expected_momentum * w
        assert ema_weight == pytest.approx(ema, rel=1e-5)
    # past n = 20 the warm-up is over: 9 / 30 = 0.3
    assert trace[19][1] == pytest.approx(0.3) and trace[29][1] == pytest.approx(0.3)
    assert trace[5][1] == pytest.approx(9 / 16)


def test_warmup_ema_a_resumed_run_goes_on_with_the_schedule():
    """The momentum's n is the trainer's iteration, so a run resumed at 40 starts at 9 / 51, not 9 / 11."""
    weights = [1.0] * 20
    at_attach, trace, ema = _ema_run(0.05, weights, start_iteration=40, epoch_length=10)
    assert at_attach == pytest.approx(9 / 50)
    assert [t[0] for t in trace] == list(range(41, 61))
    for n, momentum, ema_weight in trace:
        assert momentum == pytest.approx(_warmup(0.05, n))
        ema = (1.0 - momentum) * ema + momentum * 1.0
        assert ema_weight == pytest.approx(ema, rel=1e-5)
    assert trace[0][1] == pytest.approx(9 / 51)


# ------------------------------------------------------------------ evaluators on tiny volumes


def _clean() -> torch.Tensor:
    clean = torch.zeros(1, *SHAPE)
    clean[:, 3:9, 2:8] = 600.0
    clean[:, 5:7, 4:6] = 300.0
    return clean


def _item(path: Path, sigma: float, seed: int, nan: bool = False) -> dict:
    noise = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(seed))
    image = _clean() + sigma * noise
    if nan:
        image[0, 0, 0, 0] = float("nan")
    return {"image": MetaTensor(image, meta={"filename_or_obj": str(path)}), "source": str(path)}


class HalfNetwork(torch.nn.Module):
    """Returns half its target channel (channel 0), whatever the noise level: the denoised volume
    is exactly half the noisy one, so every no-reference value is known in advance. Refuses a
    non-finite input, as a failing denoising step."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(x).all():
            raise ValueError("the input holds NaN voxels")
        return self.scale * x[:, :1]


def _inferer(sigma_data, flips: int = 2) -> C2SInferer:
    """The package's inferer, which records for the report handlers the sigma of every volume."""
    return C2SInferer(
        sigma_data=sigma_data, flips=flips, autocast_dtype="float32", backend="torch", context_slices=0, slice_axis=2, check_noise=False
    )


def _with_output_path(folder: Path):
    def postprocessing(item: dict) -> dict:
        name = Path(item["image"].meta["filename_or_obj"]).name.split(".")[0]
        return {**item, "output_path": str(folder / f"{name}_denoised.nii.gz")}

    return postprocessing


def _evaluator(batches: list[list[dict]], inferer, handlers=(), postprocessing=None, iteration_update=None) -> SupervisedEvaluator:
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=[list_data_collate(b) for b in batches],
        network=HalfNetwork(),
        inferer=inferer,
        postprocessing=postprocessing,
        iteration_update=iteration_update,
    )
    for handler in handlers:
        handler.attach(evaluator)
    return evaluator


def _expected_metrics(item: dict, sigma: float) -> dict:
    noisy = torch.as_tensor(item["image"])[0]
    return no_reference_metrics(noisy, 0.5 * noisy, sigma)


def _half_residual_ratio(item: dict, sigma: float) -> float:
    """std(noisy - denoised) / sigma for the HalfNetwork: std(noisy / 2) / sigma."""
    return float((0.5 * torch.as_tensor(item["image"])).double().std()) / sigma


# ------------------------------------------------------------------ DenoisingReportHandler


def test_denoising_report_handler_writes_a_figure_and_a_json_per_input(tmp_path):
    items = [_item(tmp_path / "in" / "knee.nii.gz", 30.0, seed=1), _item(tmp_path / "in" / "brain.nii.gz", 30.0, seed=2)]
    handler = DenoisingReportHandler(output_dir=tmp_path / "unused", num_slices=2, extra={"checkpoint": "model.pt"})
    evaluator = _evaluator([items], _inferer(30.0, flips=2), [handler], _with_output_path(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    evaluator.run()

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "brain_denoised.json", "brain_denoised_qa.png", "knee_denoised.json", "knee_denoised_qa.png"
    ]
    assert not (tmp_path / "unused").exists()
    assert len(handler.reports) == 2
    for item, name in ((items[0], "knee"), (items[1], "brain")):
        report = json.loads((tmp_path / "out" / f"{name}_denoised.json").read_text())
        figure = tmp_path / "out" / f"{name}_denoised_qa.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert report["input"] == str(Path(item["source"]).resolve())
        assert report["output"] == str((tmp_path / "out" / f"{name}_denoised.nii.gz").resolve())
        assert report["qa_figure"] == str(figure.resolve())
        assert report["sigma_data"] == pytest.approx(30.0, rel=1e-5)  # given, in image units
        assert report["sigma_source"] == "given"
        assert report["volume"]["slice_axis"] == 2 and report["volume"]["slices"] == SHAPE[2]
        assert report["flips"] == 2
        assert report["shape"] == list(SHAPE)
        assert report["device"] == "cpu"
        assert report["checkpoint"] == "model.pt"
        assert "has_reference" not in report
        assert report["seconds_total"] >= 0 and report["seconds_denoising"] is not None and report["seconds_denoising"] >= 0
        assert set(report["no_reference"]) == set(NO_REFERENCE_METRICS)
        assert report["no_reference"]["residual_std_ratio"] == pytest.approx(_half_residual_ratio(item, 30.0), rel=1e-4)
        expected = _expected_metrics(item, 30.0)
        for key in NO_REFERENCE_METRICS:
            assert report["no_reference"][key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6)


def test_denoising_report_handler_reports_each_volume_at_its_own_sigma(tmp_path):
    """Two volumes of one batch, noise 10 and 60, sigma estimated: each report has its own volume's sigma."""
    items = [_item(tmp_path / "quiet.nii.gz", 10.0, seed=3), _item(tmp_path / "loud.nii.gz", 60.0, seed=4)]
    handler = DenoisingReportHandler()
    evaluator = _evaluator([items], _inferer("mad", flips=1), [handler], _with_output_path(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    evaluator.run()
    quiet, loud = (json.loads((tmp_path / "out" / f"{n}_denoised.json").read_text()) for n in ("quiet", "loud"))
    assert quiet["sigma_source"].startswith("estimated") and loud["sigma_source"].startswith("estimated")
    assert 5.0 < quiet["sigma_data"] < 20.0 and 40.0 < loud["sigma_data"] < 90.0
    for report, item in ((quiet, items[0]), (loud, items[1])):
        assert report["flips"] == 1
        assert report["no_reference"]["residual_std_ratio"] == pytest.approx(_half_residual_ratio(item, report["sigma_data"]), rel=1e-4)


def test_denoising_report_without_an_output_path_or_a_sigma(tmp_path):
    """No saved output: the reports go to output_dir, named after the input; no sigma recorded
    (not C2SInferer): no no-reference checks."""
    item = _item(tmp_path / "scan.nii.gz", 30.0, seed=5)
    handler = DenoisingReportHandler(output_dir=tmp_path / "reports")
    (tmp_path / "reports").mkdir()
    _evaluator([[item]], SimpleInferer(), [handler]).run()
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["scan.json", "scan_qa.png"]
    report = json.loads((tmp_path / "reports" / "scan.json").read_text())
    assert report["output"] is None
    assert report["sigma_data"] is None and report["sigma_source"] == "unknown"
    assert "no_reference" not in report and "volume" not in report
    assert report["flips"] is None


def test_a_failing_report_is_logged_and_the_run_goes_on(tmp_path, caplog):
    items = [_item(tmp_path / "a.nii.gz", 30.0, seed=6), _item(tmp_path / "b.nii.gz", 30.0, seed=7)]
    handler = DenoisingReportHandler(output_dir=tmp_path / "reports", image_key="absent")
    (tmp_path / "reports").mkdir()
    evaluator = _evaluator([[items[0]], [items[1]]], SimpleInferer(), [handler])
    with caplog.at_level(logging.WARNING, logger="c2s_monai.handlers"):
        evaluator.run()
    assert evaluator.state.iteration == 2
    assert list((tmp_path / "reports").iterdir()) == [] and handler.reports == []
    assert sum("the QA figure or JSON report failed" in r.getMessage() for r in caplog.records) == 2


# ------------------------------------------------------------------ NoReferenceReportHandler


def test_no_reference_report_handler_averages_into_metrics_and_appends_a_json_entry_per_run(tmp_path):
    items = [_item(tmp_path / "a.nii.gz", 30.0, seed=8), _item(tmp_path / "b.nii.gz", 30.0, seed=9), _item(tmp_path / "c.nii.gz", 30.0, seed=10)]
    output = tmp_path / "logs" / "no_reference.json"
    output.parent.mkdir()
    handler = NoReferenceReportHandler(output_file=output, prefix="check_")
    evaluator = _evaluator([items[:2], items[2:]], _inferer(30.0, flips=1), [handler])
    per_volume = [_expected_metrics(item, 30.0) for item in items]

    evaluator.run()
    for key in NO_REFERENCE_METRICS:
        assert evaluator.state.metrics[f"check_{key}"] == pytest.approx(np.mean([v[key] for v in per_volume]), rel=1e-4, abs=1e-6)
    expected_ratio = np.mean([_half_residual_ratio(item, 30.0) for item in items])
    assert evaluator.state.metrics["check_residual_std_ratio"] == pytest.approx(expected_ratio, rel=1e-4)
    history = json.loads(output.read_text())
    assert len(history) == 1 and history[0]["validation_run"] == 1
    assert history[0]["mean"] == pytest.approx({key: evaluator.state.metrics[f"check_{key}"] for key in NO_REFERENCE_METRICS})
    assert [v["input"] for v in history[0]["volumes"]] == [item["source"] for item in items]
    assert [v["sigma_data"] for v in history[0]["volumes"]] == pytest.approx([30.0] * 3, rel=1e-5)

    evaluator.run()  # a second validation run: a second entry, over that run's volumes only
    history = json.loads(output.read_text())
    assert [h["validation_run"] for h in history] == [1, 2]
    assert len(history[1]["volumes"]) == 3
    assert history[1]["mean"] == pytest.approx(history[0]["mean"])


def test_no_reference_report_handler_needs_the_sigma_recorded_by_c2s_inferer(tmp_path):
    handler = NoReferenceReportHandler(output_file=tmp_path / "no_reference.json")
    evaluator = _evaluator([[_item(tmp_path / "a.nii.gz", 30.0, seed=11)]], SimpleInferer(), [handler])
    with pytest.raises(RuntimeError, match="C2SInferer"):
        evaluator.run()
    assert not (tmp_path / "no_reference.json").exists()


# ------------------------------------------------------------------ GuardIteration


def test_guard_iteration_passes_a_normal_step_through():
    summary = BatchSummary()
    calls = []

    def iteration(engine, batch):
        calls.append(batch)
        return {"pred": "denoised"}

    engine = SimpleNamespace(_iteration=iteration, state=SimpleNamespace(batch={"source": ["a.nii.gz"]}))
    batch = {"source": ["a.nii.gz"]}
    assert GuardIteration(summary)(engine, batch) == {"pred": "denoised"}
    assert calls == [batch]
    assert summary.results == {} and summary.failures == []
    assert engine.state.batch == {"source": ["a.nii.gz"]}  # left alone


def test_guard_iteration_records_the_failed_inputs_and_ends_the_iteration_empty():
    summary = BatchSummary()

    def iteration(engine, batch):
        raise MemoryError("out of memory while denoising")

    engine = SimpleNamespace(_iteration=iteration, state=SimpleNamespace(batch={"source": ["a.nii.gz", "b.nii.gz"]}))
    assert GuardIteration(summary)(engine, {"source": ["a.nii.gz", "b.nii.gz"]}) == []
    assert engine.state.batch == []
    assert [(f["input"], f["stage"], f["error"], f["message"]) for f in summary.failures] == [
        ("a.nii.gz", "denoise", "MemoryError", "out of memory while denoising"),
        ("b.nii.gz", "denoise", "MemoryError", "out of memory while denoising"),
    ]


def test_guard_iteration_in_an_evaluator_goes_on_past_a_failing_input(tmp_path):
    items = [_item(tmp_path / "a.nii.gz", 30.0, seed=10), _item(tmp_path / "b.nii.gz", 30.0, seed=11, nan=True), _item(tmp_path / "c.nii.gz", 30.0, seed=12)]
    summary = BatchSummary(tmp_path / "summary.json", inputs=[i["source"] for i in items])
    reports = DenoisingReportHandler(output_dir=tmp_path / "out")
    (tmp_path / "out").mkdir()
    evaluator = _evaluator(
        [[i] for i in items], SimpleInferer(), [reports, summary],
        _with_output_path(tmp_path / "out"), GuardIteration(summary),
    )
    outputs = []
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    evaluator.run()

    assert evaluator.state.iteration == 3
    assert outputs[1] == [] and len(outputs[0]) == 1 and len(outputs[2]) == 1
    torch.testing.assert_close(torch.as_tensor(outputs[2][0]["pred"]), 0.5 * torch.as_tensor(items[2]["image"]))  # the step after the failure ran normally
    written = json.loads((tmp_path / "summary.json").read_text())
    assert (written["inputs"], written["denoised"], written["failed"], written["not_processed"]) == (3, 2, 1, 0)
    assert [r["status"] for r in written["results"]] == ["denoised", "failed", "denoised"]
    failure = written["results"][1]
    assert (failure["input"], failure["stage"], failure["error"]) == (items[1]["source"], "denoise", "ValueError")
    assert "NaN" in failure["message"]
    assert written["results"][0]["output"] == str(tmp_path / "out" / "a_denoised.nii.gz")
    # the report handler skipped the empty output of the failed input
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["a_denoised.json", "c_denoised.json"]


def test_guard_iteration_without_skipping_writes_the_summary_and_raises(tmp_path):
    items = [_item(tmp_path / "a.nii.gz", 30.0, seed=13), _item(tmp_path / "b.nii.gz", 30.0, seed=14, nan=True), _item(tmp_path / "c.nii.gz", 30.0, seed=15)]
    summary = BatchSummary(tmp_path / "summary.json", inputs=[i["source"] for i in items])
    evaluator = _evaluator([[i] for i in items], SimpleInferer(), [summary], iteration_update=GuardIteration(summary, skip_failures=False))
    with pytest.raises(ValueError, match="NaN"):
        evaluator.run()
    written = json.loads((tmp_path / "summary.json").read_text())
    assert [r["status"] for r in written["results"]] == ["denoised", "failed", "not processed"]
    assert written["results"][1]["stage"] == "denoise"
