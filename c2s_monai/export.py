"""Deployment exports of the noise-conditioned network ``D(x, s)``: ONNX, and an ONNX Runtime network.

The exported graph is the network alone, as for TorchScript (``python -m monai.bundle
ckpt_export``): it takes **one** float32 tensor ``(B, C + 1, H, W)`` (for a 2D network;
``(B, C + 1, H, W, D)`` for 3D), the image channels in network units followed by the
noise-level map, and returns ``(B, 1, H, W)``. Every spatial size must be a multiple of 16
(``BasicUNet`` pools four times); scaling the image, choosing ``sigma_data``, padding and
slicing are the inferer's job (:class:`c2s_monai.C2SInferer`), which runs an exported model
through :class:`OnnxNetwork` exactly as it runs the eager one.

ONNX: opset :data:`ONNX_OPSET` (18) with PyTorch's ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``, the default since PyTorch 2.9; it needs
``onnxscript``), batch and spatial axes dynamic, weights stored inside the one ``.onnx`` file.
The network's layout (``spatial_dims``, ``in_channels``, ``context_slices``) is stored in the
file's metadata, so :class:`OnnxNetwork` tells the inferer which context to stack, as the
eager and TorchScript networks do through their attributes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.export import Dim

from c2s_monai.io import atomic_write

__all__ = ["ONNX_OPSET", "OnnxNetwork", "cached_onnx", "export_onnx", "onnx_available"]

ONNX_OPSET = 18
SPATIAL_MULTIPLE = 16
INPUT_NAME = "image"
OUTPUT_NAME = "pred"
SPATIAL_AXIS_NAMES = ("height", "width", "depth")
# network attributes the inferer reads (C2SInferer: spatial_dims, context_slices), kept in the ONNX metadata
LAYOUT_ATTRIBUTES = ("spatial_dims", "in_channels", "context_slices")


def _network_channels(network: torch.nn.Module) -> tuple[int, int]:
    """Input channels (image channels + the level map) and spatial dims of a ``NoiseConditionedUNet``."""
    image_channels = getattr(network, "image_channels", getattr(network, "in_channels", None))
    backbone = getattr(network, "backbone", None)
    conv = getattr(getattr(getattr(backbone, "conv_0", None), "conv_0", None), "conv", None)
    if image_channels is None or conv is None:
        raise TypeError(f"export_onnx needs a c2s_monai.NoiseConditionedUNet, got {type(network).__name__}.")
    return int(image_channels) + 1, conv.weight.ndim - 2


def export_onnx(network: torch.nn.Module, path: str | os.PathLike, opset: int = ONNX_OPSET, example_size: int = 64) -> Path:
    """Export ``network`` (a :class:`~c2s_monai.NoiseConditionedUNet`) to the ONNX file ``path``.

    Args:
        network: the network; it is exported in eval mode on the CPU (a copy is not made:
            its mode and device are restored afterwards).
        path: output ``.onnx`` file, written atomically.
        opset: ONNX opset version (18 or later: the exporter's own opset).
        example_size: side of the example input traced by ``torch.export`` (a multiple of 16;
            the exported axes stay dynamic).

    Returns:
        ``path``. The graph's input is named ``"image"``, its output ``"pred"``; the batch and
        spatial axes are named ``batch``, ``height``, ``width`` (``depth`` for 3D).
    """
    if opset < ONNX_OPSET:
        raise ValueError(f"opset must be >= {ONNX_OPSET} (the torch.export-based exporter's opset), got {opset}.")
    if example_size < 2 * SPATIAL_MULTIPLE or example_size % SPATIAL_MULTIPLE:
        raise ValueError(f"example_size must be a multiple of {SPATIAL_MULTIPLE} and at least {2 * SPATIAL_MULTIPLE}, got {example_size}.")
    missing = [module for module in ("onnx", "onnxscript") if importlib.util.find_spec(module) is None]
    if missing:
        raise ModuleNotFoundError(f"export_onnx needs {' and '.join(missing)}: pip install 'c2s-monai[export]' (or onnx onnxscript).")
    channels, spatial_dims = _network_channels(network)
    # batch 2 and distinct spatial sizes: torch.export specialises axes of size 1 or equal sizes
    sizes = [example_size + SPATIAL_MULTIPLE * index for index in range(spatial_dims)]
    example = torch.rand(2, channels, *sizes)
    example[:, -1:] = 0.05
    axes = {0: Dim("batch"), **{2 + index: Dim(SPATIAL_AXIS_NAMES[index]) for index in range(spatial_dims)}}
    was_training, device = network.training, next(network.parameters()).device
    network.eval().cpu()
    # the exporter's notes are not the user's business: torchvision ops it cannot register (this
    # network uses none) and pytree deprecations; its errors still raise
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                network,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_shapes=(axes,),
                dynamo=True,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
        network.train(was_training).to(device)
    layout = {name: str(int(getattr(network, name))) for name in LAYOUT_ATTRIBUTES if hasattr(network, name)}

    def write(temporary: str) -> None:
        import onnx

        program.save(temporary, external_data=False)  # type: ignore[union-attr]  # export(dynamo=True) returns a program, never None
        model = onnx.load(temporary)
        onnx.helper.set_model_props(model, layout)
        onnx.save(model, temporary)

    return atomic_write(Path(path), write)


class OnnxNetwork(torch.nn.Module):
    """An exported ``.onnx`` network run by ONNX Runtime on the CPU, called like the torch network.

    ``OnnxNetwork("model.onnx")(x)`` takes and returns torch tensors and has the exported
    network's ``spatial_dims``, ``in_channels`` and ``context_slices``, so
    ``C2SInferer(...)(volume, OnnxNetwork("model.onnx"))`` and
    ``c2s_monai.denoise("scan.nii.gz", OnnxNetwork("model.onnx"))`` work without torch weights.

    Args:
        path: the ``.onnx`` file from :func:`export_onnx`.
        threads: ONNX Runtime intra-op threads (0: its default, one per core).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 0) -> None:
        super().__init__()
        import onnxruntime

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file; export one with c2s_monai.export.export_onnx.")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        layout = self.session.get_modelmeta().custom_metadata_map
        for name in LAYOUT_ATTRIBUTES:
            if name in layout:
                setattr(self, name, int(layout[name]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = np.ascontiguousarray(x.detach().cpu().float().numpy())
        (outputs,) = self.session.run(None, {self.input_name: inputs})
        return torch.from_numpy(outputs).to(x.device)


def onnx_available() -> bool:
    """Whether ONNX export and ONNX Runtime are installed (``pip install 'c2s-monai[export]'``)."""
    return all(importlib.util.find_spec(module) is not None for module in ("onnx", "onnxscript", "onnxruntime"))


def cache_folder() -> Path:
    """Where exported networks are kept: ``$C2S_MONAI_CACHE``, else ``$XDG_CACHE_HOME/c2s_monai``, else ``~/.cache/c2s_monai``."""
    if os.environ.get("C2S_MONAI_CACHE"):
        return Path(os.environ["C2S_MONAI_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "c2s_monai"


def network_digest(network: torch.nn.Module) -> str:
    """A hash of ``network``'s weights and layout (names, shapes, values), with the torch version that exports it."""
    digest = hashlib.sha256(torch.__version__.encode())
    for name in LAYOUT_ATTRIBUTES + ("use_map", "use_film", "data_scale"):
        digest.update(f"{name}={getattr(network, name, None)}".encode())
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def cached_onnx(network: torch.nn.Module, folder: str | os.PathLike | None = None) -> Path:
    """The ONNX file of ``network``: exported once into ``folder`` (:func:`cache_folder`), named by :func:`network_digest`.

    Weights that change (a network in training) get a new file; the same weights are exported once.
    """
    path = Path(folder or cache_folder()) / f"{network_digest(network)}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(network, path)
    return path
