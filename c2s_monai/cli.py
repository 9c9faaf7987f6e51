"""Command line: ``c2s-monai demo|train|denoise|train-multicontrast|denoise-multicontrast|estimate-sigma|export-onnx``.

    c2s-monai demo --output_dir runs/demo

    c2s-monai train scans/*.nii.gz --output_dir runs/t1 --epochs 20
    c2s-monai train dicom/series_01/ knee.h5 --h5_key reconstruction_rss --output_dir runs/t1
    c2s-monai denoise scans/ new_scan.nii.gz --model runs/t1/model.pt --output_dir denoised/
    c2s-monai denoise dicom/series_01/ --model runs/t1/model.pt --dicom_output true
    c2s-monai denoise dwi.nii.gz --model runs/t1/model.pt --each_volume true
    c2s-monai train-multicontrast subjects.csv --output_dir runs/mc --epochs 20
    c2s-monai denoise-multicontrast subjects.csv --model runs/mc --output_dir denoised/
    c2s-monai estimate-sigma scan.nii.gz --method background
    c2s-monai export-onnx runs/t1/model.pt --output runs/t1/model.onnx

(also ``python -m c2s_monai ...``). Each subcommand's options are the keywords of the API
function it runs (:func:`c2s_monai.train`, :func:`c2s_monai.denoise`, ...), read from that
function's source with :mod:`ast` (so ``--help`` imports neither torch nor MONAI), with their
defaults from the signature, i.e. from :mod:`c2s_monai.defaults`; ``c2s-monai CMD --help``
lists them all. A mistyped or bad option is a usage error (exit status 2) naming it.

Inputs are read and outputs written as the bundle does
(:class:`~c2s_monai.io.readers.LoadVolumed`, :class:`~c2s_monai.io.writers.SaveDenoisedd`):
NIfTI files, DICOM series folders, HDF5 files (``--h5_key``, default ``reconstruction_rss``)
and folders of them; ``--dicom_output true`` writes a DICOM series input as the series folder
``<series>_denoised/``. ``denoise`` and ``denoise-multicontrast`` go on past a bad
input (subject), write a JSON summary of every input at the end and exit with status 1 if any
failed. A bad input, model or setting ends any command with one ``error: ...`` line (exit
status 1) instead of a traceback.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from c2s_monai import defaults
from c2s_monai.settings import parse_flag

SUMMARY_FILE = "c2s-monai-denoise-summary.json"
_PACKAGE = Path(__file__).resolve().parent

# ------------------------------------------------------------------ the API's signatures, without importing it

# Short help for the keywords whose docstring has no ``Args:`` entry.
HELP = {
    "output_dir": "folder of the outputs",
    "sigma_data": "noise std in the images' units, or 'auto' (estimated per volume: Rayleigh background or wavelet MAD)",
    "noise_model": "the data's noise: auto (magnitude with an air background -> Rician/noncentral-chi VST, else gaussian), gaussian, rician or noncentral_chi; denoise: none = as trained",
    "num_coils": "coils of a root-sum-of-squares magnitude (noncentral chi), or 'auto' (estimated from the background)",
    "sigma_map": "noise level per voxel: none (one per volume), auto (estimated map) or a map file on the image grid (train: one per file)",
    "epochs": "training epochs",
    "iterations_per_epoch": "training iterations per epoch",
    "patch_size": "side of the training patches",
    "batch_size": "patches per training batch",
    "learning_rate": "peak learning rate",
    "warmup_iterations": "iterations of learning-rate warm-up",
    "ema_momentum": "momentum of the weights' exponential moving average",
    "features": "U-Net feature widths, JSON list or comma-separated",
    "conditioning": "noise conditioning of the network: map or map+film",
    "tau_max": "largest re-corruption level, relative to sigma_data",
    "sigma_target_ratio": "target noise level as a share of sigma_data (0: clean)",
    "max_weight": "cap of the loss weight",
    "autocast_dtype": "autocast precision: auto, bfloat16 or float32",
    "device": "torch device, e.g. cpu or cuda:0",
    "seed": "random seed",
    "progress": "show a progress bar (true/false)",
    "resample_guides": "resample guide contrasts on another grid onto the target's (true/false)",
    "pretrained": "model.pt whose weights training starts from (fine-tuning)",
    "rician_vst": "the 0.6 flag for --noise_model rician (true/false)",
    "context_slices": "neighbouring slices on each side of the target slice, or 'auto'",
    "spatial_dims": "2 (slices with context) or 3 (a native 3D network)",
    "slice_axis": "axis of the slices: 0, 1, 2 or 'auto' (largest voxel spacing; denoise: none = as trained)",
    "context_dropout": "share of training patches whose context is zeroed",
    "h5_key": "dataset read from HDF5 inputs",
    "flips": "test-time flips averaged per slice: 1, 2 or 4",
    "each_volume": "denoise a 4D series volume by volume, each at its own noise level (true/false)",
    "dicom_output": "write each DICOM series input as the DICOM series folder <series>_denoised (true/false)",
    "report": "also write the QA figure and JSON report beside each output (true/false)",
    "model": "the weights (model.pt)",
    "summary": "JSON summary of every input (default <output_dir>/summary.json, or ./" + SUMMARY_FILE + ")",
    "method": "noise estimator",
    "output": "output .onnx file (default: <model>.onnx)",
    "opset": "ONNX opset version",
    "example_size": "side of the example input traced by the exporter (a multiple of 16)",
}


class Parameter:
    """One keyword of an API function as its source declares it: name, annotation text, default."""

    def __init__(self, name: str, annotation: str, default: Any, has_default: bool) -> None:
        self.name, self.annotation, self.default, self.has_default = name, annotation, default, has_default


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return constants


def _evaluate(node: ast.expr, constants: dict[str, Any]) -> Any:
    """A default as written in the source: a literal, ``defaults.NAME`` or a module constant."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "defaults":
        return getattr(defaults, node.attr)
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    return ast.literal_eval(node)


@cache
def _source(module: str) -> tuple[ast.Module, dict[str, Any]]:
    tree = ast.parse((_PACKAGE / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    return tree, _module_constants(tree)


def api_signature(module: str, function: str) -> tuple[list[Parameter], dict[str, str]]:
    """The parameters of ``c2s_monai.<module>.<function>`` and its docstring's ``Args:`` texts, read from the source."""
    tree, constants = _source(module)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    positional = node.args.posonlyargs + node.args.args
    padded: list[ast.expr | None] = [None] * (len(positional) - len(node.args.defaults)) + list(node.args.defaults)
    pairs = list(zip(positional, padded)) + list(zip(node.args.kwonlyargs, node.args.kw_defaults))
    parameters = [
        Parameter(arg.arg, ast.unparse(arg.annotation) if arg.annotation else "", None if default is None else _evaluate(default, constants), default is not None)
        for arg, default in pairs
    ]
    return parameters, _docstring_args(ast.get_docstring(node) or "")


def module_constant(module: str, name: str) -> Any:
    return _source(module)[1][name]


def _docstring_args(docstring: str) -> dict[str, str]:
    """``{name: text}`` of a Google-style ``Args:`` section (a line ``a, b: text`` gives both names)."""
    found: dict[str, str] = {}
    lines = docstring.splitlines()
    if "Args:" not in [line.strip() for line in lines]:
        return found
    start = [line.strip() for line in lines].index("Args:") + 1
    current: list[str] = []
    indent = None
    for line in lines[start:]:
        if not line.strip():
            break
        width = len(line) - len(line.lstrip())
        indent = width if indent is None else indent
        if width < indent:
            break
        match = re.match(r"^\s*([\w, ]+):\s*(.*)$", line) if width == indent else None
        if match:
            current = [name.strip() for name in match.group(1).split(",")]
            for name in current:
                found[name] = match.group(2)
        else:
            for name in current:
                found[name] += " " + line.strip()
    return {name: _plain(text) for name, text in found.items()}


def _plain(text: str, escape: bool = True) -> str:
    """Docstring text as help text: roles and literals plain; ``%`` escaped for a help string."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "'")
    return text.replace("%", "%%") if escape else text


# ------------------------------------------------------------------ value types


def _flag(text: str) -> bool | None:
    if str(text).strip().lower() in ("none", "null"):
        return None
    try:
        return parse_flag(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from error


def _number_or_text(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        if text.strip().lower() in ("none", "null"):
            return None
        try:
            return kind(text)
        except ValueError:
            return text

    convert.__name__ = f"{kind.__name__} or text"
    return convert


def _int_list(text: str) -> list[int]:
    try:
        value = json.loads(text) if text.strip().startswith("[") else [int(item) for item in text.split(",") if item.strip()]
        return [int(item) for item in value]
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(f"expected a JSON list or comma-separated integers, got {text!r}") from error


def _sigma_setting(text: str) -> Any:
    """One sigma_data value (a number or 'auto'), or a JSON ``{contrast: value}``."""
    if text.strip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected a JSON object {{contrast: sigma}}, got {text!r}") from error
    return _number_or_text(float)(text)


def _optional_text(text: str) -> str | None:
    return None if text.strip().lower() in ("none", "null") else text


def _value_type(parameter: Parameter) -> tuple[Callable[[str], Any], str | None]:
    """The converter and metavar of a keyword, from its annotation and default."""
    annotation = parameter.annotation.replace(" ", "")
    kinds = set(re.split(r"[|\[\],]", annotation)) - {""}
    if "bool" in kinds:
        return _flag, "{true,false}"
    if annotation.startswith("Sequence[int]"):
        return _int_list, "INTS"
    if "Mapping" in kinds and parameter.name == "sigma_data":
        return _sigma_setting, None
    if annotation in ("int", "float"):
        return (int if annotation == "int" else float), None
    if "int" in kinds and "str" in kinds:
        return _number_or_text(int), None
    if "float" in kinds and "str" in kinds:
        return _number_or_text(float), None
    return _optional_text, None


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(str(item) for item in value)
    return str(value)


def _add_options(parser: _Parser, parameters: Sequence[Parameter], docs: dict[str, str], overrides: dict[str, Any] | None = None) -> None:
    """One ``--name`` per keyword; unset options are not passed, so the API's own defaults apply."""
    overrides = overrides or {}
    for parameter in parameters:
        default = overrides.get(parameter.name, parameter.default)
        convert, metavar = _value_type(parameter)
        meaning = docs.get(parameter.name) or HELP.get(parameter.name, "see the API function's docstring")
        parser.add_argument(
            f"--{parameter.name}", type=convert, metavar=metavar, default=argparse.SUPPRESS,
            help=f"{meaning} (default: {_shown(default)})",
        )
        parser.option_defaults[parameter.name] = default


# ------------------------------------------------------------------ the commands


def _train(*files: str, output_dir: str = "runs/c2s", **options):
    """Train on noisy volumes: NIfTI or HDF5 files (``--h5_key``), DICOM series folders, folders of them; every keyword of ``c2s_monai.train`` is an option."""
    from c2s_monai.api import train

    return str(train(list(files), output_dir, **options))


def _denoise(*inputs: str, model: str, output_dir: str | None = None, summary: str | None = None, **options):
    """Denoise each input (files or folders) with the weights ``model``; writes ``<name>_denoised.nii.gz``.

    ``--dicom_output true`` writes each DICOM series as a DICOM series folder ``<series>_denoised``
    (other inputs as NIfTI, with a warning); ``--h5_key`` names the HDF5 dataset. Every keyword
    of ``c2s_monai.denoise`` is an option.

    The summary goes to ``summary`` (default ``<output_dir>/summary.json``, or
    ``./c2s-monai-denoise-summary.json`` without an output_dir).
    """
    from c2s_monai.api import denoise_files
    from c2s_monai.errors import InputError

    if not inputs:
        raise InputError("no input was given: c2s-monai denoise FILE_OR_FOLDER ... --model MODEL.")
    summary = summary or (str(Path(output_dir) / "summary.json") if output_dir else SUMMARY_FILE)
    result = denoise_files(list(inputs), model, output_dir=output_dir, summary_file=summary, **options)
    result.check()
    return [r["output"] for r in result.as_dict()["results"]]


def _train_multicontrast(datalist: str, output_dir: str = "runs/c2s_multicontrast", **options):
    """Train one network per target contrast on a datalist (JSON/CSV of each subject's contrasts): ``<output_dir>/<contrast>/model.pt``.

    Options: ``contrasts`` (channel order), ``targets``, ``sigma_data`` (one value or
    ``{contrast: value}``), ``resample_guides``, and every keyword of ``c2s_monai.train``.
    """
    from c2s_monai.api import train_multicontrast

    return {target: str(path) for target, path in train_multicontrast(datalist, output_dir, **options).items()}


def _denoise_multicontrast(datalist: str, model: str, output_dir: str | None = None, summary: str | None = None, **options):
    """Denoise every contrast of every subject of a datalist, each guided by the others (joint mode).

    ``model`` is the folder ``train-multicontrast`` wrote (``<model>/<contrast>/model.pt``).
    Options: ``contrasts``, ``targets``, ``sigma_data``, ``flips``, ``resample_guides``, ``device``.
    """
    from c2s_monai.api import denoise_subjects

    summary = summary or (str(Path(output_dir) / "summary.json") if output_dir else SUMMARY_FILE)
    result = denoise_subjects(datalist, model, output_dir=output_dir, summary_file=summary, **options)
    result.check()
    return [r["output"] for r in result.as_dict()["results"]]


def _estimate_sigma(file: str, method: str = defaults.SIGMA_DATA, h5_key: str = defaults.H5_KEY) -> float:
    """Print the noise std of ``file`` (NIfTI, DICOM series, HDF5 dataset ``h5_key``) in its own units.

    ``method``: ``auto`` (the default, what denoising with ``sigma_data="auto"`` uses: the Rayleigh
    background estimator for a magnitude image with air around the object, else the wavelet MAD),
    ``mad`` or ``background``.
    """
    from c2s_monai.estimation import estimate_sigma
    from c2s_monai.io.readers import LoadVolume
    from c2s_monai.transforms import EnsureVolume

    return estimate_sigma(EnsureVolume(1)(LoadVolume(h5_key=str(h5_key))(file))[0], method)


def _export_onnx(model: str, output: str | None = None, opset: int | None = None, example_size: int = 64) -> str:
    """Export the weights ``model`` (network from its ``model_config.json``, if any) to ONNX (default ``<model>.onnx``)."""
    from c2s_monai.api import load_network
    from c2s_monai.export import ONNX_OPSET, export_onnx

    target = output if output is not None else str(Path(model).with_suffix(".onnx"))
    return str(export_onnx(load_network(model), target, ONNX_OPSET if opset is None else opset, example_size))


DEMO_OPTIONS = {"patch_size": 64, "iterations_per_epoch": 100}


def _demo(output_dir: str = "runs/demo", epochs: int = 3, **options):
    """Train briefly on dipy's real noisy ``S0_10slices`` scan, then denoise it into ``output_dir``."""
    from c2s_monai.api import denoise, train
    from c2s_monai.io import default_output_path
    from c2s_monai.io.sample_data import dipy_s0_path

    scan = dipy_s0_path()
    options = {**DEMO_OPTIONS, **options}
    model = train([scan], output_dir, epochs=epochs, **options)
    return str(denoise(scan, model, default_output_path(scan, output_dir)))


# ------------------------------------------------------------------ the parser


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--sigma` must not pass for `--sigma_data`
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.option_defaults: dict[str, Any] = {}  # what each API option shows as its default

    def unrecognized(self, extras: Sequence[str]) -> None:
        """Exit 2 naming the unknown options, with the closest known one as a hint."""
        known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        hints = []
        for extra in extras:
            if extra.startswith("-"):
                close = difflib.get_close_matches(extra.split("=")[0], known, n=2, cutoff=0.6)
                if close:
                    hints.append(f"did you mean {' or '.join(close)} (for {extra.split('=')[0]})?")
        self.error(f"unrecognized arguments: {' '.join(extras)}" + ("; " + " ".join(hints) if hints else "") + f"; see {self.prog} --help")


def _signature(module: str, function: str, skip: Sequence[str] = ()) -> tuple[list[Parameter], dict[str, str]]:
    parameters, docs = api_signature(module, function)
    return [p for p in parameters if p.name not in skip and p.has_default], docs


def build_parser() -> _Parser:
    """The ``c2s-monai`` parser: one subcommand per API function, its options from the function's signature."""
    parser = _Parser(prog="c2s-monai", description=_plain((__doc__ or "").split("\n\n(also")[0], escape=False))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, function: Callable, summary: str) -> _Parser:
        sub = commands.add_parser(name, help=summary, description=_plain(inspect.cleandoc(function.__doc__ or summary), escape=False))
        sub.set_defaults(_function=function, _parser=sub)
        return sub

    train_parameters, train_docs = _signature("api.training", "train", skip=("files", "output_dir", "channels"))

    sub = command("demo", _demo, "train briefly on dipy's noisy S0_10slices scan, then denoise it")
    sub.add_argument("--output_dir", default="runs/demo", help=f"{HELP['output_dir']} (default: %(default)s)")
    sub.add_argument("--epochs", type=int, default=3, help=f"{HELP['epochs']} (default: %(default)s)")
    _add_options(sub, [p for p in train_parameters if p.name != "epochs"], train_docs, DEMO_OPTIONS)

    sub = command("train", _train, "train a denoiser on noisy volumes (c2s_monai.train)")
    sub.add_argument("files", nargs="+", help="NIfTI/HDF5 files, DICOM series folders, folders of them")
    sub.add_argument("--output_dir", default="runs/c2s", help="folder of model.pt, model_config.json and checkpoints (default: %(default)s)")
    _add_options(sub, train_parameters, train_docs)

    denoise_parameters, denoise_docs = _signature("api.denoising", "denoise", skip=("input_file", "model", "output_file"))
    sub = command("denoise", _denoise, "denoise files and folders, going on past bad inputs (c2s_monai.denoise_files)")
    sub.add_argument("inputs", nargs="+", help="files, DICOM series folders, folders of them")
    sub.add_argument("--model", required=True, help=HELP["model"])
    sub.add_argument("--output_dir", default=None, help="folder of the outputs (default: beside each input)")
    sub.add_argument("--summary", default=None, help=HELP["summary"])
    _add_options(sub, denoise_parameters, denoise_docs)

    multi_parameters, multi_docs = _signature("api.training", "train_multicontrast", skip=("subjects", "output_dir"))
    sub = command("train-multicontrast", _train_multicontrast, "train one network per target contrast (c2s_monai.train_multicontrast)")
    sub.add_argument("datalist", help="JSON/CSV datalist of each subject's contrasts")
    sub.add_argument("--output_dir", default="runs/c2s_multicontrast", help="one sub-folder per target contrast (default: %(default)s)")
    _add_options(sub, multi_parameters, multi_docs)
    _add_options(sub, [p for p in train_parameters if p.name not in {p.name for p in multi_parameters}], train_docs)

    subject_parameters, subject_docs = _signature("api.subjects", "denoise_subject", skip=("files", "model", "output_dir", "subject"))
    sub = command("denoise-multicontrast", _denoise_multicontrast, "denoise every contrast of every subject of a datalist (c2s_monai.denoise_subjects)")
    sub.add_argument("datalist", help="JSON/CSV datalist of each subject's contrasts")
    sub.add_argument("--model", required=True, help="the folder train-multicontrast wrote (<model>/<contrast>/model.pt)")
    sub.add_argument("--output_dir", default=None, help="folder of the outputs (default: beside each input)")
    sub.add_argument("--summary", default=None, help=HELP["summary"])
    _add_options(sub, subject_parameters, subject_docs)

    sub = command("estimate-sigma", _estimate_sigma, "print the noise std of a scan in its own units")
    sub.add_argument("file", help="NIfTI file, DICOM series folder or HDF5 file")
    estimators = module_constant("estimation", "ESTIMATORS")
    sub.add_argument("--method", choices=estimators, default=defaults.SIGMA_DATA,
                     help=f"{HELP['method']}: {', '.join(estimators)}; auto is what denoising uses (default: %(default)s)")
    sub.add_argument("--h5_key", default=defaults.H5_KEY, help=f"{HELP['h5_key']} (default: %(default)s)")

    export_parameters, export_docs = _signature("export", "export_onnx", skip=("network", "path"))
    sub = command("export-onnx", _export_onnx, "export weights to ONNX (c2s_monai.export.export_onnx)")
    sub.add_argument("model", help=HELP["model"])
    sub.add_argument("--output", default=None, help=HELP["output"])
    _add_options(sub, export_parameters, export_docs)
    return parser


def _print(result: Any) -> None:
    if isinstance(result, dict):
        for key, value in result.items():
            print(f"{key}: {value}")
    elif isinstance(result, (list, tuple)):
        for value in result:
            print(value)
    elif result is not None:
        print(result)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    arguments, extras = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if extras:
        arguments._parser.unrecognized(extras)
    options = {k: v for k, v in vars(arguments).items() if k not in ("command", "_function", "_parser")}
    function = arguments._function
    positional = [options.pop(name) for name in ("files", "inputs") if name in options]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        result = function(*positional[0], **options) if positional else function(**options)
    except Exception as error:
        from c2s_monai.batch import BatchFailedError
        from c2s_monai.errors import InputError, root_cause

        cause = root_cause(error)
        if isinstance(cause, (InputError, FileNotFoundError, BatchFailedError)):
            sys.exit(f"error: {cause}")
        raise
    _print(result)


if __name__ == "__main__":
    main()
