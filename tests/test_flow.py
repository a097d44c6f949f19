"""Rectified flow: the path, timestep statistics and shift, the loss and prompt dropout."""

import math

import pytest
import torch
from torch import nn

from spacetime import flow


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Oracle(nn.Module):
    """Knows the clean latents, so its velocity at (x_t, t) is exact: (x_t - x0) / t = eps - x0.
    On frames the loss keeps clean (x_t = x0) it answers 0, which is wrong there (the target is
    eps - x0), so only a loss that leaves condition frames out sees it as perfect."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x0 = x0
        self.calls = []

    def forward(self, x, timestep, text, text_mask, cond_mask=None):
        self.calls.append({"x": x.clone(), "t": timestep.clone(), "cond_mask": cond_mask})
        return (x - self.x0) / timestep.view(-1, 1, 1, 1, 1)


def test_path_and_target():
    x0, eps = torch.randn(2, 3, 2, 4, 4, generator=gen(1)), torch.randn(2, 3, 2, 4, 4, generator=gen(2))
    t = torch.tensor([0.0, 1.0])
    xt = flow.interpolate(x0, eps, t)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[1], eps[1])
    xt = flow.interpolate(x0, eps, torch.tensor([0.25, 0.5]))
    torch.testing.assert_close(xt[0], 0.75 * x0[0] + 0.25 * eps[0])
    # the target is the derivative of the path in t
    h = 1e-3
    dt = (flow.interpolate(x0, eps, torch.full((2,), 0.3 + h)) - flow.interpolate(x0, eps, torch.full((2,), 0.3))) / h
    torch.testing.assert_close(dt, flow.velocity_target(x0, eps), atol=1e-3, rtol=1e-3)


def test_logit_normal_statistics_and_determinism():
    t = flow.sample_timesteps(200_000, generator=gen(0))
    assert t.shape == (200_000,) and t.dtype == torch.float32
    assert 0 < t.min() and t.max() < 1
    assert abs(t.mean().item() - 0.5) < 0.005  # symmetric around 1/2 for mean 0
    assert abs(t.median().item() - 0.5) < 0.005
    # logit-normal: logit(t) is N(mean, std)
    z = torch.logit(flow.sample_timesteps(200_000, generator=gen(1), mean=0.5, std=2.0).double())
    assert abs(z.mean().item() - 0.5) < 0.02 and abs(z.std().item() - 2.0) < 0.02
    # the shift is monotone, so it maps the median: shift 3 moves 1/2 to 3/4
    ts = flow.sample_timesteps(200_000, generator=gen(0), shift=3.0)
    assert abs(ts.median().item() - 0.75) < 0.005
    torch.testing.assert_close(ts, flow.shift_timesteps(t, 3.0))
    assert (ts >= t).all()  # every draw moves towards noise
    torch.testing.assert_close(flow.sample_timesteps(8, generator=gen(5)), flow.sample_timesteps(8, generator=gen(5)),
                               rtol=0, atol=0)
    assert not torch.equal(flow.sample_timesteps(8, generator=gen(5)), flow.sample_timesteps(8, generator=gen(6)))


def test_shift_formula_and_inverse():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    s = flow.shift_timesteps(t, 3.0)
    assert s[0] == 0 and s[-1] == 1
    assert s[5].item() == pytest.approx(0.75)  # 3*0.5 / (1 + 2*0.5)
    torch.testing.assert_close(flow.shift_timesteps(t, 1.0), t)
    torch.testing.assert_close(flow.unshift_timesteps(s, 3.0), t)
    per_sample = flow.shift_timesteps(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(per_sample, torch.tensor([0.5, 0.75]))
    with pytest.raises(ValueError, match="shift must be > 0"):
        flow.shift_timesteps(t, 0.0)


def test_shift_is_a_move_of_the_logit_mean():
    # logit(shift*t / (1 + (shift-1)*t)) = logit(t) + ln(shift): training at timestep shift s is
    # training with logit_mean + ln(s) (what TrainDiTConfig.logit_mean's comment tells a user)
    for s in (0.5, 3.0, 5.0):
        shifted = flow.sample_timesteps(4096, generator=torch.Generator().manual_seed(0), shift=s)
        moved = flow.sample_timesteps(4096, generator=torch.Generator().manual_seed(0), mean=math.log(s))
        torch.testing.assert_close(shifted, moved, rtol=1e-5, atol=1e-6)
        assert (shifted.median() > 0.5) == (s > 1)


def test_resolution_shift():
    assert flow.resolution_shift(256) == 1.0
    assert flow.resolution_shift(1024) == pytest.approx(2.0)
    assert flow.resolution_shift(4096) == pytest.approx(4.0)
    assert flow.resolution_shift(80) == 1.0  # small inputs are not shifted below 1
    assert flow.resolution_shift(80, min_shift=0.1) == pytest.approx(math.sqrt(80 / 256))
    assert flow.resolution_shift(4096, max_shift=3.0) == 3.0
    assert flow.resolution_shift(1000, base_tokens=10, base_shift=0.5) == pytest.approx(5.0)
    shifts = [flow.resolution_shift(n) for n in (256, 512, 2048, 9000)]
    assert shifts == sorted(shifts) and len(set(shifts)) == 4  # larger inputs, more noise
    with pytest.raises(ValueError, match="num_tokens must be >= 1, got 0"):
        flow.resolution_shift(0)


def test_loss_is_zero_for_the_exact_velocity():
    x0 = torch.randn(3, 4, 3, 4, 4, generator=gen(3))
    text, mask = torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool)
    loss = flow.rectified_flow_loss(Oracle(x0), x0, text, mask, generator=gen(0), shift=2.0)
    assert loss.item() < 1e-10
    # a velocity off by 0.5 everywhere costs exactly 0.25
    class Off(Oracle):
        def forward(self, x, timestep, text, text_mask, cond_mask=None):
            return super().forward(x, timestep, text, text_mask) + 0.5

    assert flow.rectified_flow_loss(Off(x0), x0, text, mask, generator=gen(0)).item() == pytest.approx(0.25, abs=1e-5)


def test_loss_draws_are_reproducible_and_timestep_is_used():
    x0 = torch.randn(2, 4, 2, 4, 4, generator=gen(3))
    text, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)

    def model(x, t, text, text_mask):
        return x * 0.3

    a = flow.rectified_flow_loss(model, x0, text, mask, generator=gen(7))
    b = flow.rectified_flow_loss(model, x0, text, mask, generator=gen(7))
    c = flow.rectified_flow_loss(model, x0, text, mask, generator=gen(8))
    assert a.item() == b.item() and a.item() != c.item()
    oracle = Oracle(x0)
    t = torch.tensor([0.2, 0.9])
    noise = torch.randn(x0.shape, generator=gen(1))
    flow.rectified_flow_loss(oracle, x0, text, mask, timestep=t, noise=noise)
    torch.testing.assert_close(oracle.calls[0]["t"], t)
    torch.testing.assert_close(oracle.calls[0]["x"], flow.interpolate(x0, noise, t))


def test_condition_frames_are_clean_and_excluded_from_the_loss():
    x0 = torch.randn(2, 4, 4, 4, 4, generator=gen(3))
    text, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    cond = torch.tensor([[True, False, False, False], [True, True, False, True]])
    oracle = Oracle(x0)
    loss = flow.rectified_flow_loss(oracle, x0, text, mask, cond_mask=cond, generator=gen(0))
    assert loss.item() < 1e-10  # the oracle answers 0 on condition frames, which the loss ignores
    seen = oracle.calls[0]
    assert torch.equal(seen["cond_mask"], cond)
    f = cond[:, None, :, None, None].expand_as(x0)
    assert torch.equal(seen["x"][f], x0[f])  # condition frames are given clean
    assert not torch.allclose(seen["x"][~f], x0[~f])
    # the same oracle without the mask is charged on those frames: the exclusion is what makes it 0
    t = torch.tensor([0.5, 0.5])
    noise = torch.randn(x0.shape, generator=gen(1))
    xt = torch.where(f, x0, flow.interpolate(x0, noise, t))
    charged = ((oracle(xt, t, text, mask) - (noise - x0)) ** 2).mean()
    assert charged.item() > 0.1

    # an error of e only on frame k: the loss is the mean over non-condition elements
    class Bad(Oracle):
        def forward(self, x, timestep, text, text_mask, cond_mask=None):
            v = super().forward(x, timestep, text, text_mask).clone()
            v[:, :, 2] += 2.0  # frame 2 is free in both samples
            v[:, :, 0] = float("nan")  # frame 0 is a condition in both: must not leak
            return v

    loss = flow.rectified_flow_loss(Bad(x0), x0, text, mask, cond_mask=cond, generator=gen(0))
    free_frames = (~cond).sum().item()  # 5 of 8
    assert loss.item() == pytest.approx(4.0 * 2 / free_frames, rel=1e-5)


def test_loss_rejects_bad_masks():
    x0 = torch.randn(1, 4, 2, 4, 4)
    text, mask = torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="cond_mask must be bool"):
        flow.rectified_flow_loss(Oracle(x0), x0, text, mask, cond_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="every latent frame"):
        flow.rectified_flow_loss(Oracle(x0), x0, text, mask, cond_mask=torch.ones(1, 2, dtype=torch.bool))


def test_drop_prompts():
    prompts = [f"prompt {i}" for i in range(20_000)]
    dropped = flow.drop_prompts(prompts, 0.1, generator=gen(0))
    n = sum(p == "" for p in dropped)
    assert abs(n / len(prompts) - 0.1) < 0.01
    assert all(d in ("", p) for d, p in zip(dropped, prompts))
    assert dropped == flow.drop_prompts(prompts, 0.1, generator=gen(0))
    assert dropped != flow.drop_prompts(prompts, 0.1, generator=gen(1))
    assert flow.drop_prompts(prompts[:50], 0.0, generator=gen(0)) == prompts[:50]
    assert flow.drop_prompts(prompts[:50], 1.0, generator=gen(0)) == [""] * 50
    # one draw per prompt whatever p is: the generator's next draws do not depend on p
    g1, g2 = gen(4), gen(4)
    flow.drop_prompts(prompts[:7], 0.0, generator=g1)
    flow.drop_prompts(prompts[:7], 0.5, generator=g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    with pytest.raises(ValueError, match="1.5"):
        flow.drop_prompts(prompts, 1.5)
