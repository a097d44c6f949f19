"""Rectified flow on video latents: the noising path, timestep sampling and the training loss.

    x_t = (1 - t) * x0 + t * eps        t in [0, 1]: 0 is data, 1 is pure noise
    v   = d x_t / dt = eps - x0         what the model learns to predict

Timesteps are drawn from a logit-normal (SD3: t = sigmoid(m + s*n), n ~ N(0, 1)), which spends
training on the middle of the path where the velocity is hardest to guess, then shifted towards
noise for larger inputs, t' = shift*t / (1 + (shift - 1)*t): neighbouring tokens of a large
latent are correlated, so a given noise level hides less of it, and the shift restores the
signal-to-noise ratio a small input would have at t (SD3 section 5.3.2; Open-Sora 1.2's
resolution and duration shift). `resolution_shift` gives the shift for a latent size, and
training and sampling must use the same one.

Conditioning frames (image->video, extension, connecting) are kept clean in x_t and excluded from
the loss, so one model learns every prompting mode; the model is told which they are by cond_mask.
Prompts are dropped to "" (the unconditional input, see text.py) for classifier-free guidance.
Every random draw comes from the torch.Generator given, so training is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from spacetime.text import EMPTY_PROMPT  # "": the unconditional input, encoded like any prompt


def _bcast(t: Tensor, x: Tensor) -> Tensor:
    """(B,) timesteps -> (B, 1, 1, 1, 1) to scale x (B, C, T, H, W)."""
    return t.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t) * x0 + t * noise, with t (B,)."""
    tb = _bcast(t, x0)
    return (1 - tb) * x0 + tb * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The velocity of the straight path from x0 to noise: constant along it."""
    return noise - x0


def shift_timesteps(t: Tensor, shift: float | Tensor) -> Tensor:
    """t' = shift*t / (1 + (shift - 1)*t): monotone, keeps 0 and 1, moves t towards 1 (noise) for
    shift > 1. `shift` is a number or one per sample, (B,) like t."""
    shift = torch.as_tensor(shift, dtype=t.dtype, device=t.device)
    if (shift <= 0).any():
        raise ValueError(f"shift must be > 0, got {shift.tolist()}")
    return shift * t / (1 + (shift - 1) * t)


def unshift_timesteps(t: Tensor, shift: float | Tensor) -> Tensor:
    """The inverse of `shift_timesteps`: t = t' / (shift - (shift - 1)*t')."""
    shift = torch.as_tensor(shift, dtype=t.dtype, device=t.device)
    if (shift <= 0).any():
        raise ValueError(f"shift must be > 0, got {shift.tolist()}")
    return t / (shift - (shift - 1) * t)


def sample_timesteps(
    batch: int,
    *,
    generator: torch.Generator | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    shift: float | Tensor = 1.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """(batch,) float32 training timesteps: sigmoid(mean + std*N(0, 1)), then shifted. Drawn on the
    generator's device (CPU without one) and returned on `device` (default: that same device)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    n = torch.randn(batch, generator=generator, device=gen_device)
    t = shift_timesteps(torch.sigmoid(mean + std * n), shift)
    return t.to(device) if device is not None else t


def resolution_shift(
    num_tokens: int,
    *,
    base_tokens: int = 256,
    base_shift: float = 1.0,
    min_shift: float = 1.0,
    max_shift: float | None = None,
) -> float:
    """The timestep shift for a latent of `num_tokens` DiT tokens (frames x height x width, after
    patchify): shift = base_shift * sqrt(num_tokens / base_tokens), clamped to [min_shift, max_shift].

    The square root is SD3's (and Open-Sora 1.2's) rule: shifting by s scales the signal-to-noise
    ratio by 1/s^2, and an input of n correlated tokens needs its SNR scaled by base/n to look as
    noisy as one of `base_tokens`. The base is SD3's: shift 1 at 256 tokens (a 256^2 image, 2x2
    patches on a 32x32 latent); SD3 found shift 3 best at 4096 tokens, where this gives 4. Smaller
    inputs are not shifted below `min_shift`=1: extrapolating towards less noise was never shown to help.
    """
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    if base_tokens < 1:
        raise ValueError(f"base_tokens must be >= 1, got {base_tokens}")
    if not base_shift > 0 or not min_shift > 0:
        raise ValueError(f"base_shift and min_shift must be > 0, got {base_shift} and {min_shift}")
    if max_shift is not None and max_shift < min_shift:
        raise ValueError(f"max_shift {max_shift} is below min_shift {min_shift}")
    shift = max(base_shift * math.sqrt(num_tokens / base_tokens), min_shift)
    return min(shift, max_shift) if max_shift is not None else shift


def drop_prompts(prompts: Sequence[str], p: float = 0.1, *, generator: torch.Generator | None = None) -> list[str]:
    """Replace each prompt by "" with probability p, for classifier-free guidance training. One
    uniform draw per prompt whatever p is, so the generator's later draws do not depend on p."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"prompt dropout p must be in [0, 1], got {p}")
    prompts = list(prompts)
    if not prompts:
        return []
    u = torch.rand(len(prompts), generator=generator, device=generator.device if generator is not None else "cpu")
    return [EMPTY_PROMPT if drop else prompt for prompt, drop in zip(prompts, (u < p).tolist())]


CONDITION_KINDS = ("first", "prefix", "suffix", "ends")


def draw_condition_masks(
    frames: Sequence[int], p: float, *, generator: torch.Generator | None = None
) -> list[Tensor | None]:
    """Per sample of `frames` latent frames: with probability p, a mask (t,) bool of the latent
    frames given clean, of one of the kinds the prompting modes use — "first" (image→video),
    "prefix" (extend forward), "suffix" (extend backward), "ends" (connect two videos) — drawn
    uniformly, with the given lengths uniform too; otherwise None. At least one frame is always
    left to generate (a 1-frame sample is never conditioned). Three draws per sample whatever p
    is, so later draws from the generator do not depend on p."""
    if not 0 <= p <= 1:
        raise ValueError(f"condition probability must be in [0, 1], got {p}")
    gen_device = generator.device if generator is not None else "cpu"
    u = torch.rand(len(frames), 3, generator=generator, device=gen_device).tolist()
    out: list[Tensor | None] = []
    for t, (coin, kind_u, len_u) in zip(frames, u):
        if t < 2 or coin >= p:
            out.append(None)
            continue
        kind = CONDITION_KINDS[min(int(kind_u * len(CONDITION_KINDS)), len(CONDITION_KINDS) - 1)]
        mask = torch.zeros(t, dtype=torch.bool)
        k = 1 + min(int(len_u * (t - 1)), t - 2)  # 1 .. t-1 frames given
        if kind == "first":
            mask[0] = True
        elif kind == "prefix":
            mask[:k] = True
        elif kind == "suffix":
            mask[t - k :] = True
        elif t >= 3:  # "ends": 2 .. t-1 frames split between both ends, at least one free between
            given = 2 + min(int(len_u * (t - 2)), t - 3)
            head = (given + 1) // 2
            mask[:head] = True
            mask[t - (given - head) :] = True
        else:
            mask[0] = True
        out.append(mask)
    return out


def _check_cond_mask(cond_mask: Tensor, x0: Tensor) -> Tensor:
    b, t = x0.shape[0], x0.shape[2]
    if cond_mask.shape != (b, t) or cond_mask.dtype != torch.bool:
        raise ValueError(f"cond_mask must be bool ({b}, {t}) (True at latent frames given clean), "
                         f"got {cond_mask.dtype} {tuple(cond_mask.shape)}")
    return cond_mask.to(x0.device)


def rectified_flow_loss(
    model: Callable[..., Tensor],
    x0: Tensor,
    text: Tensor,
    text_mask: Tensor,
    *,
    cond_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    timestep: Tensor | None = None,
    noise: Tensor | None = None,
    shift: float | Tensor = 1.0,
    mean: float = 0.0,
    std: float = 1.0,
) -> Tensor:
    """MSE between the model's velocity at x_t and eps - x0, for latents x0 (B, C, T, H, W).

    Draws, in this order from `generator`: timesteps (logit-normal(mean, std), shifted by
    `shift`) unless `timestep` (B,) is given (used as is), then noise unless `noise` is given.
    Frames where cond_mask (B, T) is True stay clean in x_t (x_t = x0 there), the model is told
    (`cond_mask=`), and they are left out of the loss: it is the mean over the elements of the
    other frames only. The model is called as model(x_t, t, text, text_mask[, cond_mask=...])."""
    if x0.ndim != 5:
        raise ValueError(f"x0 must be (B, C, T, H, W), got shape {tuple(x0.shape)}")
    b = x0.shape[0]
    if timestep is None:
        timestep = sample_timesteps(b, generator=generator, mean=mean, std=std, shift=shift)
    timestep = timestep.to(x0.device, torch.float32)
    if timestep.shape != (b,):
        raise ValueError(f"timestep must be ({b},), got shape {tuple(timestep.shape)}")
    if noise is None:
        gen_device = generator.device if generator is not None else x0.device
        noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=torch.float32)
    noise = noise.to(x0.device, x0.dtype)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
    xt = interpolate(x0, noise, timestep)  # (B, C, T, H, W)
    target = velocity_target(x0, noise).float()
    if cond_mask is None:
        pred = model(xt, timestep, text, text_mask)
        return (pred.float() - target).pow(2).mean()
    cond_mask = _check_cond_mask(cond_mask, x0)
    if cond_mask.all():
        raise ValueError("cond_mask marks every latent frame as a condition: nothing is left to learn")
    frames = cond_mask[:, None, :, None, None]  # (B, 1, T, 1, 1)
    xt = torch.where(frames, x0, xt)  # conditions are clean, as the sampler will hold them
    pred = model(xt, timestep, text, text_mask, cond_mask=cond_mask)
    # where(), not a multiply: a non-finite prediction on a condition frame must not leak in
    err = torch.where(frames, 0.0, (pred.float() - target).pow(2))  # (B, C, T, H, W)
    c, _, h, w = x0.shape[1:]
    count = (~cond_mask).sum() * c * h * w  # elements of the frames that count
    return err.sum() / count


__all__ = [
    "EMPTY_PROMPT",
    "drop_prompts",
    "interpolate",
    "rectified_flow_loss",
    "resolution_shift",
    "sample_timesteps",
    "shift_timesteps",
    "unshift_timesteps",
    "velocity_target",
]
