"""Mixed-precision settings: ``"auto"`` picks bfloat16 only where it is native."""

import pytest
import torch

from c2s_monai import precision
from c2s_monai.engines.trainer import GDSMIteration
from c2s_monai.inferers import C2SInferer


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_follows_native_support(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "native_bfloat16", lambda device_type: native)
    assert precision.autocast_dtype("auto", "cpu") is expected


def test_explicit_settings_and_unknown_name():
    assert precision.autocast_dtype("float32", "cpu") is None
    assert precision.autocast_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="autocast_dtype must be one of"):
        precision.autocast_dtype("half", "cpu")
    with pytest.raises(ValueError, match="autocast_dtype must be one of"):
        GDSMIteration(autocast_dtype="half")
    assert precision.native_bfloat16("mps") is False


def test_inferer_auto_matches_bfloat16_when_native(monkeypatch):
    """With native bfloat16 reported, 'auto' runs the network in bfloat16; without it, in float32."""
    seen = []

    class Network(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
            return x[:, :1]

    network = Network()

    image = torch.rand(1, 1, 32, 32)
    for native in (True, False):
        monkeypatch.setattr(precision, "native_bfloat16", lambda device_type, native=native: native)
        C2SInferer(sigma_data=0.1, flips=1, autocast_dtype="auto")(image, network)
    assert seen == [torch.bfloat16, torch.float32]


@pytest.mark.parametrize(
    "flags, expected",
    [({"avx2", "avx512f", "avx512_bf16"}, True), ({"amx_tile", "amx_bf16"}, True), ({"avx2", "avx512f"}, False), (set(), False)],
)
def test_cpu_native_bfloat16_reads_the_cpu_flags(monkeypatch, flags, expected):
    """AMD Zen 4 (AVX512-BF16) and Intel AMX count as native; AVX512 without BF16 does not."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset(flags))
    assert precision.native_bfloat16("cpu") is expected
