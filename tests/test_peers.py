"""Peer losses of the benchmark (benchmarks/peers.py): the properties each method rests on.

Noise2Self never shows the network a hidden pixel; Neighbor2Neighbor pairs adjacent pixels
of one 2x2 cell and stops the gradient through f(y); R2R's pair has uncorrelated noise;
Noisier2Noise's correction recovers E[x | z] on a Gaussian prior; supervised training scores
the clean channel; every loss trains a real network.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmarks.peers import (
    PEER_LOSSES,
    Neighbor2NeighborLoss,
    Noise2SelfLoss,
    Noisier2NoiseLoss,
    Recorrupted2RecorruptedLoss,
    SupervisedLoss,
    UnconditionedNetwork,
    gdsm_denoise,
)
from c2s_monai.networks import NoiseConditionedUNet

torch.set_num_threads(2)
SIGMA = 0.1


class Spy(nn.Module):
    """Obeys the network contract; records its inputs and returns ``scale * image channel 0``."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.scale * x[:, :1]


class ScaleNet(nn.Module):
    """``f(x) = w * x``, one trainable weight, for closed-form gradients."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x[:, :1]


def tiny_unet(tiny_features) -> NoiseConditionedUNet:
    torch.manual_seed(0)
    return NoiseConditionedUNet(features=tiny_features)


def noisy_phantom(make_phantom, size: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.as_tensor(make_phantom((size, size)), dtype=torch.float32).expand(batch, 1, size, size).clone()
    generator = torch.Generator().manual_seed(seed)
    return clean, clean + SIGMA * torch.randn(clean.shape, generator=generator)


def batch_for(name: str, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The supervised loss takes the clean image as the last channel."""
    return torch.cat([noisy, clean], dim=1) if name == "supervised" else noisy


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- every loss


@pytest.mark.parametrize("name", sorted(PEER_LOSSES))
def test_loss_is_finite_scalar_with_gradients(name, tiny_features, make_phantom):
    network = tiny_unet(tiny_features)
    clean, noisy = noisy_phantom(make_phantom, 64)
    loss = PEER_LOSSES[name]()(network, batch_for(name, noisy, clean), torch.tensor([SIGMA, 0.8 * SIGMA]), seeded(1))
    assert loss.ndim == 0 and torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    first = network.backbone.conv_0.conv_0.conv.weight.grad
    last = network.backbone.final_conv.weight.grad
    for grad in (first, last):
        assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().sum()) > 0


@pytest.mark.parametrize("name", sorted(PEER_LOSSES))
@pytest.mark.parametrize("sigma", [0.0, -0.1, torch.tensor([0.1, 0.1, 0.1])])
def test_invalid_sigma_data_raises(name, sigma):
    noisy = torch.rand(2, 2, 32, 32)
    with pytest.raises(ValueError, match="sigma_data"):
        PEER_LOSSES[name]()(Spy(), noisy, sigma)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Noise2SelfLoss(grid_spacing=1),
        lambda: Noise2SelfLoss(grid_spacing=2.5),
        lambda: Neighbor2NeighborLoss(gamma=-1.0),
        lambda: Recorrupted2RecorruptedLoss(alpha=0.0),
        lambda: Recorrupted2RecorruptedLoss(inference_draws=0),
        lambda: Noisier2NoiseLoss(alpha=-1.0),
        lambda: UnconditionedNetwork(Spy(), level=0.0),
    ],
)
def test_invalid_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


def test_shape_requirements_raise():
    with pytest.raises(ValueError, match="even"):
        Neighbor2NeighborLoss()(Spy(), torch.rand(1, 1, 30, 31), SIGMA)
    with pytest.raises(ValueError, match="2D"):
        Noise2SelfLoss()(Spy(), torch.rand(1, 1, 8, 8, 8), SIGMA)
    with pytest.raises(ValueError, match="last channel"):
        SupervisedLoss()(Spy(), torch.rand(1, 1, 8, 8), SIGMA)


def test_single_pass_methods_denoise_like_c2s(tiny_features, make_phantom):
    network = tiny_unet(tiny_features).eval()
    _, noisy = noisy_phantom(make_phantom, 32)
    level_map = torch.full_like(noisy, SIGMA)
    with torch.no_grad():
        expected = network(torch.cat([noisy, level_map], dim=1))
    assert torch.equal(gdsm_denoise(network, noisy, SIGMA), expected)
    for peer in (Neighbor2NeighborLoss(), SupervisedLoss()):
        assert torch.equal(peer.denoise(network, noisy, SIGMA), expected)


def test_noise2self_inference_is_j_invariant(tiny_features, make_phantom):
    """Each output pixel comes from a pass that hid it: changing y at a pixel never changes its own output."""
    network = tiny_unet(tiny_features).eval()
    _, noisy = noisy_phantom(make_phantom, 32)
    loss = Noise2SelfLoss(grid_spacing=4)
    denoised = loss.denoise(network, noisy, SIGMA)
    changed = noisy.clone()
    changed[..., 9, 13] += 5.0
    denoised_changed = loss.denoise(network, changed, SIGMA)
    assert torch.equal(denoised[..., 9, 13], denoised_changed[..., 9, 13])
    assert not torch.equal(denoised, denoised_changed)  # the change does reach other pixels
    assert not torch.allclose(denoised, gdsm_denoise(network, noisy, SIGMA))


# ---------------------------------------------------------------------------- Noise2Self


def test_noise2self_mask_is_one_pixel_per_grid_cell_with_random_phase():
    loss = Noise2SelfLoss(grid_spacing=4)
    noisy = torch.zeros(64, 1, 32, 32)
    mask = loss.sample_mask(noisy, seeded(0))
    assert mask.shape == (64, 1, 32, 32) and mask.dtype == torch.bool
    cells = mask.reshape(64, 8, 4, 8, 4).sum(dim=(2, 4))
    assert torch.all(cells == 1)
    phases = {tuple(torch.nonzero(m[0])[0].tolist()) for m in mask}
    assert len(phases) >= 10  # 16 possible phases, 64 samples: a constant phase would give 1


def test_noise2self_interpolation_excludes_centre_and_is_normalised():
    loss = Noise2SelfLoss()
    constant = torch.full((1, 1, 8, 8), 0.7)
    assert torch.allclose(loss.interpolate(constant), constant)  # borders too
    ramp = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    assert torch.allclose(loss.interpolate(ramp)[..., 1:-1, 1:-1], ramp[..., 1:-1, 1:-1])  # linear, interior
    spike = torch.zeros(1, 1, 5, 5)
    spike[..., 2, 2] = 1.0
    assert float(loss.interpolate(spike)[..., 2, 2]) == 0.0  # the centre never contributes


def test_noise2self_hidden_pixels_never_reach_the_network():
    loss = Noise2SelfLoss()
    noisy = torch.rand(3, 2, 32, 32, generator=seeded(5))
    mask = loss.sample_mask(noisy, seeded(7))
    changed = noisy.clone()
    changed[:, :1][mask] += 10.0 * torch.rand(int(mask.sum()), generator=seeded(8))
    spy = Spy()
    value = loss(spy, noisy, SIGMA, seeded(7))
    value_changed = loss(spy, changed, SIGMA, seeded(7))
    assert torch.equal(spy.inputs[0], spy.inputs[1])  # hidden values replaced, identical inputs
    assert torch.equal(spy.inputs[0][:, 1:2], noisy[:, 1:2])  # the guide is passed as is
    assert torch.all(spy.inputs[0][:, 2] == SIGMA)

    # Independent re-computation: 8-neighbour weighted mean, scored on hidden pixels only.
    weights = torch.tensor([[0.5, 1.0, 0.5], [1.0, 0.0, 1.0], [0.5, 1.0, 0.5]])
    target = noisy[:, 0]
    padded = nn.functional.pad(target, (1, 1, 1, 1))
    inside = nn.functional.pad(torch.ones_like(target), (1, 1, 1, 1))
    total = sum(weights[i, j] * padded[:, i : i + 32, j : j + 32] for i in range(3) for j in range(3))
    norm = sum(weights[i, j] * inside[:, i : i + 32, j : j + 32] for i in range(3) for j in range(3))
    expected = ((total / norm - target)[mask[:, 0]] ** 2).mean()
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    assert float(value_changed) > float(value) + 1.0  # the hidden targets are what is scored


# ---------------------------------------------------------------------------- Neighbor2Neighbor


def test_neighbor2neighbor_pairs_adjacent_pixels_of_one_cell():
    loss = Neighbor2NeighborLoss()
    batch, height, width = 4, 16, 24
    code = torch.arange(height * width, dtype=torch.float32).reshape(1, 1, height, width).expand(batch, 1, -1, -1)
    image = torch.cat([code, code + 10_000], dim=1)  # a guide channel, coded the same
    index_1, index_2 = loss.sample_neighbours(image, seeded(3))
    g1 = loss.subsample(image, index_1)
    g2 = loss.subsample(image, index_2)
    assert g1.shape == g2.shape == (batch, 2, height // 2, width // 2)
    assert torch.equal(g1[:, 1], g1[:, 0] + 10_000)  # guides sub-sampled at the target's positions

    row1, col1 = g1[:, 0].long() // width, g1[:, 0].long() % width
    row2, col2 = g2[:, 0].long() // width, g2[:, 0].long() % width
    cell_rows = torch.arange(height // 2).reshape(1, -1, 1)
    cell_cols = torch.arange(width // 2).reshape(1, 1, -1)
    for rows, cols in ((row1, col1), (row2, col2)):
        assert torch.all(rows // 2 == cell_rows) and torch.all(cols // 2 == cell_cols)
    assert torch.all((row1 - row2).abs() + (col1 - col2).abs() == 1)  # distinct and adjacent, never diagonal
    ordered_pairs = set(zip(index_1.flatten().tolist(), index_2.flatten().tolist()))
    assert len(ordered_pairs) == 8


def test_neighbor2neighbor_loss_and_gradient_closed_form():
    gamma, w = 2.0, 0.8
    noisy = torch.rand(2, 1, 16, 16, generator=seeded(4))
    loss = Neighbor2NeighborLoss(gamma=gamma)
    index_1, index_2 = loss.sample_neighbours(noisy, seeded(9))
    g1, g2 = loss.subsample(noisy, index_1), loss.subsample(noisy, index_2)

    network = ScaleNet(w)
    value = loss(network, noisy, SIGMA, seeded(9))
    value.backward()
    # f(y) = w y is a constant w0 (no gradient) in the regulariser: g1(f(y)) - g2(f(y)) = w0 (g1 - g2).
    residual = w * g1 - g2
    regulariser = residual - w * (g1 - g2)
    expected_value = (residual**2).mean() + gamma * (regulariser**2).mean()
    expected_grad = 2 * (residual * g1).mean() + 2 * gamma * (regulariser * g1).mean()
    assert float(value) == pytest.approx(float(expected_value), rel=1e-5)
    assert float(network.w.grad) == pytest.approx(float(expected_grad), rel=1e-5)


def test_neighbor2neighbor_tells_the_data_level():
    spy = Spy()
    Neighbor2NeighborLoss()(spy, torch.rand(2, 1, 8, 8), torch.tensor([0.1, 0.2]))
    assert [tuple(x.shape) for x in spy.inputs] == [(2, 2, 8, 8), (2, 2, 4, 4)]
    for inputs in spy.inputs:
        assert torch.allclose(inputs[:, 1].amax(dim=(1, 2)), torch.tensor([0.1, 0.2]))
        assert torch.allclose(inputs[:, 1].amin(dim=(1, 2)), torch.tensor([0.1, 0.2]))


# ---------------------------------------------------------------------------- R2R


def test_r2r_pair_has_uncorrelated_noise():
    alpha, sigma, clean = 0.5, 0.1, 0.3
    loss = Recorrupted2RecorruptedLoss(alpha=alpha)
    generator = seeded(11)
    noisy = clean + sigma * torch.randn(4, 1, 256, 256, generator=generator)
    y_hat, y_tilde = loss.recorrupt_pair(noisy, torch.full((4,), sigma), generator)
    noise_hat, noise_tilde = (y_hat - clean).flatten().double(), (y_tilde - clean).flatten().double()
    count = noise_hat.numel()
    covariance = float((noise_hat * noise_tilde).mean())
    standard_error = math.sqrt(float(((noise_hat * noise_tilde) ** 2).mean()) / count)
    assert abs(covariance) < 4 * standard_error
    assert float(noise_hat.var()) == pytest.approx(sigma**2 * (1 + alpha**2), rel=0.02)
    assert float(noise_tilde.var()) == pytest.approx(sigma**2 * (1 + 1 / alpha**2), rel=0.02)
    # The same estimator sees the correlation of y_hat with y itself (covariance sigma^2).
    assert float((noise_hat * (noisy - clean).flatten().double()).mean()) > 50 * standard_error


def test_r2r_wiring_and_monte_carlo_inference():
    alpha, draws = 0.5, 4
    loss = Recorrupted2RecorruptedLoss(alpha=alpha, inference_draws=draws)
    noisy = torch.rand(2, 1, 64, 64, generator=seeded(2))
    sigma = torch.tensor([0.1, 0.2])
    spy = Spy()
    value = loss(spy, noisy, sigma, seeded(12))
    y_hat, y_tilde = loss.recorrupt_pair(noisy, sigma, seeded(12))
    assert torch.allclose(spy.inputs[0][:, :1], y_hat)
    level = sigma * math.sqrt(1 + alpha**2)
    assert torch.allclose(spy.inputs[0][:, 1], level.reshape(2, 1, 1).expand(2, 64, 64))
    assert float(value) == pytest.approx(float(((y_hat - y_tilde) ** 2).mean()), rel=1e-5)

    spy.inputs.clear()
    estimate = loss.denoise(spy, noisy, sigma, seeded(13))
    assert len(spy.inputs) == draws and all(torch.allclose(x[:, 1, 0, 0], level) for x in spy.inputs)
    # Identity network: the average keeps std alpha * s / sqrt(K) of added noise.
    spread = (estimate - noisy).std(dim=(1, 2, 3))
    assert torch.allclose(spread, alpha * sigma / math.sqrt(draws), rtol=0.05)


# ---------------------------------------------------------------------------- Noisier2Noise


def gaussian_prior_posteriors(mu: float, v: float, s: float, alpha: float):
    """x ~ N(mu, v), y = x + s n, z = y + alpha s n': E[y | z] and E[x | z] as functions of z."""
    var_z = v + s**2 * (1 + alpha**2)
    return (lambda z: mu + (v + s**2) / var_z * (z - mu)), (lambda z: mu + v / var_z * (z - mu))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_noisier2noise_correction_recovers_posterior_mean(alpha):
    mu, v, s = 0.4, 0.04, 0.1
    e_y, e_x = gaussian_prior_posteriors(mu, v, s, alpha)
    loss = Noisier2NoiseLoss(alpha=alpha)
    z = torch.linspace(-0.5, 1.5, 101, dtype=torch.float64)
    assert torch.allclose(loss.correct(e_y(z), z), e_x(z), atol=1e-12)

    class Oracle(nn.Module):
        """E[y | z] of the prior, checking it is told the training level s sqrt(1 + alpha^2)."""

        def forward(self, x):
            assert torch.allclose(x[:, 1], torch.tensor(s * math.sqrt(1 + alpha**2)))
            return e_y(x[:, :1])

    noisy = torch.rand(2, 1, 16, 16, generator=seeded(6))
    assert torch.allclose(loss.denoise(Oracle(), noisy, s), e_x(noisy), atol=1e-6)


def test_noisier2noise_loss_is_minimised_by_the_posterior_of_y():
    mu, v, s, alpha = 0.4, 0.04, 0.1, 1.0
    generator = seeded(21)
    clean = mu + math.sqrt(v) * torch.randn(8, 1, 64, 64, generator=generator)
    noisy = clean + s * torch.randn(clean.shape, generator=generator)
    optimum = (v + s**2) / (v + s**2 * (1 + alpha**2))
    loss = Noisier2NoiseLoss(alpha=alpha)

    def shrink(factor: float) -> nn.Module:
        class Shrink(nn.Module):
            def forward(self, x):
                return mu + factor * (x[:, :1] - mu)

        return Shrink()

    values = {c: float(loss(shrink(c), noisy, s, seeded(22))) for c in (optimum - 0.1, optimum, optimum + 0.1)}
    assert values[optimum] < values[optimum - 0.1] and values[optimum] < values[optimum + 0.1]


# ---------------------------------------------------------------------------- supervised


def test_supervised_loss_scores_the_clean_channel():
    clean = torch.rand(2, 1, 16, 16, generator=seeded(30))
    noisy = clean + SIGMA * torch.randn(clean.shape, generator=seeded(31))
    batch = torch.cat([noisy, clean], dim=1)

    class Perfect(nn.Module):
        def forward(self, x):
            assert x.shape[1] == 2 and torch.equal(x[:, :1], noisy) and torch.all(x[:, 1] == SIGMA)
            return clean

    assert float(SupervisedLoss()(Perfect(), batch, SIGMA)) == 0.0
    expected = float(((noisy - clean) ** 2).mean())  # identity network: the noise power
    assert float(SupervisedLoss()(Spy(), batch, SIGMA)) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------- no conditioning


def test_unconditioned_network_ignores_the_level_it_is_given(tiny_features, make_phantom):
    network = tiny_unet(tiny_features).eval()
    wrapped = UnconditionedNetwork(network, level=0.1)
    _, noisy = noisy_phantom(make_phantom, 32)
    with torch.no_grad():
        told_low = wrapped(torch.cat([noisy, torch.full_like(noisy, 0.02)], dim=1))
        told_high = wrapped(torch.cat([noisy, torch.full_like(noisy, 0.5)], dim=1))
        constant = network(torch.cat([noisy, torch.full_like(noisy, 0.1)], dim=1))
        conditioned = network(torch.cat([noisy, torch.full_like(noisy, 0.5)], dim=1))
    assert torch.equal(told_low, told_high) and torch.equal(told_low, constant)
    assert not torch.allclose(conditioned, constant)  # the bare network does use the level


# ---------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", sorted(PEER_LOSSES))
def test_a_few_steps_reduce_the_loss(name, tiny_features, make_phantom):
    network = tiny_unet(tiny_features)
    size = 64 if name == "neighbor2neighbor" else 32
    clean, noisy = noisy_phantom(make_phantom, size, batch=2)
    batch = batch_for(name, noisy, clean)
    loss = PEER_LOSSES[name]()

    def evaluate() -> float:
        with torch.no_grad():
            return sum(float(loss(network, batch, SIGMA, seeded(100 + k))) for k in range(3)) / 3

    before = evaluate()
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    for step in range(30):
        optimizer.zero_grad()
        loss(network, batch, SIGMA, seeded(step)).backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.95 * before


@pytest.mark.parametrize("name", sorted(PEER_LOSSES))
def test_trains_in_the_package_iteration(name, tiny_features, make_phantom):
    from monai.engines import SupervisedTrainer

    from c2s_monai.engines import GDSMIteration

    network = tiny_unet(tiny_features)
    clean, noisy = noisy_phantom(make_phantom, 64, batch=1)
    batches = [{"image": batch_for(name, noisy, clean), "sigma_data": torch.tensor([SIGMA])}] * 2
    before = [p.detach().clone() for p in network.parameters()]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=batches,
        epoch_length=len(batches),
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=1e-3),
        loss_function=PEER_LOSSES[name](),
        iteration_update=GDSMIteration(),
    )
    trainer.run()
    assert math.isfinite(float(trainer.state.output["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, network.parameters()))
