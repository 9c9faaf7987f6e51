"""The benchmark's metrics and report builder, on synthetic results (no training); the benchmarks' import graph."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import metrics
from benchmarks.report import END, START, write_report
from benchmarks.run import QUICK


def test_metrics_of_a_known_error():
    clean = np.zeros((2, 32, 32), dtype=np.float32)
    clean[:, 8:24, 8:24] = 0.8
    result = metrics(clean + 0.1, clean)
    assert result["psnr_mask"] == pytest.approx(20.0, abs=1e-4)
    assert result["psnr_image"] == pytest.approx(20.0, abs=1e-4)
    assert result["ssim_image"] < 1.0
    assert metrics(clean, clean)["ssim_mask"] == pytest.approx(1.0)


def _run(folder, condition, method, psnr, **extra):
    scores = {"psnr_mask": psnr, "psnr_image": psnr + 3, "ssim_mask": 0.9, "ssim_image": 0.8}
    result = {"method": method, "condition": condition, "metrics": {"train": scores, "held_out": scores}, **extra}
    (folder / condition).mkdir(parents=True, exist_ok=True)
    (folder / condition / f"{method}.json").write_text(json.dumps(result))


def test_report_tables_and_targets(tmp_path):
    folder = tmp_path / "quick"
    curve = [{"iteration": 50, "train_seconds": 10.0, "psnr_mask": 30.0}, {"iteration": 100, "train_seconds": 20.0, "psnr_mask": 32.0}]
    _run(folder, "gaussian_6", "noisy", 24.4)
    _run(folder, "gaussian_6", "nlm", 31.0, h_factor=0.8)
    _run(folder, "gaussian_6", "bm3d", 32.7)
    recipe = {"learning_rate": 0.008, "autocast_dtype": "bfloat16", "curve": curve, "train_seconds": 20.0}
    _run(folder, "gaussian_6", "c2s", 34.5, metrics_flips4={"held_out": {"psnr_mask": 34.8}}, **recipe)
    _run(folder, "gaussian_6", "noise2self", 29.0, **recipe)
    _run(folder, "gaussian_6", "supervised", 34.8, **recipe)
    (folder / "speed.json").write_text(json.dumps({
        "c2s_flips1_float32_s": 8.0, "c2s_flips1_bfloat16_s": 6.0, "c2s_flips4_float32_s": 32.0, "c2s_flips4_bfloat16_s": 24.0,
        "nlm_s": 5.0, "bm3d_s": 200.0, "bm3d_slices_timed": 5, "train_iterations_per_s_float32": 3.5,
        "train_iterations_per_s_bfloat16": 5.7, "peak_rss_mib": 1500.0, "bundle_autocast": "bfloat16",
    }))
    target = folder / "report.md"
    target.write_text("# Benchmarks\n\nhand-written text\n")
    write_report(folder, QUICK, target, "python -m benchmarks.run --quick", "abc1234")
    text = target.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written text") and START in text and END in text
    assert "| C2S >= best self-supervised peer + 0.5 dB (6% Gaussian, held-out) | +5.50 dB vs Noise2Self | yes |" in text
    assert "| C2S >= BM3D + 1.5 dB | +1.80 dB (+2.10 with 4 flips) | yes |" in text
    assert "| C2S within 0.5 dB of the supervised bound | 0.30 dB below | yes |" in text
    assert "| denoise 256x256x100 in <= 10 s on the CPU | 6.0 s (bundle default: no flips, bfloat16" in text
    assert "| >= 5x faster than BM3D | 33.3x | yes |" in text  # judged on the bundle's default precision
    assert "Adam 0.008, bfloat16 autocast" in text  # the recipe the runs recorded
    assert "after 20 s of one-thread training" in text  # first curve point above NLM's 31.0 dB
    assert (folder / "figures" / "benchmark_curves.png").is_file()
    write_report(folder, QUICK, target, "python -m benchmarks.run --quick", "def5678")  # regenerated in place
    text = target.read_text()
    assert text.count(START) == 1 and "def5678" in text and "abc1234" not in text


def test_report_names_the_commit_of_every_result(tmp_path):
    folder = tmp_path / "quick"
    _run(folder, "gaussian_6", "noisy", 24.4, commit="aaa1111")
    _run(folder, "gaussian_6", "nlm", 31.0, commit="aaa1111", h_factor=0.8)
    _run(folder, "gaussian_6", "bm3d", 32.7, commit="bbb2222")
    target = folder / "report.md"
    write_report(folder, QUICK, target, "python -m benchmarks.run --quick", "ccc3333")
    assert "at commits `aaa1111` (2 results), `bbb2222` (1 result)" in target.read_text()
    for method in ("nlm", "bm3d"):
        _run(folder, "gaussian_6", method, 31.0, commit="aaa1111")
    write_report(folder, QUICK, target, "python -m benchmarks.run --quick", "ccc3333")
    assert "at commit `aaa1111`" in target.read_text()


# ------------------------------------------------------------------------------- import graph

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _imports(folder: Path) -> dict[str, set[str]]:
    """``{module: benchmarks modules it imports}`` for every ``folder/*.py``, imports inside functions included."""
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for module in modules:
        imported = set()
        for node in ast.walk(ast.parse((folder / f"{module}.py").read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                relative = "benchmarks" + (f".{node.module}" if node.module else "")  # "from . import x", "from .x import y"
                base = relative if node.level else node.module or ""
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]  # "from benchmarks import run" imports a module
            else:
                continue
            imported |= {name.split(".")[1] for name in names if name.startswith("benchmarks.") and name.split(".")[1] in modules}
        graph[module] = imported - {module}
    return graph


def _drivers(folder: Path) -> set[str]:
    """The modules with an entry point (``if __name__ == "__main__":``): the benchmarks one runs, not libraries."""
    return {path.stem for path in folder.glob("*.py") if 'if __name__ == "__main__":' in path.read_text()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state and (found := visit(other, [*path, other])):
                return found
        state[module] = "done"
        return None

    return next((found for module in sorted(graph) if module not in state and (found := visit(module, [module]))), None)


def _violations(folder: Path) -> list[str]:
    graph, drivers = _imports(folder), _drivers(folder)
    problems = [f"{module} imports the driver {driver}" for module, imported in sorted(graph.items()) for driver in sorted(imported & drivers)]
    cycle = _cycle(graph)
    return problems + ([f"import cycle: {' -> '.join(cycle)}"] if cycle else [])


def test_benchmark_imports_are_acyclic_and_no_module_imports_a_driver():
    """Drivers import the reports and the shared modules, never the reverse; no module imports a driver."""
    graph, drivers = _imports(BENCHMARKS), _drivers(BENCHMARKS)
    assert {"run", "time_to_quality", "volumetric", "inference_speed", "multicontrast"} <= drivers
    assert not {"report", "ttq_report", "volumetric_report", "common"} & drivers
    assert {"report", "common"} <= graph["run"] and "ttq_report" in graph["time_to_quality"]  # the graph was read
    assert _violations(BENCHMARKS) == []


def test_the_import_check_finds_cycles_and_reports_importing_drivers(tmp_path):
    """The layout before issue 15: ``run`` <-> ``report`` (an import inside a function), a report importing a driver."""
    (tmp_path / "run.py").write_text('from benchmarks.common import metrics\n\ndef main():\n    from benchmarks.report import write_report\n\n'
                                     'if __name__ == "__main__":\n    main()\n')
    (tmp_path / "report.py").write_text("def figures():\n    from benchmarks.run import EXAMPLE_SLICE\n")
    (tmp_path / "ttq_report.py").write_text("from benchmarks import run\n")
    (tmp_path / "common.py").write_text("import json\n")
    assert _violations(tmp_path) == ["report imports the driver run", "ttq_report imports the driver run", "import cycle: report -> run -> report"]
