"""GDSM loss of C2S: coefficients, argument checks, tau sampling and the loss wiring (docs/method.md section 3)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from c2s_monai.losses import GDSMLoss
from c2s_monai.losses.gdsm import gdsm_coefficients


def closed_form(s_t: float, s_d: float, s_tgt: float) -> tuple[float, float]:
    """docs/method.md section 3.2, written out independently of the package."""
    gamma = (s_t**2 - s_d**2) / (s_t**2 - s_tgt**2)
    delta = (s_d**2 - s_tgt**2) / (s_t**2 - s_tgt**2)
    return gamma, delta


class LevelSpy(nn.Module):
    """Obeys the network contract; records its inputs and returns ``x_tau * scale + shift``."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return x[:, :1] * self.scale + self.shift


# ---------------------------------------------------------------------------- coefficients


@pytest.mark.parametrize(
    "sigma_data, sigma_target, tau",
    [(0.1, 0.0, 0.05), (0.1, 0.0, 0.3), (0.2, 0.05, 0.1), (0.05, 0.04, 0.5), (1.0, 0.5, 2.0), (0.3, 0.0, 1e-3)],
)
def test_coefficients_match_closed_form(sigma_data, sigma_target, tau):
    s_t = math.sqrt(sigma_data**2 + tau**2)
    gamma, delta = gdsm_coefficients(
        torch.tensor(s_t, dtype=torch.float64), torch.tensor(sigma_data, dtype=torch.float64), torch.tensor(sigma_target, dtype=torch.float64)
    )
    expected_gamma, expected_delta = closed_form(s_t, sigma_data, sigma_target)
    assert float(gamma) == pytest.approx(expected_gamma, rel=1e-10, abs=1e-14)
    assert float(delta) == pytest.approx(expected_delta, rel=1e-10, abs=1e-14)
    assert float(gamma + delta) == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < float(gamma) <= 1.0 and 0.0 <= float(delta) < 1.0


def test_coefficients_vectorised_per_sample():
    s_d = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    tau = torch.tensor([0.05, 0.4, 0.01], dtype=torch.float64)
    s_tgt = 0.25 * s_d
    s_t = torch.sqrt(s_d**2 + tau**2)
    gamma, delta = gdsm_coefficients(s_t, s_d, s_tgt)
    for i in range(3):
        g, d = closed_form(float(s_t[i]), float(s_d[i]), float(s_tgt[i]))
        assert float(gamma[i]) == pytest.approx(g, rel=1e-10)
        assert float(delta[i]) == pytest.approx(d, rel=1e-10)


@pytest.mark.parametrize("sigma_target", [0.0, 0.05])
def test_gamma_vanishes_as_tau_goes_to_zero(sigma_target):
    s_d = torch.tensor(0.1, dtype=torch.float64)
    taus = torch.tensor([1e-1, 1e-2, 1e-3, 1e-4], dtype=torch.float64)
    gamma, delta = gdsm_coefficients(torch.sqrt(s_d**2 + taus**2), s_d, torch.tensor(sigma_target, dtype=torch.float64))
    assert torch.all(gamma[1:] < gamma[:-1])  # monotone in tau
    assert float(gamma[-1]) < 1e-5
    assert float(delta[-1]) == pytest.approx(1.0, abs=1e-5)
    # leading order: gamma ~ tau^2 / (s_d^2 - s_tgt^2)
    assert float(gamma[-1]) == pytest.approx(1e-8 / (0.01 - sigma_target**2), rel=1e-3)


@pytest.mark.parametrize("tau", [1e-3, 0.05, 0.5, 3.0])
def test_target_equal_to_data_level_is_plain_dsm(tau):
    s_d = torch.tensor(0.2, dtype=torch.float64)
    gamma, delta = gdsm_coefficients(torch.sqrt(s_d**2 + tau**2), s_d, s_d)
    assert float(gamma) == pytest.approx(1.0, abs=1e-12)
    assert float(delta) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tau_max": 0.0},
        {"tau_max": -1.0},
        {"sigma_target_ratio": -0.1},
        {"sigma_target_ratio": 1.0},
        {"sigma_target_ratio": 1.5},
        {"max_weight": 0.5},
        {"tau_sampling": "uniform"},
        {"noise_model": "poisson"},
    ],
)
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        GDSMLoss(**kwargs)


def test_noise_model_name_is_case_insensitive():
    assert GDSMLoss(noise_model="Rician").noise_model == "rician"


@pytest.mark.parametrize("sigma_data", [0.0, -0.1, [0.1, 0.0], [0.1, 0.1, 0.1]])
def test_invalid_sigma_data_raises(sigma_data):
    loss = GDSMLoss()
    noisy = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError):
        loss(LevelSpy(), noisy, torch.tensor(sigma_data) if isinstance(sigma_data, list) else sigma_data)


# ---------------------------------------------------------------------------- tau sampling


@pytest.mark.parametrize("tau_sampling", ["tau", "sigma"])
@pytest.mark.parametrize("tau_max", [0.5, 1.0, 5.0])
def test_sample_tau_range(tau_sampling, tau_max):
    loss = GDSMLoss(tau_max=tau_max, tau_sampling=tau_sampling)
    sigma_data = torch.tensor([0.02, 0.1, 0.5]).repeat_interleave(20_000)
    tau = loss.sample_tau(sigma_data, torch.Generator().manual_seed(0))
    limit = tau_max * sigma_data
    assert tau.shape == sigma_data.shape
    assert bool(torch.all(tau > 0))
    assert bool(torch.all(tau <= limit * (1 + 1e-5)))
    # the range is actually used: close to both ends
    ratio = tau / limit
    assert float(ratio.min()) < 0.05 and float(ratio.max()) > 0.99


def test_sample_tau_distributions_differ_as_documented():
    """"tau": tau uniform on (0, T]. "sigma": s_t uniform on (s_d, sqrt(s_d^2 + T^2)]."""
    s_d, tau_max = 0.1, 2.0
    sigma_data = torch.full((200_000,), s_d, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    tau_u = GDSMLoss(tau_max=tau_max, tau_sampling="tau").sample_tau(sigma_data, generator)
    tau_s = GDSMLoss(tau_max=tau_max, tau_sampling="sigma").sample_tau(sigma_data, generator)
    big_t = tau_max * s_d
    assert float(tau_u.mean()) == pytest.approx(big_t / 2, rel=0.01)
    assert float(tau_u.std()) == pytest.approx(big_t / math.sqrt(12), rel=0.01)
    s_t = torch.sqrt(s_d**2 + tau_s**2)
    upper = math.sqrt(s_d**2 + big_t**2)
    assert float(s_t.mean()) == pytest.approx((s_d + upper) / 2, rel=0.01)
    assert float(s_t.std()) == pytest.approx((upper - s_d) / math.sqrt(12), rel=0.01)


def test_sample_tau_reproducible_with_generator():
    loss = GDSMLoss()
    sigma_data = torch.full((16,), 0.1)
    a = loss.sample_tau(sigma_data, torch.Generator().manual_seed(3))
    b = loss.sample_tau(sigma_data, torch.Generator().manual_seed(3))
    c = loss.sample_tau(sigma_data, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ---------------------------------------------------------------------------- the loss itself


@pytest.mark.parametrize("sigma_target_ratio, weight_exponent, max_weight", [(0.0, 0.0, 4.0), (0.3, 1.0, 1.0), (0.5, -0.5, 100.0)])
def test_loss_matches_method_formula(sigma_target_ratio, weight_exponent, max_weight):
    """Recompute L = mean w ||gamma D(x_tau, s_t) + delta x_tau - y||^2 from the same random draws."""
    loss = GDSMLoss(tau_max=2.0, sigma_target_ratio=sigma_target_ratio, weight_exponent=weight_exponent, max_weight=max_weight)
    noisy = torch.rand(4, 1, 6, 5)
    sigma_data = torch.tensor([0.05, 0.1, 0.2, 0.3])
    network = LevelSpy(scale=0.7, shift=0.1)
    value = loss(network, noisy, sigma_data, generator=torch.Generator().manual_seed(7))

    generator = torch.Generator().manual_seed(7)
    tau = loss.sample_tau(sigma_data, generator)
    z = torch.randn(noisy.shape, generator=generator)
    x_tau = noisy + tau.reshape(-1, 1, 1, 1) * z
    expected = 0.0
    for i in range(4):
        s_d, t = float(sigma_data[i]), float(tau[i])
        s_t = math.sqrt(s_d**2 + t**2)
        gamma, delta = closed_form(s_t, s_d, sigma_target_ratio * s_d)
        weight = (s_t**2) ** weight_exponent * min(1.0 / gamma**2, max_weight)
        residual = gamma * (0.7 * x_tau[i] + 0.1) + delta * x_tau[i] - noisy[i]
        expected += weight * float((residual**2).sum())
    expected /= noisy.numel()
    assert float(value) == pytest.approx(expected, rel=1e-4)

    # the network saw x_tau and a constant map of s_t per sample
    (seen,) = network.inputs
    assert seen.shape == (4, 2, 6, 5)
    torch.testing.assert_close(seen[:, :1], x_tau)
    s_t = torch.sqrt(sigma_data**2 + tau**2)
    torch.testing.assert_close(seen[:, 1], s_t.reshape(-1, 1, 1).expand(4, 6, 5))


def test_loss_reproducible_with_generator():
    loss = GDSMLoss()
    noisy = torch.rand(3, 1, 8, 8)
    a = loss(LevelSpy(0.5), noisy, 0.1, generator=torch.Generator().manual_seed(0))
    b = loss(LevelSpy(0.5), noisy, 0.1, generator=torch.Generator().manual_seed(0))
    c = loss(LevelSpy(0.5), noisy, 0.1, generator=torch.Generator().manual_seed(1))
    assert float(a) == float(b)
    assert float(a) != float(c)


def test_per_sample_sigma_data_levels():
    loss = GDSMLoss(tau_max=3.0)
    sigma_data = torch.tensor([0.01, 0.1, 1.0])
    network = LevelSpy()
    value = loss(network, torch.rand(3, 1, 4, 4), sigma_data, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(value)
    level = network.inputs[0][:, -1]
    for i, s_d in enumerate(sigma_data.tolist()):
        s_t = level[i]
        assert bool(torch.all(s_t == s_t[0, 0]))  # one level per sample
        assert s_d < float(s_t[0, 0]) <= s_d * math.sqrt(1 + 3.0**2) * (1 + 1e-6)


def test_scalar_sigma_is_shared_across_the_batch():
    network = LevelSpy()
    GDSMLoss()(network, torch.rand(5, 1, 4, 4), 0.2, generator=torch.Generator().manual_seed(0))
    level = network.inputs[0][:, -1, 0, 0]
    tau = torch.sqrt(level**2 - 0.2**2)
    assert bool(torch.all(level > 0.2)) and float(tau.std()) > 0  # shared s_d, per-sample tau


def test_guides_pass_through_unchanged_and_only_target_is_recorrupted():
    network = LevelSpy()
    noisy = torch.rand(2, 3, 8, 8)  # target + two guide contrasts
    GDSMLoss()(network, noisy, 0.1, generator=torch.Generator().manual_seed(0))
    seen = network.inputs[0]
    assert seen.shape == (2, 4, 8, 8)
    assert torch.equal(seen[:, 1:3], noisy[:, 1:3])
    assert not torch.allclose(seen[:, :1], noisy[:, :1])


def test_rician_recorruption_is_non_negative():
    network = LevelSpy()
    noisy = torch.rand(4, 1, 16, 16) * 0.05  # dark, so Gaussian re-corruption would go negative
    value = GDSMLoss(noise_model="rician", tau_max=3.0)(network, noisy, 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(value)
    assert float(network.inputs[0][:, 0].min()) >= 0.0


def test_loss_gradient_reaches_the_network():
    network = nn.Conv2d(2, 1, 3, padding=1)
    value = GDSMLoss()(network, torch.rand(2, 1, 8, 8), 0.1)
    value.backward()
    assert network.weight.grad is not None and float(network.weight.grad.abs().sum()) > 0


class GaussianOracle(nn.Module):
    """The exact minimiser for a per-pixel N(mu, s^2) prior: E[x_tgt | x_t] (docs/method.md section 3.2)."""

    def __init__(self, mu: float, s: float, s_tgt: float) -> None:
        super().__init__()
        self.mu, self.s2, self.s_tgt2 = mu, s * s, s_tgt * s_tgt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_t, s_t = x[:, :1], x[:, -1:]
        return self.mu + (self.s2 + self.s_tgt2) / (self.s2 + s_t**2) * (x_t - self.mu)


@pytest.mark.parametrize("sigma_target_ratio", [0.0, 0.5])
def test_oracle_has_lower_loss_than_wrong_denoisers(sigma_target_ratio):
    mu, s, s_d = 0.5, 0.2, 0.15
    generator = torch.Generator().manual_seed(0)
    clean = mu + s * torch.randn(64, 1, 32, 32, generator=generator)
    noisy = clean + s_d * torch.randn(clean.shape, generator=generator)
    loss = GDSMLoss(tau_max=2.0, sigma_target_ratio=sigma_target_ratio)
    oracle = GaussianOracle(mu, s, sigma_target_ratio * s_d)

    def value(network):
        return float(loss(network, noisy, s_d, generator=torch.Generator().manual_seed(11)))

    best = value(oracle)
    wrong = {
        "identity": LevelSpy(),
        "mean": LevelSpy(scale=0.0, shift=mu),
        "other target level": GaussianOracle(mu, s, 0.5 * s_d if sigma_target_ratio == 0 else 0.0),
        "wrong prior": GaussianOracle(mu, 2 * s, sigma_target_ratio * s_d),
    }
    for name, network in wrong.items():
        assert value(network) > best, name


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test extra
    given = None

if given is not None:

    @settings(max_examples=200, deadline=None)
    @given(
        sigma_data=st.floats(1e-3, 10.0),
        target_ratio=st.floats(0.0, 0.99),
        tau_ratio=st.floats(1e-3, 20.0),
    )
    def test_coefficients_property(sigma_data, target_ratio, tau_ratio):
        """For every valid triple: gamma + delta = 1, both in [0, 1], D* = E[x_tgt|x_t] reproduces E[y|x_t]."""
        s_d = torch.tensor(sigma_data, dtype=torch.float64)
        s_tgt = target_ratio * s_d
        s_t = torch.sqrt(s_d**2 + (tau_ratio * s_d) ** 2)
        gamma, delta = gdsm_coefficients(s_t, s_d, s_tgt)
        assert float(gamma + delta) == pytest.approx(1.0, abs=1e-9)
        assert 0.0 < float(gamma) <= 1.0 and 0.0 <= float(delta) < 1.0
        # Gaussian-prior identity (docs/method.md section 3.2): with prior N(0, 1), E[v | x_t] = (1 + v_noise) / (1 + s_t^2) x_t
        # for v = x0 + noise of variance v_noise; E[y|x_t] must equal gamma E[x_tgt|x_t] + delta x_t.
        slope_y = (1 + s_d**2) / (1 + s_t**2)
        slope_tgt = (1 + s_tgt**2) / (1 + s_t**2)
        assert float(gamma * slope_tgt + delta) == pytest.approx(float(slope_y), rel=1e-9)
