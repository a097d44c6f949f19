"""The sampler: exactness on straight flows, Heun vs Euler, guidance, conditions, SDEdit, determinism."""

import math

import pytest
import torch
from torch import nn

from spacetime import flow, sampling

SHAPE = (2, 4, 3, 4, 4)  # (B, C, t, h, w)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def prompts(b: int = 2, length: int = 5, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, length, dim, generator=gen(9)), torch.ones(b, length, dtype=torch.bool)


class Recorder(nn.Module):
    """A stand-in DiT: forward(x, timestep, text, text_mask, cond_mask=None) -> velocity, with
    every call recorded."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.calls = fn, []

    def forward(self, x, timestep, text, text_mask, cond_mask=None):
        self.calls.append({"x": x.clone(), "t": timestep.clone(), "text": text.clone(), "mask": text_mask.clone(),
                           "cond_mask": cond_mask})
        return self.fn(x, timestep, text, text_mask)


def straight(x0: torch.Tensor, eps: torch.Tensor) -> Recorder:
    """The exact velocity of the straight path eps -> x0: the constant eps - x0."""
    return Recorder(lambda x, t, text, mask: (eps - x0).expand_as(x))


def test_timestep_schedule():
    torch.testing.assert_close(sampling.timesteps(4), torch.tensor([1, 0.75, 0.5, 0.25, 0], dtype=torch.float64))
    ts = sampling.timesteps(4, shift=3.0)
    torch.testing.assert_close(ts, flow.shift_timesteps(torch.linspace(1, 0, 5, dtype=torch.float64), 3.0))
    assert ts[0] == 1 and ts[-1] == 0 and (ts.diff() < 0).all()
    sd = sampling.timesteps(5, shift=3.0, start=0.6)
    assert sd[0] == 0.6 and sd[-1] == 0 and (sd.diff() < 0).all()
    with pytest.raises(ValueError, match="num_steps must be >= 1, got 0"):
        sampling.timesteps(0)


@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_straight_flow_is_recovered_exactly(solver, shift):
    x0, eps = torch.randn(SHAPE, generator=gen(1)), torch.randn(SHAPE, generator=gen(2))
    text, mask = prompts()
    model = straight(x0, eps)
    out = sampling.sample(model, eps, text, mask, num_steps=7, guidance_scale=1.0, solver=solver, shift=shift)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)
    assert len(model.calls) == (7 if solver == "euler" else 13)  # Heun: 2 calls a step, the last one Euler
    expected_t = sampling.timesteps(7, shift)[:-1].float()
    seen_t = torch.stack([c["t"][0] for c in model.calls])
    if solver == "euler":
        torch.testing.assert_close(seen_t, expected_t)
    assert all(c["t"].shape == (2,) for c in model.calls) and min(seen_t) > 0  # no call at t = 0


def test_heun_beats_euler_on_a_curved_field():
    # dx/dt = x: from x(1) = x1 the exact solution is x(0) = x1 / e
    x1 = torch.randn(SHAPE, generator=gen(3))
    text, mask = prompts()
    exact = x1 / math.e
    errors = {}
    for solver in ("euler", "heun"):
        out = sampling.sample(Recorder(lambda x, t, *_: x), x1, text, mask, num_steps=4, guidance_scale=1.0,
                              solver=solver)
        errors[solver] = (out - exact).abs().max().item() / exact.abs().max().item()
    # per step Euler multiplies by 3/4, Heun by 1 - 1/4 + 1/32 (then 3/4 on its last, Euler step)
    assert errors["euler"] == pytest.approx(abs(0.75**4 - 1 / math.e) * math.e, rel=1e-4)
    assert errors["heun"] == pytest.approx(abs(0.78125**3 * 0.75 - 1 / math.e) * math.e, rel=1e-4)
    assert errors["heun"] < errors["euler"] / 4


def text_velocity(x, t, text, mask):
    """A velocity set by the prompt: its first embedding value, everywhere."""
    return text[:, 0, 0].view(-1, 1, 1, 1, 1).expand_as(x).clone()


def test_guidance_formula_in_one_batched_call():
    noise = torch.randn(SHAPE, generator=gen(1))
    text = torch.zeros(2, 5, 8)
    text[:, 0, 0] = torch.tensor([2.0, -1.0])  # v_c
    neg = torch.zeros(1, 3, 8)  # one negative prompt for the batch, shorter than the prompts
    neg[:, 0, 0] = 0.5  # v_u
    model = Recorder(text_velocity)
    out = sampling.sample(model, noise, text, torch.ones(2, 5, dtype=torch.bool), num_steps=1, guidance_scale=5.0,
                          negative_text=neg, negative_mask=torch.ones(1, 3, dtype=torch.bool))
    v = 0.5 + 5.0 * (torch.tensor([2.0, -1.0]) - 0.5)  # v_u + g (v_c - v_u)
    torch.testing.assert_close(out, noise - v.view(2, 1, 1, 1, 1))  # one Euler step from t=1 to 0
    (call,) = model.calls  # conditional and unconditional rows in one forward
    assert call["x"].shape[0] == 4 and call["text"].shape == (4, 5, 8)
    assert call["mask"][:2].all() and call["mask"][2:, :3].all() and not call["mask"][2:, 3:].any()  # padded, masked


def test_guidance_interval_guides_only_those_noise_levels():
    noise = torch.randn(SHAPE, generator=gen(1))
    text = torch.zeros(2, 5, 8)
    text[:, 0, 0] = torch.tensor([2.0, -1.0])  # v_c
    neg = torch.zeros(1, 3, 8)
    neg[:, 0, 0] = 0.5  # v_u
    model = Recorder(text_velocity)
    out = sampling.sample(model, noise, text, torch.ones(2, 5, dtype=torch.bool), num_steps=4, guidance_scale=5.0,
                          guidance_interval=(0.4, 1.0), negative_text=neg, negative_mask=torch.ones(1, 3, dtype=torch.bool))
    # t = 1, 0.75, 0.5 guided (both rows in one call); t = 0.25 the conditional rows alone
    assert [c["x"].shape[0] for c in model.calls] == [4, 4, 4, 2]
    v_c = torch.tensor([2.0, -1.0])
    v = 0.75 * (0.5 + 5.0 * (v_c - 0.5)) + 0.25 * v_c  # three guided quarter steps, one plain
    torch.testing.assert_close(out, noise - v.view(2, 1, 1, 1, 1))
    # an edit (SDEdit) from t = 0.25: the interval is relative to its start, so its first steps
    # are guided (with the absolute interval none would be, and guidance_scale would do nothing)
    model.calls.clear()
    sampling.sample(model, noise, text, torch.ones(2, 5, dtype=torch.bool), num_steps=4, guidance_scale=5.0,
                    guidance_interval=(0.4, 1.0), negative_text=neg, negative_mask=torch.ones(1, 3, dtype=torch.bool),
                    start_latents=torch.zeros(SHAPE), strength=0.25)
    assert [c["x"].shape[0] for c in model.calls] == [4, 4, 4, 2]  # t = 0.25, 0.1875, 0.125 guided; 0.0625 not
    for bad in ((0.5, 0.2), (-0.1, 1.0), (0.0, 1.5), (0.3,), "ab", "01", None):
        with pytest.raises(ValueError, match="guidance_interval"):
            sampling.sample(model, noise, text, torch.ones(2, 5, dtype=torch.bool), guidance_scale=5.0,
                            guidance_interval=bad, negative_text=neg, negative_mask=torch.ones(1, 3, dtype=torch.bool))


def test_guidance_one_is_the_conditional_prediction():
    noise = torch.randn(SHAPE, generator=gen(1))
    text, mask = prompts()
    cond_only = Recorder(lambda x, t, text, m: torch.sin(x * 3 + text[:, 0, 0].view(-1, 1, 1, 1, 1)) * t.view(-1, 1, 1, 1, 1))
    neg, neg_mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    a = sampling.sample(cond_only, noise, text, mask, num_steps=5, guidance_scale=1.0, negative_text=neg,
                        negative_mask=neg_mask, solver="heun")
    assert all(c["x"].shape[0] == 2 for c in cond_only.calls)  # no unconditional rows at all
    # the same integration written out with the conditional velocity alone
    x, ts = noise.clone(), sampling.timesteps(5).tolist()
    f = cond_only.fn
    for i in range(5):
        tt = torch.full((2,), ts[i])
        v = f(x, tt, text, mask)
        xe = x + (ts[i + 1] - ts[i]) * v
        x = xe if i == 4 else x + (ts[i + 1] - ts[i]) * 0.5 * (v + f(xe, torch.full((2,), ts[i + 1]), text, mask))
    assert torch.equal(a, x)
    with pytest.raises(ValueError, match="needs negative_text"):
        sampling.sample(cond_only, noise, text, mask, guidance_scale=3.0)


def test_condition_frames_are_held_and_passed_to_the_model():
    x0, eps = torch.randn(SHAPE, generator=gen(1)), torch.randn(SHAPE, generator=gen(2))
    text, mask = prompts()
    cond_latents = torch.randn(SHAPE, generator=gen(4))
    cond = torch.tensor([[True, False, False], [False, False, True]])
    model = Recorder(lambda x, t, *_: torch.sin(x) + 1.0)  # would move every frame
    out = sampling.sample(model, eps, text, mask, num_steps=4, guidance_scale=2.0, negative_text=text * 0,
                          negative_mask=mask, solver="heun", cond_latents=cond_latents, cond_mask=cond)
    f = cond[:, None, :, None, None].expand(SHAPE)
    assert torch.equal(out[f], cond_latents[f])
    assert not torch.allclose(out[~f], cond_latents[~f])
    for c in model.calls:  # every model call sees the clean conditions and the mask (doubled for guidance)
        assert torch.equal(c["cond_mask"], torch.cat([cond, cond]))
        assert torch.equal(c["x"][:2][f], cond_latents[f])
    # with an exact straight field the free frames still land on x0
    out = sampling.sample(straight(x0, eps), eps, text, mask, num_steps=3, guidance_scale=1.0,
                          cond_latents=cond_latents, cond_mask=cond)
    torch.testing.assert_close(out[~f], x0[~f], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="cond_latents and cond_mask"):
        sampling.sample(model, eps, text, mask, guidance_scale=1.0, cond_mask=cond)


def test_determinism_from_a_generator():
    text, mask = prompts()
    model = Recorder(lambda x, t, *_: torch.tanh(x) - 0.3)
    a = sampling.sample(model, SHAPE, text, mask, num_steps=3, guidance_scale=1.0, generator=gen(11))
    b = sampling.sample(model, SHAPE, text, mask, num_steps=3, guidance_scale=1.0, generator=gen(11))
    c = sampling.sample(model, SHAPE, text, mask, num_steps=3, guidance_scale=1.0, generator=gen(12))
    assert a.shape == SHAPE and torch.equal(a, b) and not torch.allclose(a, c)
    # the noise drawn from a shape is torch.randn(shape, generator)
    d = sampling.sample(model, torch.randn(SHAPE, generator=gen(11)), text, mask, num_steps=3, guidance_scale=1.0)
    assert torch.equal(a, d)


def test_sdedit_starts_at_strength():
    x0, eps = torch.randn(SHAPE, generator=gen(1)), torch.randn(SHAPE, generator=gen(2))
    text, mask = prompts()
    model = straight(x0, eps)
    out = sampling.sample(model, eps, text, mask, num_steps=4, guidance_scale=1.0, shift=3.0,
                          start_latents=x0, strength=0.4)
    first = model.calls[0]
    torch.testing.assert_close(first["x"], 0.6 * x0 + 0.4 * eps)  # x0 noised to t = strength
    assert first["t"][0].item() == pytest.approx(0.4)
    assert len(model.calls) == 4
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)  # and the straight field brings it back
    # strength 1 is plain sampling from the noise
    full = sampling.sample(straight(x0, eps), eps, text, mask, num_steps=4, guidance_scale=1.0,
                           start_latents=torch.randn(SHAPE), strength=1.0)
    torch.testing.assert_close(full, x0, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="strength must be in"):
        sampling.sample(model, eps, text, mask, guidance_scale=1.0, start_latents=x0, strength=0.0)
    with pytest.raises(ValueError, match="needs start_latents"):
        sampling.sample(model, eps, text, mask, guidance_scale=1.0, strength=0.5)


def test_callback_hook_and_progress():
    text, mask = prompts()
    seen = []

    def callback(step, t_next, x):
        seen.append((step, t_next))
        return torch.zeros_like(x) if step == 1 else None  # e.g. loops rewrite the latents here

    model = Recorder(lambda x, t, *_: torch.ones_like(x))
    out = sampling.sample(model, torch.randn(SHAPE), text, mask, num_steps=3, guidance_scale=1.0, callback=callback,
                          progress=True)
    assert [s for s, _ in seen] == [0, 1, 2] and seen[-1][1] == 0.0
    assert torch.equal(model.calls[2]["x"], torch.zeros(SHAPE))  # the replacement was used
    torch.testing.assert_close(out, torch.full(SHAPE, -1 / 3))


def test_bad_arguments():
    text, mask = prompts()
    model = Recorder(lambda x, *_: x)
    with pytest.raises(ValueError, match="solver must be one of"):
        sampling.sample(model, SHAPE, text, mask, guidance_scale=1.0, solver="rk4")
    with pytest.raises(ValueError, match=r"text must be \(3, L, D\)"):
        sampling.sample(model, (3, 4, 3, 4, 4), text, mask, guidance_scale=1.0)
    with pytest.raises(ValueError, match="cond_mask must be bool"):
        sampling.sample(model, SHAPE, text, mask, guidance_scale=1.0, cond_latents=torch.zeros(SHAPE),
                        cond_mask=torch.ones(2, 2, dtype=torch.bool))


def two_velocities(v_c: torch.Tensor, v_u: torch.Tensor) -> Recorder:
    """A model whose conditional rows (text[:, 0, 0] == 1) predict v_c and unconditional rows v_u."""
    return Recorder(lambda x, t, text, mask: torch.where(text[:, 0, 0].view(-1, 1, 1, 1, 1) == 1, v_c.repeat(2, 1, 1, 1, 1)[: x.shape[0]],
                                                         v_u.repeat(2, 1, 1, 1, 1)[: x.shape[0]]))


def guided_step(method: str, options: dict | None, v_c, v_u, noise, scale=4.0, **kw) -> torch.Tensor:
    text = torch.zeros(2, 5, 8)
    text[:, 0, 0] = 1.0
    neg = torch.zeros(1, 3, 8)
    return sampling.sample(two_velocities(v_c, v_u), noise, text, torch.ones(2, 5, dtype=torch.bool), num_steps=1,
                           guidance_scale=scale, negative_text=neg, negative_mask=torch.ones(1, 3, dtype=torch.bool),
                           guidance_method=method, guidance_options=options, **kw)


def test_cfg_zero_star_fits_the_unconditional_scale():
    noise = torch.randn(SHAPE, generator=gen(1))
    v_c = torch.randn(SHAPE, generator=gen(2))
    # predictions that differ only by scale carry no prompt: CFG-Zero* leaves v_c, plain CFG amplifies the scale
    out = guided_step("cfg-zero-star", None, v_c, 0.5 * v_c, noise)
    torch.testing.assert_close(out, noise - v_c)  # one Euler step from t = 1 to 0
    plain = guided_step("cfg", None, v_c, 0.5 * v_c, noise)
    torch.testing.assert_close(plain, noise - (0.5 + 4.0 * 0.5) * v_c)
    # in general: s* = <v_c, v_u> / |v_u|^2 per sample, then v = s* v_u + g (v_c - s* v_u)
    v_u = torch.randn(SHAPE, generator=gen(3))
    s = (v_c * v_u).sum((1, 2, 3, 4), keepdim=True) / (v_u * v_u).sum((1, 2, 3, 4), keepdim=True)
    out = guided_step("cfg-zero-star", None, v_c, v_u, noise)
    torch.testing.assert_close(out, noise - (s * v_u + 4.0 * (v_c - s * v_u)))


def test_cfg_zero_star_zero_init_steps_move_nothing():
    noise = torch.randn(SHAPE, generator=gen(1))
    text, mask = prompts()
    model = Recorder(lambda x, t, *_: torch.ones_like(x))
    out = sampling.sample(model, noise, text, mask, num_steps=4, guidance_scale=3.0, negative_text=text[:1],
                          negative_mask=mask[:1], guidance_method="cfg-zero-star",
                          guidance_options={"zero_init_steps": 2})
    assert len(model.calls) == 2  # the first two steps call no model
    torch.testing.assert_close(out, noise - 0.5)  # only t = 0.5 -> 0 moved, at velocity 1
    # an edit starts from its input, not from noise: nothing is zeroed
    model.calls.clear()
    sampling.sample(model, noise, text, mask, num_steps=4, guidance_scale=3.0, negative_text=text[:1],
                    negative_mask=mask[:1], guidance_method="cfg-zero-star", guidance_options={"zero_init_steps": 2},
                    start_latents=torch.zeros(SHAPE), strength=0.5)
    assert len(model.calls) == 4


def test_apg_is_plain_guidance_with_all_of_it_kept():
    noise = torch.randn(SHAPE, generator=gen(1))
    v_c, v_u = torch.randn(SHAPE, generator=gen(2)), torch.randn(SHAPE, generator=gen(3))
    kw = dict(num_steps=3)
    text = torch.zeros(2, 5, 8)
    text[:, 0, 0] = 1.0
    args = (noise, text, torch.ones(2, 5, dtype=torch.bool))
    neg = dict(negative_text=torch.zeros(1, 3, 8), negative_mask=torch.ones(1, 3, dtype=torch.bool), guidance_scale=4.0)
    plain = sampling.sample(two_velocities(v_c, v_u), *args, **neg, **kw)
    apg = sampling.sample(two_velocities(v_c, v_u), *args, **neg, **kw, guidance_method="apg",
                          guidance_options={"eta": 1.0})
    torch.testing.assert_close(apg, plain, atol=1e-5, rtol=1e-5)


def test_apg_removes_the_update_along_the_conditional_prediction():
    x = torch.randn(SHAPE, generator=gen(1))
    v_c, v_u = torch.randn(SHAPE, generator=gen(2)), torch.randn(SHAPE, generator=gen(3))
    t = 0.6
    x0_c = x - t * v_c
    v, _ = sampling.projected_guidance(x, t, v_c, v_u, 5.0)
    update = (x - t * v) - x0_c  # the guided denoised prediction's move away from the conditional one
    assert update.abs().max() > 0.1
    cos = (update * x0_c).sum((1, 2, 3, 4)) / (update.flatten(1).norm(dim=1) * x0_c.flatten(1).norm(dim=1))
    assert cos.abs().max() < 1e-5
    # eta keeps that share of the parallel part: half way between eta 0 and plain guidance
    v_half, _ = sampling.projected_guidance(x, t, v_c, v_u, 5.0, eta=0.5)
    v_full, _ = sampling.projected_guidance(x, t, v_c, v_u, 5.0, eta=1.0)
    torch.testing.assert_close(v_half, (v + v_full) / 2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_full, v_u + 5.0 * (v_c - v_u), atol=1e-5, rtol=1e-5)


def test_apg_norm_threshold_and_momentum():
    x = torch.randn(SHAPE, generator=gen(1))
    v_c, v_u = torch.randn(SHAPE, generator=gen(2)), torch.randn(SHAPE, generator=gen(3))
    t = 0.5
    rms = (t * (v_u - v_c)).pow(2).mean((1, 2, 3, 4))  # the update's mean square, ~0.5 here
    v, _ = sampling.projected_guidance(x, t, v_c, v_u, 5.0, eta=1.0, norm_threshold=0.1)
    update = ((x - t * v) - (x - t * v_c)) / 4.0  # (g - 1) * capped diff
    torch.testing.assert_close(update.pow(2).mean((1, 2, 3, 4)).sqrt(), torch.full((2,), 0.1))
    assert (rms.sqrt() > 0.1).all()
    # a cap above the update's size changes nothing
    v_big, _ = sampling.projected_guidance(x, t, v_c, v_u, 5.0, eta=1.0, norm_threshold=10.0)
    torch.testing.assert_close(v_big, v_u + 5.0 * (v_c - v_u), atol=1e-5, rtol=1e-5)
    # momentum: the running update is this step's plus momentum times the last running one
    prev = torch.randn(SHAPE, generator=gen(4))
    _, running = sampling.projected_guidance(x, t, v_c, v_u, 5.0, momentum=-0.5, running=prev)
    torch.testing.assert_close(running, t * (v_u - v_c) - 0.5 * prev)


class ThreeVelocities(nn.Module):
    """v_c on conditional rows, v_u on unconditional ones, v_p when asked for perturbed blocks."""

    def __init__(self, v_c, v_u, v_p):
        super().__init__()
        self.v, self.calls = (v_c, v_u, v_p), []

    def forward(self, x, timestep, text, text_mask, cond_mask=None, perturbed_blocks=(), perturbation="frame"):
        self.calls.append((x.shape[0], tuple(perturbed_blocks), perturbation, float(timestep[0])))
        v_c, v_u, v_p = (v.repeat(2, 1, 1, 1, 1)[: x.shape[0]] for v in self.v)
        if perturbed_blocks:
            return v_p
        return torch.where(text[:, 0, 0].view(-1, 1, 1, 1, 1) == 1, v_c, v_u)


def test_skip_guidance_steers_away_from_the_perturbed_model():
    noise = torch.randn(SHAPE, generator=gen(1))
    v_c, v_u, v_p = (torch.randn(SHAPE, generator=gen(i)) for i in (2, 3, 4))
    text = torch.zeros(2, 5, 8)
    text[:, 0, 0] = 1.0
    model = ThreeVelocities(v_c, v_u, v_p)
    kw = dict(negative_text=torch.zeros(1, 3, 8), negative_mask=torch.ones(1, 3, dtype=torch.bool),
              guidance_scale=4.0, guidance_method="stg")
    out = sampling.sample(model, noise, text, torch.ones(2, 5, dtype=torch.bool), num_steps=1,
                          guidance_options={"scale": 1.5, "block": 1, "blocks": 2}, **kw)
    torch.testing.assert_close(out, noise - (v_u + 4.0 * (v_c - v_u) + 1.5 * (v_c - v_p)))  # one step, t 1 -> 0
    assert model.calls == [(4, (), "frame", 1.0), (2, (1, 2), "frame", 1.0)]  # guided pair, then the weak model
    # identity attention on request; outside the guidance interval one conditional call, no weak model
    model.calls.clear()
    out = sampling.sample(model, noise, text, torch.ones(2, 5, dtype=torch.bool), num_steps=2, shift=1.0,
                          guidance_interval=(0.6, 1.0), guidance_options={"identity": 1}, **kw)
    assert model.calls == [(4, (), "frame", 1.0), (2, (2,), "identity", 1.0), (2, (), "frame", 0.5)]
    # scale 0 is plain guidance
    plain = guided_step("cfg", None, v_c, v_u, noise)
    model.calls.clear()
    zero = sampling.sample(model, noise, text, torch.ones(2, 5, dtype=torch.bool), num_steps=1,
                           guidance_options={"scale": 0.0}, **kw)
    torch.testing.assert_close(zero, plain)


def test_guidance_methods_judge_only_the_frames_being_generated():
    noise = torch.randn(SHAPE, generator=gen(1))
    v_c = torch.randn(SHAPE, generator=gen(2))
    v_u = 0.5 * v_c
    v_u[:, :, 0] = torch.randn(2, 4, 4, 4, generator=gen(3)) * 100  # a held frame's predictions, wildly off
    cond = torch.zeros(2, 3, dtype=torch.bool)
    cond[:, 0] = True
    out = guided_step("cfg-zero-star", None, v_c, v_u, noise, cond_latents=torch.zeros(SHAPE), cond_mask=cond)
    torch.testing.assert_close(out[:, :, 1:], (noise - v_c)[:, :, 1:])  # s* fitted on frames 1-2 alone


def test_guidance_method_errors_name_what_is_wrong():
    noise = torch.randn(SHAPE, generator=gen(1))
    v = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="guidance_method must be one of cfg, cfg-zero-star, apg, stg, got 'pag'"):
        guided_step("pag", None, v, v, noise)
    with pytest.raises(ValueError, match="'zero_init_steps' is not one of apg's.*momentum, norm_threshold, eta"):
        guided_step("apg", {"zero_init_steps": 1}, v, v, noise)
    with pytest.raises(ValueError, match="'eta' is not one of cfg's.*none"):
        guided_step("cfg", {"eta": 1}, v, v, noise)
    with pytest.raises(ValueError, match="momentum must be a finite number, got 'x'"):
        guided_step("apg", {"momentum": "x"}, v, v, noise)
    with pytest.raises(ValueError, match="zero_init_steps must be a whole number >= 0, got 1.5"):
        guided_step("cfg-zero-star", {"zero_init_steps": 1.5}, v, v, noise)
    with pytest.raises(ValueError, match="blocks must be a whole number >= 0, got 0.5"):
        guided_step("stg", {"blocks": 0.5}, v, v, noise)
    with pytest.raises(ValueError, match="identity must be 0 or 1, got 2"):
        guided_step("stg", {"identity": 2}, v, v, noise)
    with pytest.raises(ValueError, match="block must be a whole number"):
        guided_step("stg", {"block": 1.5}, v, v, noise)
    with pytest.raises(ValueError, match="norm_threshold must be >= 0"):
        guided_step("apg", {"norm_threshold": -1}, v, v, noise)
    assert sampling.check_guidance_method("apg", {"momentum": -0.5}) == {"momentum": -0.5, "norm_threshold": 0.0, "eta": 0.0}


def test_the_cli_offers_the_samplers_guidance_methods():
    from spacetime.cli import GUIDANCE_METHODS

    assert GUIDANCE_METHODS == tuple(sampling.GUIDANCE_METHODS)


def test_autoguidance_probe_adds_the_guides_push_to_plain_guidance(bench_module):
    """bench/autoguidance.py: the sampler's v_u + g(v_c - v_u) of the rows it returns is
    v_c + (g - 1)(v_c - v_u) + (scale - 1)(v_c - v_guide); scale 1 leaves the model alone."""
    ag = bench_module("autoguidance")

    class Linear(torch.nn.Module):  # a stand-in DiT: its velocity depends on x and the text
        def __init__(self, a):
            super().__init__()
            self.a = a

        def forward(self, x, t, text, mask, **kw):
            return self.a * x + text.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)

    model, guide = Linear(2.0), Linear(0.5)
    x = torch.randn(1, 4, 2, 3, 3)
    t = torch.full((1,), 0.7)
    text, empty = torch.randn(1, 5, 8), torch.zeros(1, 5, 8)
    mask = torch.ones(1, 5, dtype=torch.bool)
    g, scale = 5.0, 2.5
    v_c, v_u, v_b = model(x, t, text, mask), model(x, t, empty, mask), guide(x, t, text, mask)
    want = v_c + (g - 1) * (v_c - v_u) + (scale - 1) * (v_c - v_b)
    wrapped = ag.Autoguided(model, guide, scale, g, everywhere=False)
    got = sampling.guided_velocity(wrapped, x, t, text, mask, empty, mask, g)
    assert torch.allclose(got, want, atol=1e-5)
    # outside the guidance interval (one row): the model alone, or with the push where asked
    assert torch.equal(wrapped(x, t, text, mask), v_c)
    everywhere = ag.Autoguided(model, guide, scale, g, everywhere=True)
    assert torch.allclose(everywhere(x, t, text, mask), v_c + (scale - 1) * (v_c - v_b), atol=1e-6)
    plain = ag.Autoguided(model, guide, 1.0, g, everywhere=True)
    assert torch.equal(sampling.guided_velocity(plain, x, t, text, mask, empty, mask, g),
                       sampling.guided_velocity(model, x, t, text, mask, empty, mask, g))
