"""Direct tests of SimulateNoisyd (synthetic-noise pairs) and EpochDataset (iteration-length epochs)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch.utils.data import DataLoader, DistributedSampler

from c2s_monai.data import EpochDataset
from c2s_monai.transforms import SimulateNoisyd

SHAPE = (1, 64, 64, 4)  # 16384 voxels: the std of a noise sample is within ~0.6 % of sigma


def _clean(name: str = "/data/knee.nii.gz", peak: float = 500.0) -> MetaTensor:
    """A reference with a zero background (left half) and a flat bright region at ``peak`` (right half)."""
    clean = torch.zeros(SHAPE)
    clean[:, 32:] = peak
    clean[:, 40:56, 16:48] = 0.5 * peak
    return MetaTensor(clean, meta={"filename_or_obj": name})


# ------------------------------------------------------------------ SimulateNoisyd


def test_simulate_noisy_makes_the_scaled_reference_and_the_noisy_image():
    clean = _clean()
    before = clean.clone()
    out = SimulateNoisyd("image", sigma=0.05)({"image": clean, "other": 3})
    assert set(out) == {"image", "label", "other"} and out["other"] == 3
    # label: the reference scaled to a peak of 1
    torch.testing.assert_close(torch.as_tensor(out["label"]), torch.as_tensor(before) / 500.0)
    assert float(out["label"].max()) == 1.0
    assert out["image"].shape == SHAPE and out["image"].dtype == torch.float32
    assert out["image"].meta["filename_or_obj"] == "/data/knee.nii.gz"  # the file name travels on
    torch.testing.assert_close(clean, before)  # the input is not modified in place


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_simulate_noisy_gaussian_noise_has_the_stated_std(sigma):
    out = SimulateNoisyd("image", sigma=sigma, noise_model="gaussian")({"image": _clean()})
    noise = (torch.as_tensor(out["image"]) - torch.as_tensor(out["label"])).double()
    assert float(noise.std()) == pytest.approx(sigma, rel=0.03)
    assert abs(float(noise.mean())) < 4 * sigma / math.sqrt(noise.numel())
    # additive: the background goes negative too (not a magnitude)
    assert float(noise[:, :32].min()) < -2 * sigma


def test_simulate_noisy_rician_noise_is_a_magnitude_of_the_stated_std():
    sigma = 0.05
    out = SimulateNoisyd("image", sigma=sigma, noise_model="Rician")({"image": _clean()})
    image = torch.as_tensor(out["image"]).double()
    assert float(image.min()) >= 0.0
    background = image[:, :32]  # reference 0: Rayleigh, E[M] = sigma sqrt(pi / 2), E[M^2] = 2 sigma^2
    assert float(background.mean()) == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.03)
    assert float((background**2).mean()) == pytest.approx(2 * sigma**2, rel=0.05)
    bright = image[:, 32:40] - 1.0  # reference 1 (SNR 20): nearly Gaussian of std sigma
    assert float(bright.std()) == pytest.approx(sigma, rel=0.05)


def test_simulate_noisy_is_a_fixed_function_of_the_file_name_and_the_seed():
    first = SimulateNoisyd("image", sigma=0.05, seed=7)({"image": _clean()})["image"]
    torch.manual_seed(12345)  # the global RNG plays no part
    again = SimulateNoisyd("image", sigma=0.05, seed=7)({"image": _clean()})["image"]
    transform = SimulateNoisyd("image", sigma=0.05, seed=7)
    twice = [transform({"image": _clean()})["image"] for _ in range(2)]  # the same at every epoch
    torch.testing.assert_close(torch.as_tensor(first), torch.as_tensor(again), rtol=0, atol=0)
    torch.testing.assert_close(torch.as_tensor(twice[0]), torch.as_tensor(twice[1]), rtol=0, atol=0)
    torch.testing.assert_close(torch.as_tensor(first), torch.as_tensor(twice[0]), rtol=0, atol=0)
    other_seed = SimulateNoisyd("image", sigma=0.05, seed=8)({"image": _clean()})["image"]
    other_file = SimulateNoisyd("image", sigma=0.05, seed=7)({"image": _clean("/data/brain.nii.gz")})["image"]
    assert not torch.equal(torch.as_tensor(first), torch.as_tensor(other_seed))
    assert not torch.equal(torch.as_tensor(first), torch.as_tensor(other_file))


def test_simulate_noisy_keys_and_integer_references():
    clean = MetaTensor(torch.as_tensor(np.asarray(_clean()), dtype=torch.int16), meta={"filename_or_obj": "a.nii.gz"})
    out = SimulateNoisyd("t2", sigma=0.1, reference_key="clean")({"t2": clean})
    assert set(out) == {"t2", "clean"}
    assert out["clean"].dtype == torch.float32 and out["t2"].dtype == torch.float32
    torch.testing.assert_close(torch.as_tensor(out["clean"]), torch.as_tensor(clean).float() / 500.0)
    assert SimulateNoisyd("t2", sigma=0.1, allow_missing_keys=True)({"t1": clean}) == {"t1": clean}
    with pytest.raises(KeyError):
        SimulateNoisyd("t2", sigma=0.1)({"t1": clean})


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan"), float("inf")])
def test_simulate_noisy_rejects_a_sigma_that_is_not_positive(sigma):
    with pytest.raises(ValueError, match="sigma"):
        SimulateNoisyd("image", sigma=sigma)


def test_simulate_noisy_rejects_an_unknown_noise_model_and_a_reference_without_signal():
    with pytest.raises(ValueError, match="noise_model must be one of"):
        SimulateNoisyd("image", sigma=0.1, noise_model="poisson")
    empty = MetaTensor(torch.zeros(SHAPE), meta={"filename_or_obj": "/data/blank.nii.gz"})
    with pytest.raises(ValueError, match=r"blank\.nii\.gz: the reference has no positive voxel"):
        SimulateNoisyd("image", sigma=0.1)({"image": empty})


# ------------------------------------------------------------------ EpochDataset


def test_epoch_dataset_cycles_through_the_dataset():
    volumes = ["a", "b", "c"]
    epoch = EpochDataset(volumes, 7)
    assert len(epoch) == 7
    assert [epoch[i] for i in range(len(epoch))] == ["a", "b", "c", "a", "b", "c", "a"]
    shorter = EpochDataset(volumes, 2)
    assert len(shorter) == 2 and [shorter[i] for i in range(2)] == ["a", "b"]
    single = EpochDataset(["only"], 5)
    assert [single[i] for i in range(5)] == ["only"] * 5


def test_an_epoch_is_length_items_however_many_volumes():
    epoch = EpochDataset([torch.tensor([k]) for k in range(3)], 10)
    batches = list(DataLoader(epoch, batch_size=1, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 10
    assert sorted(Counter(int(b) for b in batches).values()) == [3, 3, 4]


@pytest.mark.parametrize("length", [0, -3])
def test_epoch_dataset_rejects_a_length_below_one(length):
    with pytest.raises(ValueError, match="length must be >= 1"):
        EpochDataset(["a"], length)


def test_epoch_dataset_rejects_an_empty_dataset():
    with pytest.raises(ValueError, match="non-empty dataset"):
        EpochDataset([], 4)


def test_epoch_dataset_under_a_distributed_sampler():
    """iterations_per_epoch x world size items: every process gets iterations_per_epoch items, the
    volumes evenly mixed, in an order that changes with the epoch."""
    volumes, iterations_per_epoch, world_size = ["a", "b", "c"], 6, 2
    epoch_dataset = EpochDataset(volumes, iterations_per_epoch * world_size)
    samplers = [DistributedSampler(epoch_dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=0) for rank in range(world_size)]
    orders = {}
    for epoch in (0, 1):
        taken = []
        for rank, sampler in enumerate(samplers):
            sampler.set_epoch(epoch)
            items = [epoch_dataset[i] for i in sampler]
            assert len(sampler) == iterations_per_epoch and len(items) == iterations_per_epoch
            orders[epoch, rank] = items
            taken += items
        assert Counter(taken) == {"a": 4, "b": 4, "c": 4}  # each volume equally often across the processes
    assert any(orders[0, rank] != orders[1, rank] for rank in range(world_size))
