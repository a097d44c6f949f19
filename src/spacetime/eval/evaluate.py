"""The evaluation loop: prompts in, videos scored, a JSON of metrics out.

    result = evaluate_generator(generate, split="heldout", num_clips=64)      # a model or a baseline
    result = evaluate_videos(load_folder("videos/"))                          # files with their prompts
    generate_samples(generate, read_prompts("prompts.txt"))                   # a user's own prompts
    write_json(result, "out/metrics.json")

Prompts come from the world's own clips (captions of the split's stream, `caption` length), so the
held-out split asks for (colour, shape, motion) triples the train split never shows. Every clip is
scored by `metrics.score_clip`; the distribution distance compares the trajectories seen in the
videos with those the simulator renders for the same prompts (`generators.simulate_prompt` with a
separate seed stream), through the same tracker.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spacetime.atomic import atomic_write_text
from spacetime.eval.generators import Generator, derived_seed, simulate_prompt
from spacetime.eval.kinematics import FEATURE_NAMES, FEATURE_SCALE_FLOOR
from spacetime.eval.metrics import GRAVITY_TOL, METRICS, ClipScore, expected_gravity, score_clip
from spacetime.eval.multishot import MULTISHOT_METRICS, multishot_summary
from spacetime.world import vocab
from spacetime.world.clip import make_clip, stream_seed
from spacetime.world.prompts import parse_prompt
from spacetime.world.scene import check_aspect
from spacetime.world.shots import cut_frames

log = logging.getLogger(__name__)

EVAL_VERSION = 1
CAPTIONS = ("detailed", "medium", "short")
KEPT_CLIPS = 6  # clips whose frames the report draws (frames.png, trajectories.png)
# below this frame height the simulator's own clips stop scoring 1.0 (8 clips each: 1.000 at 32
# pixels, adherence 0.98 at 24, permanence 0.42 at 16, where a small ball is 2 pixels across)
MIN_RELIABLE_HEIGHT = 24


@dataclass
class Sample:
    """One video to score: what it is called, the prompt it answers, its frames."""

    name: str
    prompt: str
    frames: np.ndarray  # uint8 (T, H, W, 3)
    fps: float
    caption: str | None = None  # which caption of a captions file is the prompt ("detailed", ...)


@dataclass
class EvalResult:
    names: list[str]
    scores: list[ClipScore]
    references: list[ClipScore]  # the simulator's rendition of each prompt, tracked the same way
    settings: dict
    kept_frames: dict[int, np.ndarray] = field(default_factory=dict)  # clip index -> frames, for the report
    captions: dict[int, str] = field(default_factory=dict)  # clip index -> caption key used, for folders

    def aggregate(self) -> dict:
        out: dict = {}
        # the multi-shot metrics only where some prompt has cuts: single-shot results stay as they were
        multi = [m for m in MULTISHOT_METRICS if any(m in s.metrics for s in self.scores)]
        for m in (*METRICS, *multi):
            judged = [s for s in self.scores if m in s.metrics]
            vals = [s.metrics[m].score for s in judged if s.metrics[m].score is not None]
            out[m] = {
                "mean": None if not vals else round(float(np.mean(vals)), 4),
                "pass_rate": None if not vals else round(float(np.mean([v >= 1 - 1e-9 for v in vals])), 4),
                "clips": len(vals),
                "not_judged": len(judged) - len(vals),
            }
        if multi:
            out["multishot"] = multishot_summary(self.scores)
        out["prompts"] = prompt_summary(self.scores)
        out["gravity"] = gravity_summary(self.scores)
        out["distribution"] = distribution_distance(
            np.concatenate([s.features for s in self.scores] or [np.zeros((0, len(FEATURE_NAMES)))]),
            np.concatenate([s.features for s in self.references] or [np.zeros((0, len(FEATURE_NAMES)))]),
        )
        return out

    def to_json(self) -> dict:
        return {
            "format": "spacetime-eval",
            "version": EVAL_VERSION,
            "settings": self.settings,
            "aggregate": self.aggregate(),
            "clips": [
                {
                    "index": i,
                    "name": name,
                    "prompt": s.prompt,
                    # words of the prompt the world does not know, and what parse_prompt changed:
                    # nothing is checked for them (an unknown "purple dog" fails no check by name)
                    "unknown_words": s.unknown_words,
                    "prompt_notes": s.prompt_notes,
                    "metrics": {m: r.to_dict() for m, r in s.metrics.items()},
                    "measured": s.measured,
                    **({"caption": self.captions[i]} if i in self.captions else {}),
                }
                for i, (name, s) in enumerate(zip(self.names, self.scores))
            ],
        }


def prompt_summary(scores: list[ClipScore]) -> dict:
    """How much of the prompts the world understood: clips whose prompt has words it does not know
    (those words ask for nothing the metrics check), clips with parse notes, and each unknown word's
    clip count, most frequent first."""
    counts: dict[str, int] = {}
    for s in scores:
        for w in dict.fromkeys(s.unknown_words):
            counts[w] = counts.get(w, 0) + 1
    return {
        "clips": len(scores),
        "with_unknown_words": sum(bool(s.unknown_words) for s in scores),
        "with_notes": sum(bool(s.prompt_notes) for s in scores),
        "unknown_words": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def gravity_summary(scores: list[ClipScore]) -> dict:
    """Measured vertical acceleration (units/s^2) of every object seen in free flight, split by the
    prompt's gravity, against the world's g: the physics metric's main figure, in physical units."""
    out = {"g": vocab.GRAVITY, "tolerance": GRAVITY_TOL}
    for key, want in (("gravity", True), ("zero_gravity", False)):
        acc = [
            m.accel_y
            for s in scores
            if expected_gravity(parse_prompt(s.prompt)) is want
            for m in s.motions.values()
            if m.accel_y is not None
        ]
        target = -vocab.GRAVITY if want else 0.0
        out[key] = {
            "objects": len(acc),
            "median_accel_y": None if not acc else round(float(np.median(acc)), 3),
            "within_tolerance": None
            if not acc
            else round(float(np.mean([abs(a - target) <= GRAVITY_TOL for a in acc])), 4),
        }
    # per clip, whatever the magnitude: does everything seen in free flight under a prompt with
    # gravity speed up downwards? (the default model's bar: gravity's sign right on falling prompts)
    signs = [
        all(a < 0 for a in accs)
        for s in scores
        if expected_gravity(parse_prompt(s.prompt)) is True
        for accs in [[m.accel_y for m in s.motions.values() if m.accel_y is not None]]
        if accs
    ]
    out["gravity"]["clips"] = len(signs)
    out["gravity"]["sign_correct"] = None if not signs else round(float(np.mean(signs)), 4)
    return out


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _impute(gen: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features not measured (NaN: an acceleration with too little free flight) take the mean of
    the reference's measured ones (else the generated set's, else 0), in both sets: an object whose
    acceleration cannot be measured neither counts for nor against the video."""
    gen, ref = gen.copy(), ref.copy()
    for j in range(gen.shape[1]):
        known = [a[~np.isnan(a[:, j]), j] for a in (ref, gen)]
        fill = next((float(k.mean()) for k in known if k.size), 0.0)
        for a in (gen, ref):
            a[np.isnan(a[:, j]), j] = fill
    return gen, ref


def _measured_mean(a: np.ndarray) -> list:
    """Per feature, the mean over the objects where it was measured (None: nowhere)."""
    return [None if np.isnan(c).all() else round(float(np.nanmean(c)), 4) for c in a.T]


def distribution_distance(gen: np.ndarray, ref: np.ndarray) -> dict:
    """Fréchet distance between Gaussians fitted to per-object trajectory features (n, F) of the
    generated and the simulated clips (FID's formula on `kinematics.FEATURE_NAMES`), each feature
    scaled by the reference's spread (at least `FEATURE_SCALE_FLOOR`) so that all count alike and
    the figure has no unit. A feature not measured (NaN) is imputed (`_impute`). Like FID it
    shrinks with more samples: compare runs only at equal clip counts."""
    out: dict = {
        "features": list(FEATURE_NAMES),
        "objects": int(len(gen)),
        "reference_objects": int(len(ref)),
    }
    if len(gen) < 2 or len(ref) < 2:
        out["frechet_distance"] = None
        return out
    means = {"generated_mean": _measured_mean(gen), "reference_mean": _measured_mean(ref)}
    gen, ref = _impute(gen, ref)
    mu, sd = ref.mean(0), np.maximum(ref.std(0), FEATURE_SCALE_FLOOR)
    g, r = (gen - mu) / sd, (ref - mu) / sd  # (n, F), (m, F)
    eps = 1e-6 * np.eye(g.shape[1])
    cg, cr = np.cov(g, rowvar=False) + eps, np.cov(r, rowvar=False) + eps
    root = _sqrt_psd(cr)
    cross = np.trace(_sqrt_psd(root @ cg @ root))
    fd = float(((g.mean(0) - r.mean(0)) ** 2).sum() + np.trace(cg) + np.trace(cr) - 2 * cross)
    out["frechet_distance"] = round(max(fd, 0.0), 4)
    out.update(means)
    return out


def evaluate(
    samples: Iterable[Sample],
    *,
    seed: int = 0,
    keep: int = KEPT_CLIPS,
    settings: dict | None = None,
    progress: bool = True,
    references: list[ClipScore] | None = None,
) -> EvalResult:
    """Score every sample against its prompt, and the simulator's rendition of the same prompt (the
    reference for the distribution distance; pass `references` from an earlier result on the same
    prompts to reuse them). Frames of the first `keep` clips are kept for the report."""
    from tqdm import tqdm

    names, scores, refs, kept, caption_keys = [], [], [], {}, {}
    for i, s in enumerate(tqdm(samples, desc="eval", unit="clip", disable=not progress)):
        t, h, w, _ = s.frames.shape
        check_aspect(w / h, f"clip {s.name!r}: size {w}x{h} (WxH)")  # before its score, not at its reference
        scores.append(score_clip(s.frames, s.fps, s.prompt))
        if references is not None and i < len(references) and references[i].prompt == s.prompt:
            refs.append(references[i])
        else:
            ref = reference_frames(s.prompt, num_frames=t, height=h, width=w, fps=s.fps, seed=derived_seed(seed, i, 2))
            refs.append(score_clip(ref, s.fps, s.prompt))
        names.append(s.name)
        if s.caption is not None:
            caption_keys[i] = s.caption
        if i < keep:
            kept[i] = s.frames
    info = {**(settings or {}), "clips_scored": len(scores)}  # settings' num_clips is what was asked for
    low = sum(s.track.height < MIN_RELIABLE_HEIGHT for s in scores)
    if low:
        log.warning(
            "note: %d of %d clips are under %d pixels high: the world's small objects are a few pixels "
            "there, and the tracker misses or misreads them (the simulator's own 16x16 clips score "
            "permanence 0.42); score the simulator's clips at that size and read these against them",
            low,
            len(scores),
            MIN_RELIABLE_HEIGHT,
        )
    unknown = sum(bool(c.unknown_words) for c in scores)
    if unknown:
        log.warning(
            "note: %d of %d prompts have words the world does not know (nothing is checked for them): "
            "`unknown_words` in each clip's results",
            unknown,
            len(scores),
        )
    return EvalResult(names, scores, refs, info, kept, caption_keys)


def reference_frames(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> np.ndarray:
    """The simulator's rendition of `prompt` at a clip's geometry (`simulate_prompt`). A clip too
    short for the prompt's cuts as the world makes them (a cut on frame 1 + 4k, every shot at least
    4 frames: 2 shots need 9 frames) gets the first `num_frames` of the shortest rendition that
    holds them: a user's 8-frame video with its cut on frame 4 is scored, not a ValueError that
    ends the run."""
    shots = len(parse_prompt(prompt).shots)
    full = num_frames
    while shots > 1 and len(cut_frames(full)) < shots - 1:
        full += 1
    clip = simulate_prompt(prompt, num_frames=full, height=height, width=width, fps=fps, seed=seed)
    return clip.frames[:num_frames]


def split_prompts(
    split: str,
    num_clips: int,
    *,
    seed: int = 0,
    num_frames: int = 17,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
    caption: str = "detailed",
    multishot: bool = False,
) -> list[str]:
    """The `caption` of clips 0..num_clips-1 of the world stream (seed, split): prompts the world
    can show, in the style the model is trained on (detailed captions by default). `multishot`:
    the same clips cut into shots, so every prompt asks for cuts."""
    if caption not in CAPTIONS:
        raise ValueError(f"caption must be one of {CAPTIONS}, got {caption!r}")
    return [
        make_clip(
            stream_seed(seed, i, split),
            num_frames=num_frames,
            height=height,
            width=width,
            fps=fps,
            split=split,
            multishot=multishot,
        ).captions[caption]
        for i in range(num_clips)
    ]


def read_prompts(path: str | os.PathLike) -> list[str]:
    """A user's prompts for `spacetime eval --model --prompts`: a text file with one prompt a line
    (blank lines and lines starting with "#" skipped), or a `.jsonl` file of {"prompt": ...}
    objects. Errors name the file and line."""
    path = Path(path)
    if not path.is_file():  # a directory, a FIFO or /dev/null is not "no such file"
        why = "no such file" if not path.exists() else "is a directory" if path.is_dir() else "not a regular file"
        raise ValueError(f"--prompts {path}: {why}")
    from spacetime.data.folder import read_text

    try:
        text = read_text(path)  # as a captions file: UTF-8 (or UTF-16 with a BOM), else the line named
    except ValueError as e:
        raise ValueError(f"--prompts {e}") from None
    prompts = []
    jsonl = path.suffix.lower() == ".jsonl"  # "P.JSONL" too: read as text, each JSON line was one prompt
    # lines end at "\n" only, as in captions files: a prompt may hold U+2028, which splitlines() breaks at
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or (not jsonl and line.startswith("#")):
            continue
        if jsonl:
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError) as e:  # a JSONDecodeError, a 5,000-digit number, deep nesting
                raise ValueError(f"--prompts {path}, line {n}: not JSON ({getattr(e, 'msg', e)})") from None
            line = entry.get("prompt") if isinstance(entry, dict) else None
            if not isinstance(line, str) or not line.strip():
                raise ValueError(f'--prompts {path}, line {n}: expected an object with a non-empty "prompt" string')
            line = line.strip()
        prompts.append(line)
    if not prompts:
        raise ValueError(f"--prompts {path}: no prompt in it")
    return prompts


def generate_samples(
    generate: Generator,
    prompts: list[str],
    *,
    seed: int = 0,
    num_frames: int = 17,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
) -> Iterator[Sample]:
    """Samples made by `generate`, one per prompt, each with its own seed from the stream `seed`.
    A generator that returns the wrong shape is an error naming what it returned."""
    from spacetime.data.video import to_uint8_frames

    for i, prompt in enumerate(prompts):
        frames = to_uint8_frames(
            generate(
                prompt,
                num_frames=num_frames,
                height=height,
                width=width,
                fps=fps,
                seed=derived_seed(seed, i, 1),
            )
        )
        if frames.shape != (num_frames, height, width, 3):
            raise ValueError(
                f"the generator returned frames of shape {frames.shape} for prompt {i}; expected {(num_frames, height, width, 3)}"
            )
        yield Sample(f"{i:06d}", prompt, frames, float(fps))


def evaluate_generator(
    generate: Generator,
    *,
    split: str = "heldout",
    num_clips: int = 64,
    seed: int = 0,
    num_frames: int = 17,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
    caption: str = "detailed",
    keep: int = KEPT_CLIPS,
    progress: bool = True,
    settings: dict | None = None,
    multishot: bool = False,
) -> EvalResult:
    """Prompts from the split (multi-shot ones with `multishot`), videos from `generate`, scores."""
    geometry = dict(num_frames=num_frames, height=height, width=width, fps=fps)
    prompts = split_prompts(split, num_clips, seed=seed, caption=caption, multishot=multishot, **geometry)
    info = {
        "source": "generator",
        "split": split,
        "num_clips": num_clips,
        "seed": seed,
        "caption": caption,
        **({"multishot": True} if multishot else {}),
        **geometry,
        **(settings or {}),
    }
    samples = generate_samples(generate, prompts, seed=seed, **geometry)
    return evaluate(samples, seed=seed, keep=keep, settings=info, progress=progress)


def load_folder(
    directory: str | os.PathLike, *, caption: str = "detailed", num_clips: int | None = None
) -> Iterator[Sample]:
    """Samples from a folder of videos with a captions file (the `spacetime world` / users' folder
    format, docs/data.md). The prompt is the entry's `caption` length when it has one, else its
    "caption" entry (a one-caption file), else its first non-empty caption with a logged warning;
    an empty caption is none, and an entry with none is skipped with a warning. Each sample records
    the caption key used. A listed file that is missing or does not decode is an error naming it."""
    from spacetime.data.folder import load_captions
    from spacetime.data.video import read_video

    entries = load_captions(directory, strict=True)
    if not entries:
        raise ValueError(f"{directory}: the captions file lists no video")
    from spacetime.data.probe import videos_under

    # as load_captions names them: resolved, so a folder of links to videos is a folder of its videos
    root = Path(directory).resolve()
    listed = {e["path"] for e in entries}
    unlisted = sorted(v for v in videos_under(root) if (root / v).resolve() not in listed)
    if unlisted:  # a video the user meant to score, left out of the captions file in silence
        log.warning("note: %d video(s) in %s are not in its captions file and are not scored: %s%s", len(unlisted),
                    directory, ", ".join(unlisted[:5]), " ..." if len(unlisted) > 5 else "")
    if num_clips is not None and num_clips > len(entries):
        log.warning(
            "note: %d clips asked for, %s lists %d: scoring all %d",
            num_clips,
            directory,
            len(entries),
            len(entries),
        )
    warned: set[str] = set()
    chosen = []
    for e in entries[:num_clips]:
        name = os.path.relpath(e["path"], Path(directory).resolve())
        # an empty caption asks for nothing: it is no prompt
        caps = {k: v for k, v in e["captions"].items() if isinstance(v, str) and v.strip()}
        key = caption if caption in caps else "caption" if "caption" in caps else next(iter(caps), None)
        if key is None:
            listed = ", ".join(map(repr, e["captions"])) or "none"
            log.warning("%s: no non-empty caption (%s); skipped", name, listed)
            continue
        chosen.append((e, name, caps, key))
    # every file's header before any clip is scored: one that does not open, or a view narrower
    # than the world renders (the simulator's reference cannot be drawn), fails the run at once,
    # not after hours of scoring the clips before it
    for e, name, _, _ in chosen:
        check_video(e["path"], f"{name} (line {e['line']} of the captions file)")
    for e, name, caps, key in chosen:
        # another length than asked for: said once per length used (each clip's record names it)
        if key not in (caption, "caption") and key not in warned:
            warned.add(key)
            log.warning(
                "%s: no non-empty %r caption; scoring its %r caption instead (each clip's "
                '"caption" in metrics.json names the one used)',
                name,
                caption,
                key,
            )
        frames, fps = read_video(e["path"])
        yield Sample(name, caps[key], frames, float(fps), key)


def check_video(path: str | os.PathLike, what: str) -> None:
    """A ValueError naming `what` unless `path` opens as a video whose view the world can render
    (width / height at least `scene.MIN_ASPECT`: a narrower view cannot hold its objects, and the
    simulator's rendition of the prompt, the Fréchet distance's reference, cannot be drawn)."""
    from spacetime.data.decode import VideoReadError, open_video
    from spacetime.world.scene import MIN_ASPECT

    try:
        container, stream = open_video(Path(path))
    except VideoReadError as e:
        raise ValueError(f"{what}: {e}") from None
    with container:
        width, height = stream.codec_context.width, stream.codec_context.height
        try:  # as read_video shows it: a frame's rotation (a phone's portrait video) swaps the sides
            rotation = next(iter(container.decode(stream))).rotation
        except Exception:  # noqa: BLE001 — a file that does not decode is read_video's to name
            rotation = 0
    if rotation % 180 == 90:
        width, height = height, width
    if width and height and width / height < MIN_ASPECT:
        raise ValueError(
            f"{what}: {width}x{height} (WxH) is narrower than the world renders (width/height at least "
            f"{MIN_ASPECT}: its objects would not fit, and the simulator cannot draw the prompt at that "
            "size to compare with); crop or pad it to a wider view, or leave it out"
        )


def write_json(result: EvalResult, path: str | os.PathLike) -> dict:
    data = result.to_json()
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return data
