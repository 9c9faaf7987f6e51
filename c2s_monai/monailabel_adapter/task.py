"""A MONAI Label infer task that serves the C2S bundle and returns the denoised image.

MONAI Label's own ``monailabel.tasks.infer.bundle.BundleInferTask`` cannot be imported here:
it imports ``monailabel.transform.post``, which imports ``torchvision``, and no torchvision
build matches the CPU torch of this project (docs/monai-label.md). :class:`BundleDenoiseTask`
is built on ``BasicInferTask`` (which does not import torchvision) and reads the bundle the
way ``BundleInferTask`` does:

- ``configs/inference.json`` with ``monai.bundle.ConfigParser``, ``bundle_root`` set to the
  bundle folder; its ``network_def`` (the network, weights from ``ckpt_path``, by default
  ``models/model.pt``), ``preprocessing`` (the loading transforms), ``inferer``
  (:class:`c2s_monai.C2SInferer`) and ``postprocessing``;
- ``configs/metadata.json``: the first input and output keys of ``network_data_format``
  (``image``, ``pred``), ``description`` and ``version``.

It differs where a denoiser is not a segmenter: the task type is ``"others"`` with no labels,
and the result is the bundle's own ``postprocessing`` output (``SaveDenoisedd``: float32
NIfTI in the input's units, with the input's affine and header), written to a temporary
folder per request and handed to MONAI Label as the result file, never an integer label map.
The JSON result carries the noise level used (``sigma_data``, image units) and its source.

Per-request options (MONAI Label ``params``): ``sigma_data`` (a number in the image's units,
or ``"auto"``, ``"mad"``, ``"background"``), ``noise_model`` (``"auto"``, ``"gaussian"``, ``"rician"``,
``"noncentral_chi"``), ``num_coils``, ``sigma_map`` (``"none"`` or ``"auto"``: a per-voxel map
estimated from the image; a map file is not taken from a request), ``flips`` (1, 2 or 4) and ``slice_axis``
(``"auto"`` or 0, 1, 2: the axis the slices and their 2.5D context are taken along); their
defaults are the bundle's. The JSON result also says how the volume was denoised
(``volume``: network dimensions, slice axis, context and edge handling or 2D fallback, the
measured noise correlation) and on which device (``device``: where the network's weights were,
e.g. ``"cpu"`` or ``"cuda:0"``).

A request the task cannot serve is refused before anything is loaded, with a
``MONAILabelException`` that the server answers as a 4xx (``server.monailabel_error``): an
empty image path or one that does not exist (``ImageNotFoundException``, 404; the empty path
would otherwise be read as the working directory), a bad ``sigma_data``, ``flips`` or
``slice_axis``, or a ``device`` this machine does not have (``MONAILabelError.INVALID_INPUT``,
400; ``"cuda"`` on a machine without CUDA is refused, not run on the CPU).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose
from monailabel.interfaces.exception import ImageNotFoundException, MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.utils.others.generic import device_map

from c2s_monai.context import AUTO
from c2s_monai.estimation import ESTIMATORS
from c2s_monai.inferers import FLIP_ENSEMBLES, C2SInferer, denoising_record
from c2s_monai.naming import NOISE_MAP_POSTFIX
from c2s_monai.noise_level import SIGMA_MAP_MODES, check_noise_model, check_num_coils

__all__ = ["BundleDenoiseTask", "anchor_macro_paths", "request_device"]

logger = logging.getLogger(__name__)

CONFIG_FILE = Path("configs") / "inference.json"
METADATA_FILE = Path("configs") / "metadata.json"
REQUEST_OPTIONS = ("sigma_data", "flips", "slice_axis", "noise_model", "num_coils", "sigma_map")
OUTPUT_DIR_KEY = "c2s_output_dir"
DEVICE_KEY = "c2s_device"
NOTHING_DONE = "nothing was denoised."


def anchor_macro_paths(config: Any, root: Path) -> Any:
    """Make the file paths of MONAI ``%file#id`` macros in ``config`` absolute, relative to ``root``.

    The bundle's own configs stand alone (no macros); a user's bundle may still import
    ``%configs/other.json#key``, a path MONAI resolves against the working directory, where a
    server is not started.
    """
    if isinstance(config, Mapping):
        return {key: anchor_macro_paths(value, root) for key, value in config.items()}
    if isinstance(config, list):
        return [anchor_macro_paths(value, root) for value in config]
    if isinstance(config, str) and config.startswith("%"):
        path, _ = ConfigParser.split_path_id(config[1:])
        if path and not Path(path).is_absolute():
            return "%" + str(root / path) + config[1 + len(path) :]
    return config


def _request_value(name: str, value: Any) -> float | int | str:
    """A per-request option as sent over HTTP (numbers may come as strings), checked.

    Only numbers and the estimator names pass: a string reaching the config parser could be a
    ``$`` expression, which MONAI would evaluate.
    """
    if name == "flips":
        if str(value).strip() not in {str(flips) for flips in FLIP_ENSEMBLES}:
            raise ValueError(f"flips must be one of {tuple(FLIP_ENSEMBLES)}, got {value!r}.")
        return int(value)
    if name == "slice_axis":
        if str(value).strip().lower() == AUTO:
            return AUTO
        if str(value).strip() not in {"0", "1", "2"}:
            raise ValueError(f"slice_axis must be 'auto' or 0, 1, 2, got {value!r}.")
        return int(value)
    if name == "noise_model":
        return check_noise_model(value)
    if name == "num_coils":
        return check_num_coils(value)
    if name == "sigma_map":
        # per request only the modes: a server path in a request would read any file on the server
        if str(value).strip().lower() not in SIGMA_MAP_MODES:
            raise ValueError(f"sigma_map must be one of {SIGMA_MAP_MODES} in a request, got {value!r}.")
        return str(value).strip().lower()
    if isinstance(value, str) and value.strip() in ESTIMATORS:
        return value.strip()
    try:
        sigma = float(value)
    except (TypeError, ValueError):
        sigma = float("nan")
    if not sigma > 0 or sigma == float("inf"):
        raise ValueError(f"sigma_data must be a number > 0 (image units) or one of {ESTIMATORS}, got {value!r}.")
    return sigma


def request_device(value: Any) -> str:
    """The torch device a request's ``device`` names, refused when this machine does not have it.

    ``value`` is what MONAI Label passes: ``None`` (a GPU if there is one, else the CPU, as
    MONAI Label chooses), a name or a list whose first item is the name. A name is ``"cpu"``,
    ``"cuda"``, ``"cuda:<i>"`` or a GPU name of MONAI Label's device list (``/info/``).
    MONAI Label itself runs ``"cuda"`` on the CPU when there is no CUDA; here it is refused.
    """
    name = value[0] if isinstance(value, (list, tuple)) and value else value
    if name is None or not str(name).strip():
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(name).strip()
    available = {"cpu": "cpu"}
    if torch.cuda.is_available():
        available.update({"cuda": "cuda", **{f"cuda:{index}": f"cuda:{index}" for index in range(torch.cuda.device_count())}})
        available.update(device_map())  # GPU names -> cuda, cuda:<i>
    for key in (name, name.lower()):
        if key in available:
            return available[key]
    no_cuda = "" if torch.cuda.is_available() else " (CUDA is not available)"
    raise MONAILabelException(
        MONAILabelError.INVALID_INPUT, f"device {name!r} is not available on this server{no_cuda}: use one of {sorted(available)}; {NOTHING_DONE}"
    )


class BundleDenoiseTask(BasicInferTask):
    """Serve the C2S bundle at ``bundle_path`` in MONAI Label (see the module docstring).

    Args:
        bundle_path: the bundle folder (holds ``configs/`` and ``models/``). Its configs'
            ``%`` macro paths are taken relative to its parent folder.
        ckpt_path: weights to serve instead of the bundle's ``ckpt_path``
            (``<bundle>/models/model.pt``); they must fit the bundle's ``network_def``.
        kwargs: passed to ``BasicInferTask`` (``preload``, ``config``...).
    """

    def __init__(self, bundle_path: str | os.PathLike, ckpt_path: str | os.PathLike | None = None, **kwargs) -> None:
        self.bundle_path = Path(bundle_path).resolve()
        config_file = self.bundle_path / CONFIG_FILE
        metadata_file = self.bundle_path / METADATA_FILE
        for required in (config_file, metadata_file):
            if not required.is_file():
                raise FileNotFoundError(f"{required}: missing; bundle_path must be a C2S bundle folder (holding configs/ and models/).")
        content = anchor_macro_paths(ConfigParser.load_config_file(str(config_file)), self.bundle_path.parent)
        self.parser = ConfigParser()
        self.parser.read_config(content)
        self.parser["bundle_root"] = str(self.bundle_path)
        if ckpt_path is not None:
            self.parser["ckpt_path"] = str(Path(ckpt_path).resolve())
        self._lock = threading.Lock()

        metadata = ConfigParser.load_config_file(str(metadata_file))
        input_key = next(iter(metadata["network_data_format"]["inputs"]))
        output_key = next(iter(metadata["network_data_format"]["outputs"]))
        self.version = metadata.get("version")
        model_path = str(self.parser.get_parsed_content("ckpt_path"))
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"{model_path}: no weights to serve; train the bundle or pass ckpt_path.")
        defaults = {name: self.parser.get_parsed_content(name) for name in REQUEST_OPTIONS}
        super().__init__(
            path=model_path,
            network=self.parser.get_parsed_content("network_def", instantiate=True),
            type=InferType.OTHERS,
            labels=[],
            dimension=3,  # whole volumes in, denoised slice by slice by the inferer
            description=metadata.get("description", "C2S self-supervised MRI denoising"),
            input_key=input_key,
            output_label_key=output_key,
            config={**defaults, **kwargs.pop("config", {})},
            load_strict=True,
            **kwargs,
        )

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["version"] = self.version
        info["output"] = "image: the denoised volume, float32 NIfTI in the input's units"
        return info

    def check_request(self, request: Mapping[str, Any]) -> str:
        """Refuse a request this task cannot serve (module docstring), before anything is loaded.

        Returns the torch device to run on (:func:`request_device`).
        """
        merged = {**self._config, **request}
        image = merged.get("image")
        if isinstance(image, str) and (not image.strip() or not os.path.exists(image)):
            problem = "no image given (an empty path)" if not image.strip() else "no such file or folder on the server"
            raise ImageNotFoundException(f"image {image!r}: {problem}; {NOTHING_DONE}")
        for name in REQUEST_OPTIONS:
            if merged.get(name) is not None:
                try:
                    _request_value(name, merged[name])
                except ValueError as error:
                    raise MONAILabelException(MONAILabelError.INVALID_INPUT, f"{str(error).rstrip('.')}; {NOTHING_DONE}") from error
        return request_device(merged.get("device"))

    def __call__(self, request, callbacks=None):
        """Check the request (:meth:`check_request`), then run it on the device it names."""
        device = self.check_request(request)
        return super().__call__({**request, "device": device}, callbacks)

    def _parsed(self, key: str, overrides: Mapping[str, Any] | None = None) -> Any:
        with self._lock:
            for name, value in (overrides or {}).items():
                self.parser[name] = value
            return self.parser.get_parsed_content(key, instantiate=True, lazy=not overrides)

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return list(self._parsed("preprocessing").transforms)

    def inferer(self, data=None) -> C2SInferer:
        data = data if data is not None else {}
        overrides = {name: _request_value(name, data[name]) for name in REQUEST_OPTIONS if data.get(name) is not None}
        inferer = self._parsed("inferer", overrides)
        return inferer

    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        """``BasicInferTask.run_inferer``, recording the device the network's weights were on."""
        data = super().run_inferer(data, convert_to_batch=convert_to_batch, device=device)
        network = self._get_network(device, data)  # cached by the run above
        weights = next(network.parameters(), None) if isinstance(network, torch.nn.Module) else None
        data[DEVICE_KEY] = str(weights.device if weights is not None else torch.device(device))
        return data

    def post_transforms(self, data=None) -> Sequence[Callable]:
        """The bundle's postprocessing, writing NIfTI into a folder of this request."""
        data = data if data is not None else {}
        data[OUTPUT_DIR_KEY] = tempfile.mkdtemp(prefix="c2s_monailabel_")
        postprocessing = self._parsed("postprocessing", {"output_dir": data[OUTPUT_DIR_KEY], "dicom_output": False})
        return list(postprocessing.transforms if isinstance(postprocessing, Compose) else postprocessing)

    def run_post_transforms(self, data: dict[str, Any], transforms):
        try:
            return super().run_post_transforms(data, transforms)
        except Exception:
            shutil.rmtree(data.get(OUTPUT_DIR_KEY, ""), ignore_errors=True)
            raise

    def writer(self, data: dict[str, Any], extension=None, dtype=None) -> tuple[str, dict[str, Any]]:
        """Move the image the bundle wrote to a temporary file MONAI Label sends and then deletes."""
        folder = Path(data.pop(OUTPUT_DIR_KEY))
        try:
            written = sorted(p for p in folder.glob("*.nii.gz") if not p.name.endswith(f"_{NOISE_MAP_POSTFIX}.nii.gz"))
            if len(written) != 1:
                raise RuntimeError(
                    f"{self.bundle_path / CONFIG_FILE}: postprocessing wrote {[p.name for p in written]} into {folder}, "
                    "expected one NIfTI file (SaveDenoisedd with output_dir and dicom_output false)."
                )
            handle, result = tempfile.mkstemp(suffix=".nii.gz", prefix="c2s_denoised_")
            os.close(handle)
            shutil.move(str(written[0]), result)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        result_json: dict[str, Any] = {"output": "denoised image (float32 NIfTI, the input's units)"}
        result_json.update(denoising_record(data.get(self.output_label_key)))
        result_json["device"] = str(data.get(DEVICE_KEY, data.get("device")))
        logger.info("denoised %s -> %s (%s)", data.get("image_path"), result, result_json)
        return result, result_json
