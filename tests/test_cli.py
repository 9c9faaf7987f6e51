"""The command line: every subcommand's ``--help`` lists every option of its API function with the
default from :mod:`c2s_monai.defaults` and exits 0; a bad or mistyped option is a usage error
(exit 2) naming it; ``estimate-sigma`` defaults to ``auto``, as denoising does (issue 17 items 1, 7)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from c2s_monai import defaults
from c2s_monai.api import denoise, denoise_subject, train, train_multicontrast
from c2s_monai.cli import _shown, build_parser, main
from c2s_monai.estimation import ESTIMATORS, estimate_sigma
from c2s_monai.export import export_onnx
from c2s_monai.io import load_volume
from c2s_monai.io.sample_data import dipy_s0_path

REPO = Path(__file__).resolve().parents[1]

# subcommand -> (API function, its keywords that are not options: inputs, outputs, internals)
COMMANDS = {
    "train": (train, {"files", "channels"}),
    "demo": (train, {"files", "channels"}),
    "denoise": (denoise, {"input_file", "model", "output_file"}),
    "train-multicontrast": (train_multicontrast, {"subjects", "options"}),
    "denoise-multicontrast": (denoise_subject, {"files", "model", "output_dir", "subject"}),
    "export-onnx": (export_onnx, {"network", "path"}),
}


def _help(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as raised:
        main([*argv, "--help"])
    assert raised.value.code == 0
    return capsys.readouterr().out


def _subparser(name: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


@pytest.mark.parametrize("command", [*COMMANDS, "estimate-sigma"])
def test_every_help_exits_0_and_lists_the_api_options_with_their_defaults(command, capsys, monkeypatch):
    text = " ".join(_help(capsys, monkeypatch, command).split())
    if command == "estimate-sigma":
        assert "--method {auto,mad,background}" in text and f"(default: {defaults.SIGMA_DATA})" in text
        return
    function, skipped = COMMANDS[command]
    sub = _subparser(command)
    for name, parameter in inspect.signature(function).parameters.items():
        if name in skipped or parameter.kind is parameter.VAR_KEYWORD:
            continue
        assert f"--{name}" in text, f"{command} --help does not list --{name}"
        action = next(a for a in sub._actions if f"--{name}" in a.option_strings)
        assert action.help and "default" in action.help
        if parameter.default is not parameter.empty and name not in sub.option_defaults and command != "demo":
            assert f"(default: {_shown(parameter.default)})" in " ".join(action.help.split()), name
        if name in sub.option_defaults and not (command == "demo" and name in ("patch_size", "iterations_per_epoch")):
            assert sub.option_defaults[name] == parameter.default, f"{command} --{name}: the API's default"
            assert f"(default: {_shown(parameter.default)})" in " ".join(action.help.split())


def test_denoise_help_names_the_settings_and_the_defaults_module(capsys, monkeypatch):
    text = " ".join(_help(capsys, monkeypatch, "denoise").split())
    for option in ("--sigma_data", "--each_volume", "--flips", "--device", "--rician_vst", "--model", "--output_dir", "--summary", "--h5_key"):
        assert option in text
    sub = _subparser("denoise")
    assert sub.option_defaults["sigma_data"] == defaults.SIGMA_DATA
    assert sub.option_defaults["flips"] == defaults.FLIPS
    assert sub.option_defaults["autocast_dtype"] == defaults.AUTOCAST_DTYPE
    assert sub.option_defaults["h5_key"] == defaults.H5_KEY
    assert _subparser("train").option_defaults["features"] == defaults.FEATURES


def test_top_level_help_lists_every_command(capsys, monkeypatch):
    text = _help(capsys, monkeypatch)
    for command in [*COMMANDS, "estimate-sigma"]:
        assert command in text


def test_a_mistyped_option_is_a_usage_error_naming_it(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["denoise", "scan.nii.gz", "--model", "model.pt", "--sigma", "10"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --sigma" in err and "did you mean" in err and "--sigma_data" in err.split("did you mean", 1)[1]
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["estimate-sigma", "scan.nii.gz", "--method", "foo"], "invalid choice: 'foo'"),
    (["denoise", "scan.nii.gz", "--model", "m.pt", "--flips", "many"], "--flips: invalid int value"),
    (["denoise", "scan.nii.gz", "--model", "m.pt", "--each_volume", "maybe"], "expected true or false"),
    (["train", "scan.nii.gz", "--features", "a,b"], "--features"),
    (["denoise", "scan.nii.gz"], "--model"),
])
def test_bad_values_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if "--method" in argv:
        assert "auto" in err and "mad" in err and "background" in err


def test_options_are_converted_as_the_api_takes_them():
    parser = build_parser()
    arguments = parser.parse_args(["train", "a.nii.gz", "--features", "8,8,16", "--progress", "false", "--sigma_data", "12.5",
                                   "--context_slices", "auto", "--learning_rate", "4e-3"])
    assert arguments.features == [8, 8, 16] and arguments.progress is False and arguments.sigma_data == 12.5
    assert arguments.context_slices == "auto" and arguments.learning_rate == 4e-3
    assert not hasattr(arguments, "epochs"), "an option not given is not passed: the API's default applies"
    arguments = parser.parse_args(["train", "a.nii.gz", "--features", "[8, 8, 16]", "--sigma_data", "auto"])
    assert arguments.features == [8, 8, 16] and arguments.sigma_data == "auto"
    arguments = parser.parse_args(["denoise-multicontrast", "list.csv", "--model", "m", "--sigma_data", '{"t1": 3, "t2": "auto"}'])
    assert arguments.sigma_data == {"t1": 3, "t2": "auto"}


def test_estimate_sigma_defaults_to_auto_as_denoising_does(capsys):
    assert "auto" in ESTIMATORS and defaults.SIGMA_DATA == "auto"
    scan = dipy_s0_path()
    main(["estimate-sigma", str(scan)])
    printed = float(capsys.readouterr().out.strip().splitlines()[-1])
    expected = estimate_sigma(load_volume(scan)[0], "auto")
    assert printed == pytest.approx(expected, rel=1e-6)
    main(["estimate-sigma", str(scan), "--method", "mad"])
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) < printed  # the MAD under-estimates magnitude images


def test_help_from_a_fresh_interpreter_exits_0_without_a_pager():
    command = [sys.executable, "-m", "c2s_monai", "denoise", "--help"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "PAGER": "false", "COLUMNS": "200"}, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--sigma_data" in result.stdout and "--rician_vst" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("module, function", [
    ("api.training", train), ("api.training", train_multicontrast), ("api.denoising", denoise),
    ("api.subjects", denoise_subject), ("export", export_onnx),
])
def test_the_signatures_read_from_the_source_are_the_functions_own(module, function):
    """--help reads the API's signatures with ast (no torch import): they must be what Python sees."""
    from c2s_monai.cli import api_signature

    parameters, _ = api_signature(module, function.__name__)
    expected = {n: p.default for n, p in inspect.signature(function).parameters.items() if p.kind is not p.VAR_KEYWORD}
    assert {p.name: (p.default if p.has_default else inspect.Parameter.empty) for p in parameters} == expected


def test_help_starts_without_loading_torch():
    """`c2s-monai <command> --help` imports neither torch nor MONAI (c2s_monai's names load on first use)."""
    script = (
        "import sys\n"
        "from c2s_monai.cli import main\n"
        "try:\n"
        "    main(['denoise', '--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-500:]


def test_training_shows_a_progress_bar_with_the_loss(tmp_path, capfd, model_and_input):
    """Long work shows progress: the API's training (and so `c2s-monai train` and `demo`) draws a bar with the loss."""
    from c2s_monai import train

    _, inputs = model_and_input
    train([inputs / "scan.nii.gz"], tmp_path / "run", epochs=1, iterations_per_epoch=3, patch_size=32, batch_size=2,
          features=(8, 8, 16, 32, 64, 8), sigma_data=0.1, context_slices=0, progress=True)
    err = capfd.readouterr().err
    assert "loss=" in err and "/3]" in err, err[-500:]
