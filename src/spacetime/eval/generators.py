"""Text-to-video generators behind one small interface, and the calibration baselines.

A generator is any callable

    generate(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int)
        -> uint8 (T, H, W, 3)

The trained model is one (`pipeline_generator`); so is the simulator, which renders the prompt, and
so are the baselines that break it in one known way each. Calibration runs them all through the
same metrics (bench/eval_baselines.py, docs/eval.md): the simulator must score at the top, and each
baseline must fail the metric its breakage is about.

| baseline | what it is | should fail |
| --- | --- | --- |
| simulator | the world's rendition of the prompt | nothing |
| frozen | the simulator's first frame, repeated | motion, physics (under gravity) |
| reversed | the simulator's clip played backwards | motion; physics where bounces gain height |
| shuffled | the simulator's frames in random order | smoothness, physics, motion |
| upside_down | the simulator's clip flipped vertically: gravity points up | physics, motion |
| wrong_colour | the simulator's scene re-rendered with every object in a colour the prompt does not name | adherence, permanence |
| noise | uniform random pixels | everything |
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Protocol

import numpy as np

from spacetime.world import vocab
from spacetime.world.clip import Clip, make_clip, render_shots
from spacetime.world.physics import simulate
from spacetime.world.prompts import parse_prompt, shows_prompt
from spacetime.world.render import render


class Generator(Protocol):
    def __call__(
        self, prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int
    ) -> np.ndarray: ...


class ModelUnavailableError(RuntimeError):
    """No text-to-video model can be loaded (the pipeline is missing, or the folder is not a model)."""


def derived_seed(*keys: int) -> int:
    """A seed in [0, 2^63) from integers: independent streams for generation and reference."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def simulate_prompt(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> Clip:
    """The simulator's rendition of `prompt`: what it leaves open is drawn from `seed`. A draw that
    does not show what the prompt names is drawn again from a derived seed (up to 50 times), as
    `expand_prompt` does: a named object out of sight (under `captions.SEEN` visible in every
    frame: a wide panning box, behind the bar throughout), or a wall it should bounce off not
    reached in view within the clip (`sample_scene` aims for it, but a throw may land late, or
    out of view in a pan)."""
    spec = parse_prompt(prompt)
    clip = None
    for attempt in range(50):
        s = seed if attempt == 0 else derived_seed(seed, attempt)
        clip = make_clip(s, num_frames=num_frames, height=height, width=width, fps=fps, spec=spec)
        if shows_prompt(spec, clip.trajectory, clip.visible):
            break
    assert clip is not None
    return clip


def simulator(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> np.ndarray:
    return simulate_prompt(
        prompt, num_frames=num_frames, height=height, width=width, fps=fps, seed=seed
    ).frames


def frozen(prompt: str, **kw) -> np.ndarray:
    frames = simulator(prompt, **kw)
    return np.repeat(frames[:1], len(frames), axis=0)


def reversed_time(prompt: str, **kw) -> np.ndarray:
    return simulator(prompt, **kw)[::-1].copy()


def shuffled(prompt: str, **kw) -> np.ndarray:
    frames = simulator(prompt, **kw)
    return frames[np.random.default_rng(kw["seed"]).permutation(len(frames))]


def upside_down(prompt: str, **kw) -> np.ndarray:
    return simulator(prompt, **kw)[:, ::-1].copy()


def wrong_colour(
    prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int
) -> np.ndarray:
    """The simulator's scene and motion, every object re-rendered in a colour neither the prompt
    nor the scene uses (the palette has 7 colours, a scene at most 3, so 4 are always free)."""
    clip = simulate_prompt(prompt, num_frames=num_frames, height=height, width=width, fps=fps, seed=seed)
    scene = clip.scene
    used = {o.colour for o in scene.objects} | {o.colour for o in parse_prompt(prompt).objects if o.colour}
    free = [c for c in vocab.COLOURS if c not in used]
    rng = np.random.default_rng(seed)
    swapped = [c for c in rng.permutation(free)][: len(scene.objects)]
    objects = [dataclasses.replace(o, colour=str(c)) for o, c in zip(scene.objects, swapped)]
    return render(dataclasses.replace(scene, objects=objects), clip.trajectory, height, width)


def noise(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "simulator": simulator,
    "frozen": frozen,
    "reversed": reversed_time,
    "shuffled": shuffled,
    "upside_down": upside_down,
    "wrong_colour": wrong_colour,
    "noise": noise,
}


# Multi-shot calibration (bench/multishot.py, docs/multishot.md): the simulator films its scene in
# the prompt's shots; each of these breaks one thing at the first cut.

def _cut_together(first: np.ndarray, second: np.ndarray, cut: int) -> np.ndarray:
    return np.concatenate([first[:cut], second[cut:]])


def concatenated(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> np.ndarray:
    """Two independent renditions of the prompt cut together: the opening shot from one, the rest
    from another scene drawn for the same prompt, filmed in the same shots (a close-up frames the
    same colour where the second scene has it). What a model that makes each shot on its own does:
    identity may hold (the prompt names the colours), continuity does not."""
    a = simulate_prompt(prompt, num_frames=num_frames, height=height, width=width, fps=fps, seed=seed)
    if not a.shots:
        return a.frames
    b = simulate_prompt(prompt, num_frames=num_frames, height=height, width=width, fps=fps, seed=derived_seed(seed, 7))
    colours = [o.colour for o in b.scene.objects]
    shots = [dataclasses.replace(s, target=s.target if s.target in colours else colours[0]) if s.target else s for s in a.shots]
    return _cut_together(a.frames, render_shots(b.scene, b.trajectory, shots, height, width), a.shots[1].start)


def restarted(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> np.ndarray:
    """The simulator's clip whose action starts over at the first cut (the scene from t = 0 again,
    filmed in the remaining shots): continuity must fail."""
    a = simulate_prompt(prompt, num_frames=num_frames, height=height, width=width, fps=fps, seed=seed)
    if not a.shots:
        return a.frames
    cut = a.shots[1].start
    again = simulate(a.scene, a.trajectory.times[: num_frames - cut])  # the first frames' times, from 0
    shots = [dataclasses.replace(s, start=s.start - cut) for s in a.shots[1:]]
    rest = render_shots(a.scene, again, shots, height, width)
    return np.concatenate([a.frames[:cut], rest])


def recoloured(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> np.ndarray:
    """The simulator's clip with every object in another, unused colour from the first cut on:
    identity must fail."""
    a = simulate_prompt(prompt, num_frames=num_frames, height=height, width=width, fps=fps, seed=seed)
    if not a.shots:
        return a.frames
    used = {o.colour for o in a.scene.objects}
    free = [str(c) for c in np.random.default_rng(seed).permutation([c for c in vocab.COLOURS if c not in used])]
    swap = dict(zip([o.colour for o in a.scene.objects], free))
    scene = dataclasses.replace(a.scene, objects=[dataclasses.replace(o, colour=swap[o.colour]) for o in a.scene.objects])
    shots = [dataclasses.replace(s, target=swap[s.target]) if s.target else s for s in a.shots]
    return _cut_together(a.frames, render_shots(scene, a.trajectory, shots, height, width), a.shots[1].start)


MULTISHOT_BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "simulator": simulator,
    "concatenated": concatenated,
    "restarted": restarted,
    "recoloured": recoloured,
}


def pipeline_generator(model_dir: str | os.PathLike, *, dtype: str | None = None, prompt_as_typed: bool = False,
                       **sampling) -> Generator:
    """The trained text-to-video model in `model_dir` as a generator (`SpacetimePipeline`, loaded
    only here, so evaluation without a model never imports it). `dtype`: torch's name for the DiT's
    and VAE's weights and arithmetic. `dtype` and `sampling`, pipeline arguments (num_inference_steps,
    guidance_scale, guidance_interval, shift, guidance_method, guidance_options): those left out or None are the model's own defaults,
    else the pipeline's. A model whose config.json has `defaults.complete_prompt` is given each prompt
    completed as `spacetime generate` gives it (`world.prompts.complete_prompt`, seeded by the clip's
    seed), unless `prompt_as_typed`; the clip is still scored against the prompt as written."""
    try:
        from spacetime.pipeline import SpacetimePipeline  # type: ignore[import-not-found]
    except ImportError as e:
        raise ModelUnavailableError(
            f"--model needs a trained text-to-video model, and spacetime.pipeline cannot be imported ({e}); "
            "score existing videos with --videos DIR instead"
        ) from None
    import torch

    from spacetime.data.video import to_uint8_frames

    # weights that do not fit their config are a ValueError naming the file (VideoVAE.from_pretrained,
    # read_pipeline_dit): the command's one-line error, not a traceback
    pipe = SpacetimePipeline.from_pretrained(str(model_dir), torch_dtype=dtype and getattr(torch, dtype))
    # what is used, the defaults resolved: the model's own, else the pipeline's
    used = {"num_inference_steps": pipe.resolve_num_inference_steps(sampling.get("num_inference_steps")),
            "guidance_scale": pipe.resolve_guidance_scale(sampling.get("guidance_scale"))}
    used["guidance_interval"] = list(pipe.resolve_guidance_interval(sampling.get("guidance_interval")))
    used["shift"] = pipe.resolve_shift(sampling.get("shift"))
    used["guidance_method"], used["guidance_options"] = pipe.resolve_guidance_method(
        sampling.get("guidance_method"), sampling.get("guidance_options"))

    complete = bool(pipe.defaults.get("complete_prompt")) and not prompt_as_typed

    def generate(
        prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int
    ) -> np.ndarray:
        # exactly the size asked, or an error before any generating: the reference clips are rendered
        # at that size, and a rounded one would only fail after the first clip
        pipe.check_size(num_frames, height, width)
        if complete:
            from spacetime.world.prompts import complete_prompt

            prompt = complete_prompt(prompt, seed=seed, num_frames=num_frames, fps=fps, aspect=width / height)
        out = pipe(
            prompt,
            num_frames=num_frames,
            height=height,
            width=width,
            generator=torch.Generator().manual_seed(seed),
            **used,
        )
        return to_uint8_frames(out.frames[0])

    generate.sampling = {**used, "dtype": pipe.dtype_name, "complete_prompt": complete}
    return generate
