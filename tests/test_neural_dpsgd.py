"""DP-SGD mechanics of dpsynth.neural: Poisson batches, per-sample gradients, module validation,
calibration, and the canary-gradient audit of the DP optimiser (docs/neural.md, "Tests")."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.optimizers.optimizer import _generate_noise
from scipy import stats

from dpsynth.errors import ConfigError
from dpsynth.neural.data import (
    OneHotLayout,
    one_hot,
    poisson_loader,
    sample_codes,
    sampling_generator,
    steps_per_epoch,
)
from dpsynth.neural.gan import build_discriminator, build_generator, gumbel_softmax
from dpsynth.neural.train import DPSGDPlan, check_module, plan_dpsgd, privatise
from dpsynth.neural.vae import build_vae, vae_row_loss
from dpsynth.privacy.rdp import dpsgd_epsilon

pytestmark = [
    pytest.mark.neural,
    pytest.mark.filterwarnings("ignore:Full backward hook is firing"),
]
torch.set_num_threads(1)

LAYOUT = OneHotLayout(("a", "b", "c"), (3, 5, 2))


# ----------------------------------------------------------------------------- data path


def test_one_hot_blocks_and_sampling_stay_in_domain() -> None:
    codes = np.array([[0, 4, 1], [2, 0, 0]])
    x = one_hot(codes, LAYOUT)
    assert x.shape == (2, 10)
    assert x.sum(dim=1).tolist() == [3.0, 3.0]
    assert x[0, [0, 3 + 4, 8 + 1]].tolist() == [1.0, 1.0, 1.0]
    logits = torch.randn(500, LAYOUT.width, generator=sampling_generator(0))
    drawn = sample_codes(logits, LAYOUT, sampling_generator(1))
    assert drawn.shape == (500, 3)
    assert (drawn >= 0).all() and (drawn < np.array(LAYOUT.sizes)).all()
    assert np.array_equal(drawn, sample_codes(logits, LAYOUT, sampling_generator(1)))


def test_gumbel_softmax_hard_is_one_hot_per_column() -> None:
    logits = torch.randn(64, LAYOUT.width, requires_grad=True)
    y = gumbel_softmax(logits, LAYOUT, 0.5, sampling_generator(3))
    for start, size in zip(LAYOUT.offsets[:-1], LAYOUT.sizes, strict=True):
        block = y[:, start : start + size].detach()
        assert torch.all(block.sum(dim=1) == 1.0) and torch.all((block == 0) | (block == 1))
    y.sum().backward()  # straight-through: gradient reaches the logits
    assert logits.grad is not None


def test_poisson_batches_have_binomial_sizes() -> None:
    n, q, batches = 1000, 0.02, 2000
    loader = poisson_loader(torch.arange(n, dtype=torch.float32)[:, None], q, sampling_generator(11))
    assert len(loader) == steps_per_epoch(q) == 50
    sizes, hits = [], np.zeros(n)
    while len(sizes) < batches:
        for (b,) in loader:
            sizes.append(b.shape[0])
            hits[b[:, 0].long().numpy()] += 1
    s = np.array(sizes[:batches], dtype=float)
    mean, var = n * q, n * q * (1 - q)
    assert abs(s.mean() - mean) <= 3 * math.sqrt(var / batches)
    assert 0.9 <= s.var(ddof=1) / var <= 1.1
    # Every row is included independently at rate q: per-row counts are Binomial(B, q).
    per_row = hits / (len(sizes) * q)
    assert abs(per_row.mean() - 1.0) < 0.02
    assert 0.85 <= hits.var(ddof=1) / (len(sizes) * q * (1 - q)) <= 1.15


def test_empty_batches_do_not_crash() -> None:
    loader = poisson_loader(torch.zeros(3, 4), 0.01, sampling_generator(0))
    shapes = [b.shape for (b,) in loader]
    assert len(shapes) == 100 and any(s[0] == 0 for s in shapes)
    assert all(s[1] == 4 for s in shapes)
    empty_table = poisson_loader(torch.zeros(0, 4), 0.5, sampling_generator(0))
    assert [b.shape[0] for (b,) in empty_table] == [0, 0]


# ------------------------------------------------------------------------ per-sample grads


def _per_sample_vs_microbatch(module: torch.nn.Module, loss_of: object, n: int) -> None:
    import copy

    ref = copy.deepcopy(module)
    gsm = GradSampleModule(module, loss_reduction="sum")
    loss_of(gsm, list(range(n))).backward()  # type: ignore[operator]
    for i in range(n):
        ref.zero_grad(set_to_none=True)
        loss_of(ref, [i]).backward()  # type: ignore[operator]
        for (name, p), (_, p_ref) in zip(module.named_parameters(), ref.named_parameters(), strict=True):
            assert torch.allclose(p.grad_sample[i], p_ref.grad, atol=1e-5), name


def test_vae_per_sample_gradients_equal_microbatches_of_one() -> None:
    torch.manual_seed(0)
    vae = build_vae(LAYOUT.width, (16, 8), 4)
    codes = np.random.default_rng(0).integers(0, 2, size=(6, 3))
    x = one_hot(codes, LAYOUT)
    noise = torch.randn(6, 4)

    def loss_of(m: torch.nn.Module, idx: list[int]) -> torch.Tensor:
        logits, mu, logvar = m(x[idx], noise[idx])
        return vae_row_loss(x[idx], logits, mu, logvar, LAYOUT, 1.0).sum()

    _per_sample_vs_microbatch(vae, loss_of, 6)


def test_discriminator_per_sample_gradients_equal_microbatches_of_one() -> None:
    torch.manual_seed(1)
    disc = build_discriminator(LAYOUT.width, (16, 8))
    x = torch.rand(7, LAYOUT.width)
    y = torch.tensor([1.0, 0, 1, 0, 1, 1, 0])

    def loss_of(m: torch.nn.Module, idx: list[int]) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            m(x[idx])[:, 0], y[idx], reduction="sum"
        )

    _per_sample_vs_microbatch(disc, loss_of, 7)


def test_batchnorm_is_rejected() -> None:
    bad = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    with pytest.raises(ConfigError, match="BatchNorm"):
        check_module(bad)
    plan = DPSGDPlan(
        noise_multiplier=1.0, sample_rate=0.1, steps=10, expected_batch_size=10,
        max_grad_norm=1.0, n_estimate=100, epochs=1,
    )
    with pytest.raises(ConfigError):
        privatise(bad, torch.optim.SGD(bad.parameters(), lr=0.1), plan, secure_mode=True)
    check_module(build_generator(4, (8,), 10))  # LayerNorm is per-row: accepted
    check_module(build_discriminator(10, (8,)))


# ------------------------------------------------------------------------------ calibration


@pytest.mark.parametrize("eps", [0.5, 3.0, 10.0])
def test_plan_never_overshoots_and_uses_only_the_estimate(eps: float) -> None:
    plan = plan_dpsgd(
        n_estimate=30_000, batch_size=300, epochs=5, max_grad_norm=1.0,
        target_epsilon=eps, delta=1e-6,
    )
    assert plan.sample_rate == pytest.approx(0.01) and plan.steps == 500
    assert plan.expected_batch_size == 300
    achieved = dpsgd_epsilon(plan.noise_multiplier, plan.sample_rate, plan.steps, 1e-6)
    assert achieved <= eps
    assert achieved >= 0.99 * eps  # and it is tight (bisection to 1e-4 relative)


def test_plan_clamps_sample_rate_for_tiny_estimates() -> None:
    plan = plan_dpsgd(
        n_estimate=10, batch_size=64, epochs=3, max_grad_norm=1.0, target_epsilon=1.0,
        delta=1e-5,
    )
    assert plan.sample_rate == 1.0 and plan.steps == 3 and plan.expected_batch_size == 10


# ------------------------------------------------------------- canary-gradient audit (E4)


class _NoiseNotScaledByC(DPOptimizer):
    """Planted bug: noise std = sigma instead of sigma * C."""

    def add_noise(self) -> None:
        for p in self.params:
            noise = _generate_noise(std=self.noise_multiplier, reference=p.summed_grad,
                                    generator=self.generator, secure_mode=self.secure_mode)
            p.grad = (p.summed_grad + noise).view_as(p)


def _dp_final_params(canary: bool, runs: int, steps: int, sigma: float, clip: float,
                     seed: int, optimiser: type[DPOptimizer] = DPOptimizer) -> np.ndarray:
    """``runs`` independent DP-SGD runs with q=1, vectorised: run r owns coordinate r.

    Sample r's gradient is a Dirac of norm 10*C in coordinate r (clipped to C) when the canary
    is present, and 0 otherwise; per-sample clipping acts on each sample's full gradient, and
    the noise is i.i.d. per coordinate, so the coordinates are independent runs of the
    one-coordinate canary game. Returns minus the final parameters (the summed noisy grads).
    """
    p = torch.nn.Parameter(torch.zeros(runs))
    opt = optimiser(
        torch.optim.SGD([p], lr=1.0), noise_multiplier=sigma, max_grad_norm=clip,
        expected_batch_size=runs, loss_reduction="sum", generator=sampling_generator(seed),
        secure_mode=True,
    )
    grads = torch.eye(runs) * (10.0 * clip) if canary else torch.zeros(runs, runs)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        p.grad_sample = grads.clone()
        opt.step()
    return -p.detach().numpy() / clip


def _clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k >= n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))


def _mu_lower_bound(s0: np.ndarray, s1: np.ndarray, alpha: float = 1e-3) -> float:
    """GDP mu lower bound: threshold chosen on one half, CP bounds on the other half."""
    h0, h1 = len(s0) // 2, len(s1) // 2
    sel0, sel1, ev0, ev1 = s0[:h0], s1[:h1], s0[h0:], s1[h1:]
    best_t, best = 0.0, -np.inf
    for t in np.quantile(np.concatenate([sel0, sel1]), np.linspace(0.01, 0.99, 99)):
        fpr = np.clip(np.mean(sel0 >= t), 1e-4, 1 - 1e-4)
        fnr = np.clip(np.mean(sel1 < t), 1e-4, 1 - 1e-4)
        mu = stats.norm.ppf(1 - fpr) - stats.norm.ppf(fnr)
        if mu > best:
            best_t, best = float(t), float(mu)
    fpr_up = _clopper_pearson_upper(int(np.sum(ev0 >= best_t)), len(ev0), alpha)
    fnr_up = _clopper_pearson_upper(int(np.sum(ev1 < best_t)), len(ev1), alpha)
    return float(max(0.0, stats.norm.ppf(1 - fpr_up) - stats.norm.ppf(fnr_up)))


RUNS, STEPS, SIGMA, CLIP = 1500, 25, 5.0, 20.0  # claimed mu = sqrt(T) / sigma = 1.0


def test_canary_audit_passes_the_dp_optimiser() -> None:
    claimed = math.sqrt(STEPS) / SIGMA
    s0 = _dp_final_params(False, RUNS, STEPS, SIGMA, CLIP, seed=1)
    s1 = _dp_final_params(True, RUNS, STEPS, SIGMA, CLIP, seed=2)
    # The score is the sum of T noisy clipped canaries: mean T, std sqrt(T)*sigma (in units of C).
    assert s1.mean() - s0.mean() == pytest.approx(STEPS, abs=6 * math.sqrt(STEPS) * SIGMA / math.sqrt(RUNS))
    assert s0.std() == pytest.approx(math.sqrt(STEPS) * SIGMA, rel=0.1)
    mu_lb = _mu_lower_bound(s0, s1)
    assert 0.3 < mu_lb <= claimed  # the audit has power, and the bound holds


def test_canary_audit_flags_noise_not_scaled_by_clipping_norm() -> None:
    claimed = math.sqrt(STEPS) / SIGMA
    s0 = _dp_final_params(False, RUNS, STEPS, SIGMA, CLIP, seed=3, optimiser=_NoiseNotScaledByC)
    s1 = _dp_final_params(True, RUNS, STEPS, SIGMA, CLIP, seed=4, optimiser=_NoiseNotScaledByC)
    assert _mu_lower_bound(s0, s1) > claimed
