"""Sampling: integrate the learned velocity field from noise (t = 1) to data (t = 0).

    latents = sample(model, noise, text, text_mask, num_steps=25, guidance_scale=5.0,
                     negative_text=empty_text, negative_mask=empty_mask, shift=flow.resolution_shift(n))

The path is flow.py's x_t = (1 - t)*x0 + t*eps, so dx/dt = v and the Euler update is one line,
x <- x + (t_next - t)*v. Euler is exact when v is constant along the path (a perfectly straight
flow); Heun (the trapezoid of v at both ends, EDM's second-order step) follows curved paths
better at two model calls per step, and its last step, to t = 0, is Euler (as in EDM: no call at
t = 0, where the model was never trained on clean input). The step times are evenly spaced in
the unshifted time and then shifted like training's timesteps, so they crowd where training did.

Classifier-free guidance: v = v_u + g*(v_c - v_u), with the negative prompt's encoding as the
unconditional input (the encoding of "" when there is no negative prompt — the caller encodes it,
this module has no text encoder). Conditional and unconditional rows go through the model as one
batch; g == 1 makes a single conditional pass and is exactly the conditional prediction.

Spatiotemporal skip guidance (STG, Hyung et al. 2025) adds a third prediction: the model's own,
weakened where it carries information across time (a block's self-attention kept within each
latent frame), and steers away from it. Such a model draws each frame on its own — objects that
flicker, duplicate or vanish between frames — so its difference from the full model points
towards what stays consistent in time: the permanence this project's eval measures.

Conditions: latent frames where cond_mask (B, t) is True are held at cond_latents (clean) before
every model call and in the result, and the model is given cond_mask — the same as training, so
one model does text->video, image->video, extension and connecting. SDEdit (video->video) starts
from `start_latents` noised to t = strength and integrates from there. Loops (tying the first and
last latent frames) go through `callback`, which may replace the latents after each step.

A guidance-distilled model (DiT `guidance_embed`) was trained to predict v_u + g*(v_c - v_u) from
the prompt and g alone: `embedded_guidance=True` hands it g at each step, one pass on B rows
(g = 1 outside the guidance interval), and needs no negative prompt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from spacetime.flow import shift_timesteps, unshift_timesteps

SOLVERS = ("euler", "heun")
# each guidance method's options and their defaults
GUIDANCE_METHODS = {
    "cfg": {},
    "cfg-zero-star": {"zero_init_steps": 0},
    "apg": {"momentum": 0.0, "norm_threshold": 0.0, "eta": 0.0},
    "stg": {"scale": 1.0, "block": 2, "blocks": 1, "identity": 0},
}


def timesteps(num_steps: int, shift: float = 1.0, start: float = 1.0) -> Tensor:
    """(num_steps + 1,) float64 times from `start` down to 0: evenly spaced before the shift, and
    `start` exactly after it (SDEdit's strength is the noise level itself, shift or not)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start must be in (0, 1], got {start}")
    u0 = unshift_timesteps(torch.tensor(start, dtype=torch.float64), shift)
    ts = shift_timesteps(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64) * u0, shift)
    ts[0], ts[-1] = start, 0.0  # exact ends, free of rounding
    return ts


def _pad_tokens(text: Tensor, mask: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Zero-pad (B, L, D) text and its (B, L) mask to L = length: padding is masked out anyway."""
    extra = length - text.shape[1]
    if extra == 0:
        return text, mask
    return (torch.cat([text, text.new_zeros(text.shape[0], extra, text.shape[2])], 1),
            torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], 1))


def predictions(
    model: Callable[..., Tensor],
    x: Tensor,
    t: Tensor,
    text: Tensor,
    text_mask: Tensor,
    negative_text: Tensor,
    negative_mask: Tensor,
    cond_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(v_c, v_u): the conditional and unconditional velocities at latents x (B, C, T, H, W) and
    times t (B,), in one model call on 2B rows (conditional first)."""
    length = max(text.shape[1], negative_text.shape[1])
    text, text_mask = _pad_tokens(text, text_mask, length)
    negative_text, negative_mask = _pad_tokens(negative_text, negative_mask, length)
    extra = {} if cond_mask is None else {"cond_mask": torch.cat([cond_mask, cond_mask])}  # (2B, T)
    out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([text, negative_text]),
                torch.cat([text_mask, negative_mask]), **extra)  # (2B, C, T, H, W)
    v_c, v_u = out.to(x.dtype).chunk(2)
    return v_c, v_u


def conditional_velocity(model: Callable[..., Tensor], x: Tensor, t: Tensor, text: Tensor, text_mask: Tensor,
                         cond_mask: Tensor | None = None, **kwargs) -> Tensor:
    """The model's velocity for the prompt alone, one call on the B rows; `kwargs` go to the model
    (skip guidance's perturbed_blocks and perturbation)."""
    extra = {} if cond_mask is None else {"cond_mask": cond_mask}  # models without conditions need no kwarg
    return model(x, t, text, text_mask, **extra, **kwargs).to(x.dtype)


def guided_velocity(
    model: Callable[..., Tensor],
    x: Tensor,
    t: Tensor,
    text: Tensor,
    text_mask: Tensor,
    negative_text: Tensor | None,
    negative_mask: Tensor | None,
    guidance_scale: float,
    cond_mask: Tensor | None = None,
) -> Tensor:
    """v_u + g*(v_c - v_u) at latents x (B, C, T, H, W) and times t (B,), in one model call on 2B
    rows (conditional first); g == 1: one call on the B conditional rows, v_c itself."""
    if guidance_scale == 1.0:
        return conditional_velocity(model, x, t, text, text_mask, cond_mask)
    v_c, v_u = predictions(model, x, t, text, text_mask, negative_text, negative_mask, cond_mask)
    return v_u + guidance_scale * (v_c - v_u)


def _dot(a: Tensor, b: Tensor, weight: Tensor | None) -> Tensor:
    """Per-sample inner product over C, T, H, W, (B, 1, 1, 1, 1); `weight` (B, 1, T, 1, 1) leaves
    held frames out, so that guidance is judged on the frames being generated."""
    prod = a * b if weight is None else a * b * weight
    return prod.sum(dim=(1, 2, 3, 4), keepdim=True)


def cfg_zero_star(v_c: Tensor, v_u: Tensor, guidance_scale: float, weight: Tensor | None = None) -> Tensor:
    """CFG-Zero* (Fan et al. 2025): the unconditional velocity scaled by the s* that best fits it
    to the conditional one (least squares, per sample) before guiding away from it. An undertrained
    flow model's v_u and v_c differ partly by scale; plain guidance amplifies that error too."""
    scale = _dot(v_c, v_u, weight) / _dot(v_u, v_u, weight).clamp_min(1e-12)
    v_u = scale * v_u
    return v_u + guidance_scale * (v_c - v_u)


def projected_guidance(
    x: Tensor,
    time: float,
    v_c: Tensor,
    v_u: Tensor,
    guidance_scale: float,
    *,
    momentum: float = 0.0,
    running: Tensor | None = None,
    norm_threshold: float = 0.0,
    eta: float = 0.0,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Adaptive projected guidance (APG, Sadat et al. 2024), in the denoised space x0 = x - t*v
    where it was defined: the guidance update x0_c - x0_u, averaged with `momentum` (negative:
    against the last steps' direction) into `running`, its RMS capped at `norm_threshold` (0: no
    cap), and its component along x0_c kept only at `eta` (0: none). The parallel part is what
    oversaturates and stacks duplicates at high scales; the orthogonal part carries the prompt.
    eta 1, momentum 0 and no cap are plain guidance. Returns (velocity, running)."""
    t = max(time, 1e-4)
    diff = t * (v_u - v_c)  # x0_c - x0_u
    if momentum:
        running = diff if running is None else diff + momentum * running
        diff = running
    if norm_threshold > 0:
        per_frame = diff[0, :, 0].numel()  # C*H*W
        count = diff[0].numel() if weight is None else weight.sum(dim=(1, 2, 3, 4), keepdim=True) * per_frame
        rms = (_dot(diff, diff, weight) / count).sqrt()
        diff = diff * (norm_threshold / rms.clamp_min(1e-12)).clamp(max=1.0)
    x0_c = x - t * v_c
    unit = x0_c / _dot(x0_c, x0_c, weight).sqrt().clamp_min(1e-12)
    parallel = _dot(diff, unit, weight) * unit
    update = diff - parallel + eta * parallel
    x0 = x0_c + (guidance_scale - 1.0) * update
    return (x - x0) / t, running


def check_guidance_method(method: str, options: dict | None = None) -> dict:
    """`options` for guidance `method` with its defaults filled in, or a ValueError naming what is
    wrong: an unknown method, an option the method has not, a value that is not a number."""
    if method not in GUIDANCE_METHODS:
        raise ValueError(f"guidance_method must be one of {', '.join(GUIDANCE_METHODS)}, got {method!r}")
    known = GUIDANCE_METHODS[method]
    options = dict(options or {})
    unknown = sorted(set(options) - set(known))
    if unknown:
        has = ", ".join(known) or "none"
        raise ValueError(f"guidance option {unknown[0]!r} is not one of {method}'s (it has: {has})")
    out = dict(known)
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"guidance option {key} must be a finite number, got {value!r}")
        if key in ("zero_init_steps", "blocks", "identity") and (value < 0 or value != int(value)):
            raise ValueError(f"guidance option {key} must be a whole number >= 0, got {value!r}")
        if key == "identity" and value not in (0, 1):
            raise ValueError(f"guidance option identity must be 0 or 1, got {value!r}")
        if key == "block" and value != int(value):
            raise ValueError(f"guidance option block must be a whole number (a block's index), got {value!r}")
        if key in ("norm_threshold", "eta") and value < 0:
            raise ValueError(f"guidance option {key} must be >= 0, got {value!r}")
        out[key] = int(value) if isinstance(known[key], int) else float(value)  # counts, indices, flags: ints
    return out


def check_guidance_interval(interval) -> tuple[float, float]:
    """(lo, hi) with 0 <= lo <= hi <= 1, or a ValueError naming guidance_interval."""
    try:
        if isinstance(interval, (str, bytes)):  # "01" would be read as (0, 1)
            raise TypeError
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance_interval must be two numbers (lo, hi), got {interval!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"guidance_interval must be (lo, hi) with 0 <= lo <= hi <= 1 (noise levels), got {interval!r}")
    return lo, hi


@torch.no_grad()
def sample(
    model: Callable[..., Tensor],
    noise: Tensor | Sequence[int],
    text: Tensor,
    text_mask: Tensor,
    *,
    num_steps: int = 25,
    guidance_scale: float = 5.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    guidance_method: str = "cfg",
    guidance_options: dict | None = None,
    embedded_guidance: bool = False,
    negative_text: Tensor | None = None,
    negative_mask: Tensor | None = None,
    solver: str = "euler",
    shift: float = 1.0,
    cond_latents: Tensor | None = None,
    cond_mask: Tensor | None = None,
    start_latents: Tensor | None = None,
    strength: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callable[[int, float, Tensor], Tensor | None] | None = None,
    progress: bool = False,
) -> Tensor:
    """Latents (B, C, T, H, W) at t = 0.

    noise: the starting noise (B, C, T, H, W), or its shape, drawn then as
        torch.randn(shape, generator=generator) on the generator's device (the same numbers for
        the same seed) and moved to text's device. The integration itself draws nothing.
    text, text_mask: (B, L, D) float and (B, L) bool, the prompts' encodings.
    negative_text, negative_mask: the unconditional input, (B or 1, L', D) and (B or 1, L');
        required when guidance_scale != 1 (pass the encoding of "" for plain guidance).
    guidance_interval: (lo, hi), the noise levels t at which guidance is applied; elsewhere the
        conditional prediction alone, one pass (guidance in a limited interval, Kynkäänniemi et al.
        2024: near the data it pushes samples off it for nothing, the layout being settled). For
        SDEdit it is relative to the start, strength: guidance at t in [lo, hi] * strength, so that
        an edit from low noise is guided at its own start (not at no step at all).
    guidance_method, guidance_options: how v_c and v_u combine where guidance applies: "cfg"
        (v_u + g*(v_c - v_u)), "cfg-zero-star" (`cfg_zero_star`; option zero_init_steps: the first
        steps from noise move nothing, as its paper does) or "apg" (`projected_guidance`; options
        momentum, norm_threshold, eta) or "stg": plain guidance plus spatiotemporal skip guidance,
        scale*(v_c - v_p), away from the prediction v_p of the model with the self-attention of
        `blocks` blocks from `block` kept within each latent frame (`identity` 1: each token
        attending to itself alone) — one more pass on B rows at each guided step; the model must
        take DiT.forward's perturbed_blocks and perturbation. GUIDANCE_METHODS lists the options
        and their defaults.
    embedded_guidance: the model takes the guidance scale itself (`guidance=`, a
        guidance-distilled DiT): one pass per step with g, plain "cfg" only, no negative prompt.
    solver: "euler" (num_steps model calls) or "heun" (2*num_steps - 1), times 2 rows with guidance.
    shift: the timestep shift: training's for this size (flow.resolution_shift), or more to spend
        more of the steps at high noise.
    cond_latents, cond_mask: clean latents (B, C, T, H, W) and (B, T) bool; frames where the mask
        is True are held at cond_latents throughout and passed to the model as conditions.
    start_latents, strength: SDEdit. The start is (1 - strength)*start_latents + strength*noise,
        integrated from t = strength in num_steps steps; strength 1 is plain sampling.
    callback(step, t_next, latents): called after every step; a tensor it returns replaces the
        latents (how loops tie their first and last frames).
    progress: a tqdm bar over the steps.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale}")
    lo, hi = check_guidance_interval(guidance_interval)
    options = check_guidance_method(guidance_method, guidance_options)
    if not isinstance(noise, Tensor):
        shape = tuple(int(s) for s in noise)
        if len(shape) != 5:
            raise ValueError(f"noise shape must be (B, C, T, H, W), got {shape}")
        gen_device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(shape, generator=generator, device=gen_device).to(text.device)
    if noise.ndim != 5:
        raise ValueError(f"noise must be (B, C, T, H, W), got shape {tuple(noise.shape)}")
    b, _, t, _, _ = noise.shape
    if text.ndim != 3 or text.shape[0] != b:
        raise ValueError(f"text must be ({b}, L, D) for {b} latents, got shape {tuple(text.shape)}")
    if text_mask.shape != text.shape[:2]:
        raise ValueError(f"text_mask must be {tuple(text.shape[:2])}, got shape {tuple(text_mask.shape)}")
    if embedded_guidance and (guidance_method != "cfg" or negative_text is not None):
        raise ValueError("embedded_guidance: a guidance-distilled model guides itself towards the prompt from \"\" "
                         "with guidance_method 'cfg' only; for a negative prompt or another method, guide it with "
                         "two passes (embedded_guidance=False)")
    if guidance_scale != 1.0 and not embedded_guidance:
        if negative_text is None or negative_mask is None:
            raise ValueError(f"guidance_scale {guidance_scale} needs negative_text and negative_mask: the "
                             "encoding of the negative prompt, or of \"\" (e.g. text_encoder.encode(['']))")
        if negative_text.ndim != 3 or negative_text.shape[0] not in (1, b) or negative_text.shape[2] != text.shape[2]:
            raise ValueError(f"negative_text must be ({b} or 1, L, {text.shape[2]}), got shape {tuple(negative_text.shape)}")
        if negative_mask.shape != negative_text.shape[:2]:
            raise ValueError(f"negative_mask must be {tuple(negative_text.shape[:2])}, "
                             f"got shape {tuple(negative_mask.shape)}")
        negative_text = negative_text.expand(b, -1, -1).to(text)  # one negative prompt for the batch
        negative_mask = negative_mask.expand(b, -1).to(text_mask)
    if (cond_latents is None) != (cond_mask is None):
        raise ValueError("cond_latents and cond_mask go together: give both or neither")
    if cond_mask is not None:
        if cond_mask.shape != (b, t) or cond_mask.dtype != torch.bool:
            raise ValueError(f"cond_mask must be bool ({b}, {t}), got {cond_mask.dtype} {tuple(cond_mask.shape)}")
        if cond_latents.shape != noise.shape:
            raise ValueError(f"cond_latents must have the noise's shape {tuple(noise.shape)}, "
                             f"got {tuple(cond_latents.shape)}")
        cond_mask = cond_mask.to(noise.device)
        cond_latents = cond_latents.to(noise)
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1] (the noise level SDEdit starts from), got {strength}")
    if start_latents is None and strength != 1.0:
        raise ValueError(f"strength {strength} needs start_latents (SDEdit); plain sampling is strength 1")
    if start_latents is not None and start_latents.shape != noise.shape:
        raise ValueError(f"start_latents must have the noise's shape {tuple(noise.shape)}, "
                         f"got {tuple(start_latents.shape)}")
    ts = timesteps(num_steps, shift, start=strength).tolist()  # validates num_steps and shift
    lo, hi = lo * strength, hi * strength

    frames = None if cond_mask is None else cond_mask[:, None, :, None, None]  # (B, 1, T, 1, 1)

    def hold(x: Tensor) -> Tensor:
        return x if frames is None else torch.where(frames, cond_latents, x)

    weight = None if frames is None else (~frames).to(noise.dtype)  # the frames being generated
    running = None  # APG's momentum
    weak = {}  # skip guidance's weak model
    if guidance_method == "stg":
        weak = {"perturbed_blocks": tuple(range(options["block"], options["block"] + options["blocks"])),
                "perturbation": "identity" if options["identity"] else "frame"}

    def velocity(x: Tensor, time: float, step: int) -> Tensor:
        nonlocal running
        if step < options.get("zero_init_steps", 0) and start_latents is None:
            return torch.zeros_like(x)
        tt = torch.full((b,), time, device=x.device, dtype=torch.float32)
        g = guidance_scale if lo <= time <= hi else 1.0
        if embedded_guidance:
            return conditional_velocity(model, x, tt, text, text_mask, cond_mask, guidance=torch.full_like(tt, g))
        if g == 1.0 or guidance_method == "cfg":
            return guided_velocity(model, x, tt, text, text_mask, negative_text, negative_mask, g, cond_mask)
        v_c, v_u = predictions(model, x, tt, text, text_mask, negative_text, negative_mask, cond_mask)
        if guidance_method == "cfg-zero-star":
            return cfg_zero_star(v_c, v_u, g, weight)
        if guidance_method == "stg":
            v_p = conditional_velocity(model, x, tt, text, text_mask, cond_mask, **weak)
            return v_u + g * (v_c - v_u) + options["scale"] * (v_c - v_p)
        v, running = projected_guidance(x, time, v_c, v_u, g, momentum=options["momentum"], running=running,
                                        norm_threshold=options["norm_threshold"], eta=options["eta"],
                                        weight=weight)
        return v

    x = noise if start_latents is None else (1 - strength) * start_latents.to(noise) + strength * noise
    x = hold(x)
    for i in tqdm(range(num_steps), disable=not progress, desc="sampling", unit="step"):
        t_cur, t_next = ts[i], ts[i + 1]
        v = velocity(x, t_cur, i)
        x_next = hold(x + (t_next - t_cur) * v)
        if solver == "heun" and i < num_steps - 1:  # the last step, to t = 0, stays Euler
            x_next = hold(x + (t_next - t_cur) * 0.5 * (v + velocity(x_next, t_next, i)))
        x = x_next
        if callback is not None:
            replaced = callback(i, t_next, x)
            if replaced is not None:
                x = hold(replaced)
    return x


__all__ = ["GUIDANCE_METHODS", "SOLVERS", "cfg_zero_star", "check_guidance_interval", "check_guidance_method",
           "conditional_velocity", "guided_velocity", "predictions", "projected_guidance", "sample", "timesteps"]
