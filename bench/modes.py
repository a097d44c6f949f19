"""Figures of the prompting modes (docs/modes.md): what does not depend on how well the DiT is
trained, the long-video cost, and (--fidelity) each mode's fidelity with a trained model.

    python bench/modes.py [--model DIR | --checkpoint DIR] [--clips 32] [--seconds 10,30,60] [--json out.json]
    python bench/modes.py --model DIR --fidelity --clips 32 --json out/modes.json
    python bench/modes.py --model DIR --fidelity --seconds "" --only connect,connect_same_scene --connect-strength 0.6

- image -> video: PSNR of the output's first frame against the given image, over held-out world
  first frames. The image is held as the first latent frame and the causal VAE decodes frame 0
  from latent frame 0 alone, so this is the VAE's image round trip whatever the DiT has learned.
- long video (`--seconds`): wall time and peak RSS of one text -> video clip of each duration,
  64x64 at 8 fps, 25 steps, guidance 5.0, made window by window (33-frame windows); each in a
  fresh process. Time per window does not depend on the DiT's weights.

--fidelity (a trained model; held-out world clips, 64x64 at 8 fps, --steps and --guidance):
- loop: seam |last -> first frame| (mean abs pixel difference) over the median consecutive-frame
  difference of the same video (goal <= 1), at num_frames 17 and 33 (one window), and 49 (longer
  than a window: the clip, then a transition back to its start; also the junction into it);
  control: the same clip without loop.
- image loop: the same seam for a loop of the clip's first frame (image= and loop=True); control:
  the text loop of the same prompt and seed.
- connect: two held-out 17-frame clips A, B -> A, transition, B; both junctions and the largest
  step from A's last to B's first frame over the median step; control: A then B cut together.
- connect, one scene: frames 0..16 and 37..53 of one held-out clip, a 33-frame window whose
  20-frame transition stands where frames 17..36 were: the same ratios, the transition's PSNR
  against those true frames and the eval's adherence / permanence on it.
- extend forward / backward: a 17-frame clip extended by about 16 frames; the preserved part
  against the input (PSNR), the junction step, and the eval's adherence / permanence on the new
  frames against the clip's caption.
- edit: the caption with the first object's colour word replaced by another palette colour, at
  strengths 0 (the input itself: the pipeline refuses 0, which would return the input) .. 1; mean
  abs difference to the input, the eval's adherence to the edited and to the original prompt,
  and how often the tracker sees the new colour and no longer the old one.
- image -> video: the eval's adherence / permanence on frames 1.. against the caption.
- long: --long-clips clips of --long-seconds; the eval on consecutive 17-frame segments (objects
  seen, adherence, permanence) along the clip: do they drift? Drift is the last third's mean less
  the first third's, over all clips and clip by clip (mean, standard error, 95% interval).
Writes one frame strip per mode (PNG, --img-dir): a bar under each frame, dark for given frames,
light for generated ones; a red line marks a seam.

Without --model or --checkpoint: the world DiT preset at random init, the shipped VAE and MiniLM.
--checkpoint: the EMA weights of a training checkpoint (or of a run directory's newest one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name  # bench/machine.py

ROOT = Path(__file__).resolve().parents[1]
FPS = 8.0
SEGMENT = 17  # frames per segment the long clip is judged in: the length the eval is calibrated on


def build(model: Path | None, checkpoint: Path | None = None):
    from spacetime.dit import PRESETS, DiT
    from spacetime.pipeline import SpacetimePipeline, load_text_encoder
    from spacetime.vae import VideoVAE

    if model is not None:
        return SpacetimePipeline.from_pretrained(model)
    if checkpoint is not None:
        from default_model import checkpoint_pipeline, checkpoint_vae_and_text  # bench/default_model.py

        from spacetime.checkpoint import latest_checkpoint

        if not (checkpoint / "ema.safetensors").is_file():  # a run directory: its newest checkpoint
            newest = latest_checkpoint(checkpoint)
            if newest is None:
                raise SystemExit(f"{checkpoint}: no complete checkpoint")
            checkpoint = newest
        log_line(f"checkpoint {checkpoint}")
        return checkpoint_pipeline(checkpoint, *checkpoint_vae_and_text(checkpoint))
    torch.manual_seed(0)
    vae = VideoVAE.from_pretrained(ROOT / "src/spacetime/models/world/vae")
    config = {"defaults": {"num_frames": 17, "height": 64, "width": 64, "fps": FPS}}
    return SpacetimePipeline(DiT(PRESETS["world"]), vae, load_text_encoder("minilm", 64), config)


def image_to_video(pipe, clips: int) -> dict:
    from spacetime.world.clip import make_clip, stream_seed

    psnrs = []
    for i in range(clips):
        image = make_clip(stream_seed(0, i, "heldout"), num_frames=1, height=64, width=64, split="heldout").frames[0]
        out = pipe("a ball moves", image=image, num_frames=17, num_inference_steps=4,
                   generator=torch.Generator().manual_seed(i)).frames[0]
        mse = np.mean((out[0].astype(np.float64) - image.astype(np.float64)) ** 2)
        psnrs.append(10 * math.log10(255.0**2 / max(mse, 1e-10)))
    return {"clips": clips, "first_frame_psnr_db_mean": round(float(np.mean(psnrs)), 2),
            "first_frame_psnr_db_min": round(float(np.min(psnrs)), 2)}


def long_probe(seconds: float, model: str | None, checkpoint: str | None, threads: int) -> None:
    torch.set_num_threads(threads)
    pipe = build(Path(model) if model else None, Path(checkpoint) if checkpoint else None)
    frames = 1 + 4 * round(seconds * 8 / 4)
    t0 = time.perf_counter()
    out = pipe("a red ball bounces off the left wall", num_frames=frames, num_inference_steps=25, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(0))
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "frames": int(out.frames[0].shape[0]), "wall_s": round(wall, 1),
                      "peak_rss_mib": round(rss, 1), **{k: round(v, 1) for k, v in out.timings.items()}}))


# --- fidelity of each mode (--fidelity: needs a trained model) ------------------------------------


def log_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def heldout(seed: int, i: int, num_frames: int = 17):
    from spacetime.world.clip import make_clip, stream_seed

    return make_clip(stream_seed(seed, i, "heldout"), num_frames=num_frames, height=64, width=64, fps=FPS,
                     split="heldout")


def diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference of two frames (or videos), 0..255."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def steps_of(video: np.ndarray) -> np.ndarray:
    """The difference between each frame and the next, (T - 1,)."""
    return np.abs(video[1:].astype(np.int16) - video[:-1].astype(np.int16)).mean(axis=(1, 2, 3))


def typical_step(video: np.ndarray) -> float:
    # floored at 0.5 (of 255): a still scene's median step is ~0 and would make any seam "infinite"
    return max(float(np.median(steps_of(video))), 0.5)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def judge(frames: np.ndarray, prompt: str) -> dict:
    """The eval's adherence and permanence of `frames` against `prompt`, and the objects seen."""
    from spacetime.eval import score_clip

    s = score_clip(frames, FPS, prompt)
    return {"adherence": s.metrics["adherence"].score, "permanence": s.metrics["permanence"].score,
            "objects_seen": len(s.track.tracks), "objects_prompted": len(s.matched),
            "count_right": len(s.track.tracks) == len(s.matched), "colours": sorted(s.track.tracks)}


def mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.mean(vals)), 3) if vals else None


def recolour(clip, i: int) -> tuple[str, str, str] | None:
    """The caption with its first object's colour word replaced by a palette colour not in the
    scene (a different one per clip): (old colour, new colour, edited prompt)."""
    from spacetime.world.vocab import COLOURS

    caption, used = clip.captions["detailed"], {o.colour for o in clip.scene.objects}
    for o in clip.scene.objects:
        if re.search(rf"\b{o.colour}\b", caption):
            palette = list(COLOURS)
            new = next(c for c in palette[i % len(palette):] + palette if c not in used)
            return o.colour, new, re.sub(rf"\b{o.colour}\b", new, caption)
    return None


def save_strip(path: Path, rows: list[tuple[np.ndarray, np.ndarray, list[int]]], labels: list[str] | None = None) -> None:
    """Rows of frames as one PNG: each row (frames (T, H, W, 3), given (T,) bool, seams: indices j
    with a seam between frame j - 1 and j). Under each frame a bar, dark if given, light if
    generated; a red line in the gap at a seam; `labels` in a margin on the left."""
    from PIL import Image, ImageDraw

    gap, bar, margin = 3, 4, 48 if labels else 0
    h, w = rows[0][0].shape[1:3]
    cols = max(len(r[0]) for r in rows)
    canvas = np.full((len(rows) * (h + bar + gap) + gap, margin + cols * (w + gap) + gap, 3), 255, np.uint8)
    for r, (frames, given, seams) in enumerate(rows):
        y = gap + r * (h + bar + gap)
        for j, f in enumerate(frames):
            x = margin + gap + j * (w + gap)
            canvas[y : y + h, x : x + w] = f
            canvas[y + h + 1 : y + h + bar, x : x + w] = 40 if given[j] else 190
            if j in seams:
                canvas[y : y + h + bar, x - gap : x] = (230, 0, 0)
    image = Image.fromarray(canvas)
    for r, label in enumerate(labels or []):
        ImageDraw.Draw(image).text((4, gap + r * (h + bar + gap) + h // 2 - 6), label, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def gen(pipe, args, i: int, prompt: str, **kw) -> np.ndarray:
    return pipe(prompt, num_inference_steps=args.steps, guidance_scale=args.guidance,
                generator=torch.Generator().manual_seed(args.seed * 100_003 + i), **kw).frames[0]


def loop_fidelity(pipe, args) -> dict:
    rows = []
    for i in range(args.clips):
        clip = heldout(args.seed, i)
        out = gen(pipe, args, i, clip.captions["detailed"], loop=True)
        # the control: the same prompt and seed without loop
        plain = gen(pipe, args, i, clip.captions["detailed"])
        long = gen(pipe, args, i, clip.captions["detailed"], loop=True, num_frames=33)  # a 32-frame loop
        # longer than a window (33 frames): the 49-frame clip, then a transition back to its start
        n = 49
        longer = gen(pipe, args, i, clip.captions["detailed"], loop=True, num_frames=n)
        wrapped = np.concatenate([out, out[:1]])  # played in a loop, frame 0 follows the last
        steps = steps_of(out)
        rows.append({"seam_ratio": diff(out[-1], out[0]) / typical_step(out),
                     "max_step_ratio": float(steps_of(wrapped).max()) / typical_step(out),
                     # the model's own jumps between latent frames (frame 4k -> 4k + 1), for scale
                     "latent_boundary_step_ratio": float(steps[::4].mean()) / typical_step(out),
                     "control_seam_ratio": diff(plain[-1], plain[0]) / typical_step(plain),
                     # a reference: how far a held-out world clip's own end is from its start
                     "world_seam_ratio": diff(clip.frames[-1], clip.frames[0]) / typical_step(clip.frames),
                     "seam_ratio_33": diff(long[-1], long[0]) / typical_step(long),
                     "seam_ratio_49": diff(longer[-1], longer[0]) / typical_step(longer),
                     "closing_junction_ratio_49": diff(longer[n - 1], longer[n]) / typical_step(longer),
                     "frames": len(out)})
        if i == 0:
            save_strip(args.img_dir / "modes-loop.png",
                       [(np.concatenate([out, out[:4]]), np.zeros(len(out) + 4, bool), [len(out)])])
    return summarise(rows, ["seam_ratio", "max_step_ratio", "latent_boundary_step_ratio", "control_seam_ratio",
                            "world_seam_ratio", "seam_ratio_33", "seam_ratio_49", "closing_junction_ratio_49", "frames"],
                     goal=("seam_ratio", "control_seam_ratio", "world_seam_ratio", "seam_ratio_33", "seam_ratio_49",
                           "closing_junction_ratio_49"))


def image_loop_fidelity(pipe, args) -> dict:
    """A loop of an image (the clip's first frame given) against the text loop of the same prompt and
    seed: the image is held at both ends, so its loop is not tied as a text loop is."""
    rows = []
    for i in range(args.clips):
        clip = heldout(args.seed, i)
        out = gen(pipe, args, i, clip.captions["detailed"], image=clip.frames[0], loop=True)
        text = gen(pipe, args, i, clip.captions["detailed"], loop=True)
        rows.append({"seam_ratio": diff(out[-1], out[0]) / typical_step(out),
                     "text_seam_ratio": diff(text[-1], text[0]) / typical_step(text), "frames": len(out)})
    return summarise(rows, ["seam_ratio", "text_seam_ratio", "frames"], goal=("seam_ratio", "text_seam_ratio"))


def connect_fidelity(pipe, args) -> dict:
    rows = []
    for i in range(args.clips):
        a, b = heldout(args.seed, i), heldout(args.seed, args.clips + i)
        # the prompt describes where the transition goes: B
        out = gen(pipe, args, i, b.captions["detailed"], video=a.frames, video2=b.frames, strength=args.connect_strength)
        mid = out[17:-17]
        span = out[16 : len(out) - 16]  # A's last frame, the transition, B's first
        cut = np.concatenate([a.frames, b.frames])
        typical = typical_step(out)
        rows.append({"junction_a_ratio": diff(a.frames[-1], mid[0]) / typical,
                     "junction_b_ratio": diff(mid[-1], b.frames[0]) / typical,
                     "max_step_ratio": float(steps_of(span).max()) / typical,
                     "control_cut_ratio": diff(a.frames[-1], b.frames[0]) / typical_step(cut),
                     "transition_frames": len(mid),
                     "given_exact": bool(np.array_equal(out[:17], a.frames) and np.array_equal(out[-17:], b.frames))})
        if i == 0:
            given = np.r_[np.ones(17, bool), np.zeros(len(mid), bool), np.ones(17, bool)]
            save_strip(args.img_dir / "modes-connect.png", [(out, given, [17, len(out) - 17])])
    return summarise(rows, ["junction_a_ratio", "junction_b_ratio", "max_step_ratio", "control_cut_ratio",
                            "transition_frames"], goal=("junction_a_ratio", "junction_b_ratio", "control_cut_ratio"),
                     exact="given_exact")


def gap_fidelity(pipe, args) -> dict:
    """Connect two parts of one held-out clip: A = frames 0..16, B = frames 37..53, a 33-frame
    window, so the 20-frame transition stands where the clip's own frames 17..36 were: a transition
    that a continuous scene makes possible, with the truth to compare against."""
    rows = []
    for i in range(args.clips):
        clip = heldout(args.seed, i, num_frames=57)
        a, b, truth = clip.frames[:17], clip.frames[37:54], clip.frames[17:37]
        out = gen(pipe, args, i, clip.captions["detailed"], video=a, video2=b, num_frames=33,
                  strength=args.connect_strength)
        mid = out[17:-17]
        typical = typical_step(out)
        rows.append({"junction_a_ratio": diff(a[-1], mid[0]) / typical,
                     "junction_b_ratio": diff(mid[-1], b[0]) / typical,
                     "max_step_ratio": float(steps_of(out[16 : len(out) - 16]).max()) / typical,
                     "control_cut_ratio": diff(a[-1], b[0]) / typical_step(np.concatenate([a, b])),
                     "truth_junction_a_ratio": diff(a[-1], truth[0]) / typical_step(clip.frames[:54]),
                     "transition_psnr_db": psnr(mid, truth), "transition_frames": len(mid),
                     **judge(mid, clip.captions["detailed"]),
                     "given_exact": bool(np.array_equal(out[:17], a) and np.array_equal(out[-17:], b))})
        if i == 0:
            given = np.r_[np.ones(17, bool), np.zeros(len(mid), bool), np.ones(17, bool)]
            save_strip(args.img_dir / "modes-connect-gap.png",
                       [(out, given, [17, len(out) - 17]), (clip.frames[:54], given, [])], ["model", "truth"])
    return summarise(rows, ["junction_a_ratio", "junction_b_ratio", "max_step_ratio", "control_cut_ratio",
                            "truth_junction_a_ratio", "transition_psnr_db", "transition_frames", "adherence",
                            "permanence"],
                     goal=("junction_a_ratio", "junction_b_ratio", "control_cut_ratio"), exact="given_exact")


def extend_fidelity(pipe, args, direction: str) -> dict:
    # windows that give ~16 new frames after 17: forward keeps 13 frames of context in a 29-frame
    # window (16 new), backward 16 in a 33-frame window (17 new); see docs/modes.md
    window = 29 if direction == "forward" else 33
    rows = []
    for i in range(args.clips):
        clip = heldout(args.seed, i)
        src, caption = clip.frames, clip.captions["detailed"]
        out = gen(pipe, args, i, caption, video=src, extend=direction, num_frames=window)
        kept, new = (out[:17], out[17:]) if direction == "forward" else (out[-17:], out[:-17])
        junction = diff(src[-1], new[0]) if direction == "forward" else diff(new[-1], src[0])
        p = psnr(kept, src)
        rows.append({"preserved_psnr_db": None if math.isinf(p) else p, "preserved_exact": math.isinf(p),
                     "junction_ratio": junction / typical_step(out), "new_frames": len(new), **judge(new, caption)})
        if i == 0:
            given = np.r_[np.ones(17, bool), np.zeros(len(new), bool)]
            save_strip(args.img_dir / f"modes-extend-{direction}.png",
                       [(out, given if direction == "forward" else given[::-1], [17 if direction == "forward" else len(new)])])
    return summarise(rows, ["preserved_psnr_db", "junction_ratio", "new_frames", "adherence", "permanence",
                            "objects_seen", "objects_prompted", "count_right"], goal=("junction_ratio",),
                     exact="preserved_exact")


def edit_fidelity(pipe, args) -> dict:
    strengths = [0.0, 0.25, 0.5, 0.75, 1.0]
    per: dict[float, list[dict]] = {s: [] for s in strengths}
    strip, shown = [], None  # the strip: the first edited clip at every strength, a row each
    for i in range(args.clips):
        clip = heldout(args.seed, i)
        picked = recolour(clip, i)
        if picked is None:
            continue
        old, new, prompt = picked
        shown = i if shown is None else shown
        for s in strengths:
            # strength 0 is the input itself: the pipeline refuses it, since it would return the input
            out = clip.frames if s == 0 else gen(pipe, args, i, prompt, video=clip.frames, strength=s)
            edited, original = judge(out, prompt), judge(out, clip.captions["detailed"])
            per[s].append({"diff_to_input": diff(out, clip.frames), "adherence_edited": edited["adherence"],
                           "adherence_original": original["adherence"],
                           "recoloured": new in edited["colours"] and old not in edited["colours"]})
            if i == shown:
                strip.append((out, np.full(len(out), s == 0), []))
    if strip:
        save_strip(args.img_dir / "modes-edit.png", strip, [f"s={s:g}" for s in strengths])
    rows = [{"strength": s, "clips": len(r), "diff_to_input": mean(r, "diff_to_input"),
             "adherence_edited": mean(r, "adherence_edited"), "adherence_original": mean(r, "adherence_original"),
             "recoloured": mean(r, "recoloured")} for s, r in per.items()]
    return {"curve": rows}


def i2v_fidelity(pipe, args) -> dict:
    rows = []
    for i in range(args.clips):
        clip = heldout(args.seed, i)
        out = gen(pipe, args, i, clip.captions["detailed"], image=clip.frames[0])
        # a first frame that round-trips exactly (a plain frame) has infinite PSNR: the median
        # and the worst clip are kept, a mean would be infinite
        rows.append({"first_frame_psnr_db": psnr(out[0], clip.frames[0]), **judge(out[1:], clip.captions["detailed"])})
        if i == 0:  # frame 0 is the given image (held as latent frame 0)
            save_strip(args.img_dir / "modes-i2v.png", [(out, np.arange(len(out)) == 0, [1])])
    out = summarise(rows, ["adherence", "permanence", "objects_seen", "objects_prompted", "count_right"])
    db = [r["first_frame_psnr_db"] for r in rows]
    out.update(first_frame_psnr_db_median=round(float(np.median(db)), 2), first_frame_psnr_db_min=round(min(db), 2),
               first_frame_exact=sum(math.isinf(v) for v in db))
    return out


def long_coherence(pipe, args) -> dict:
    frames = 1 + 4 * round(args.long_seconds * FPS / 4)
    segs: list[list[dict]] = []
    for i in range(args.long_clips):
        caption = heldout(args.seed, i).captions["detailed"]
        out = gen(pipe, args, i, caption, num_frames=frames)
        segs.append([{"start_s": k / FPS, **judge(out[k : k + SEGMENT], caption)}
                     for k in range(0, len(out) - SEGMENT + 1, SEGMENT)])
        if i == 0:
            shown = out[:: int(FPS)]  # one frame a second, 20 a row
            save_strip(args.img_dir / "modes-long.png",
                       [(shown[k : k + 20], np.zeros(len(shown[k : k + 20]), bool), []) for k in range(0, len(shown), 20)],
                       [f"{k} s" for k in range(0, len(shown), 20)])
    keys = ("objects_seen", "objects_prompted", "count_right", "adherence", "permanence")
    per_segment = [{"start_s": seg[0]["start_s"], **{k: mean(seg, k) for k in keys}} for seg in zip(*segs)]
    # the markdown table: 10-s bins of segments (the JSON keeps every segment)
    per_10s = [{"from_s": t, **{k: mean([r for r in per_segment if t <= r["start_s"] < t + 10], k) for k in keys}}
               for t in range(0, int(per_segment[-1]["start_s"]) + 1, 10)]
    drift = {m: None if (d := third_drift(per_segment, m)) is None else round(d, 3) for m in DRIFT_KEYS}
    # the same drift clip by clip: its spread over clips says whether a mean drift is more than noise
    per_clip = [{m: third_drift(seg, m) for m in DRIFT_KEYS} for seg in segs]
    summary = []
    for m in DRIFT_KEYS:
        vals = np.array([c[m] for c in per_clip if c[m] is not None], float)
        if len(vals) == 0:
            continue
        se = float(vals.std(ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else math.nan
        half = t_975(len(vals) - 1) * se
        summary.append({"metric": m, "mean": round(float(vals.mean()), 3), "stderr": round(se, 3),
                        "ci95_low": round(float(vals.mean()) - half, 3), "ci95_high": round(float(vals.mean()) + half, 3),
                        "clips_down": int((vals < 0).sum()), "clips_up": int((vals > 0).sum())})
    return {"clips": args.long_clips, "frames": frames, "segment_frames": SEGMENT, "per_segment": per_segment,
            "per_10s": per_10s, "drift_last_third_minus_first_third": drift,
            "drift_per_clip": {"clips": per_clip, "summary": summary}}


DRIFT_KEYS = ("objects_seen", "count_right", "adherence", "permanence")


def third_drift(rows: list[dict], key: str) -> float | None:
    """The last third of `rows`' mean of `key` less the first third's (None where one is unmeasured)."""
    third = max(1, len(rows) // 3)
    first, last = mean(rows[:third], key), mean(rows[-third:], key)
    return None if None in (first, last) else last - first


def t_975(df: int) -> float:
    """Student's t 97.5% quantile (a 95% interval's half-width in standard errors) for df >= 1."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
             2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
    return math.nan if df < 1 else table[df - 1] if df <= len(table) else 2.0 if df <= 60 else 1.96


def summarise(rows: list[dict], keys: list[str], goal: tuple[str, ...] = (), exact: str | None = None) -> dict:
    """Means over clips; for the seam ratios also the median and the fraction at or below 1."""
    out: dict = {"clips": len(rows)}
    for k in keys:
        out[k] = mean(rows, k)
    for k in goal:
        vals = [r[k] for r in rows]
        out[f"{k}_median"] = round(float(np.median(vals)), 3)
        out[f"{k}_le_1"] = round(float(np.mean([v <= 1 for v in vals])), 3)
    if exact:
        out[exact] = all(r[exact] for r in rows)
    return out


def fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


MODES = ("loop", "image_loop", "connect", "connect_same_scene", "extend_forward", "extend_backward", "edit", "image_to_video", "long")


def fidelity(pipe, args) -> dict:
    runs = {"loop": loop_fidelity, "image_loop": image_loop_fidelity, "connect": connect_fidelity, "connect_same_scene": gap_fidelity,
            "extend_forward": lambda p, a: extend_fidelity(p, a, "forward"),
            "extend_backward": lambda p, a: extend_fidelity(p, a, "backward"),
            "edit": edit_fidelity, "image_to_video": i2v_fidelity, "long": long_coherence}
    result, seconds = {}, {}
    for name in args.only:
        t0 = time.perf_counter()
        result[name] = runs[name](pipe, args)
        seconds[name] = round(time.perf_counter() - t0, 1)
        log_line(f"{name}: {seconds[name]} s")
    result["seconds"] = seconds
    r = result
    cols = ["mode", "seam ratio", "share <= 1", "largest step ratio (mean)", "control", "control ratio", "control share <= 1"]

    def seam_row(mode: str, m: str, k: str, control: str | None = None, ck: str | None = None, big: str | None = None) -> dict:
        row = {"mode": mode, cols[1]: r[m][f"{k}_median"], cols[2]: r[m][f"{k}_le_1"], cols[3]: r[m].get(big)}
        if control:
            row.update({cols[4]: control, cols[5]: r[m][f"{ck}_median"], cols[6]: r[m][f"{ck}_le_1"]})
        return row

    seams = (  # seam_row's arguments; its second is the mode, whose rows show only where it ran
        ("loop: last -> first frame", "loop", "seam_ratio", "the clip without loop", "control_seam_ratio",
         "max_step_ratio"),
        ("loop, num_frames 33: last -> first frame", "loop", "seam_ratio_33"),
        ("loop, num_frames 49 (two windows and a closing transition): last -> first frame", "loop", "seam_ratio_49"),
        ("loop, num_frames 49: the clip's end -> the closing transition", "loop", "closing_junction_ratio_49"),
        ("the held-out world clip itself (reference)", "loop", "world_seam_ratio"),
        ("image loop: last -> first frame", "image_loop", "seam_ratio", "the text loop", "text_seam_ratio"),
        ("connect: A -> transition", "connect", "junction_a_ratio", "A, B cut together", "control_cut_ratio",
         "max_step_ratio"),
        ("connect: transition -> B", "connect", "junction_b_ratio"),
        ("connect, one scene: A -> transition", "connect_same_scene", "junction_a_ratio", "A, B cut together",
         "control_cut_ratio", "max_step_ratio"),
        ("connect, one scene: transition -> B", "connect_same_scene", "junction_b_ratio"),
        ("extend forward: input -> new", "extend_forward", "junction_ratio"),
        ("extend backward: new -> input", "extend_backward", "junction_ratio"))
    rows = [seam_row(*a) for a in seams if a[1] in r]
    if rows:
        n = next(r[m]["clips"] for m in MODES if m in r)
        print(f"\n### Seams, {n} held-out clips: ratio = the seam's difference over the video's median "
              "consecutive-frame difference (goal <= 1); median over clips, share of clips <= 1\n")
        print(table(rows, cols))
    if "connect_same_scene" in r:
        print("\n### Connect, one scene: the transition against the clip's own frames (means)\n")
        print(table([r["connect_same_scene"]], ["clips", "transition_psnr_db", "adherence", "permanence",
                                                "max_step_ratio"]))
    generated = [m for m in ("extend_forward", "extend_backward", "image_to_video") if m in r]
    if generated:
        print("\n### Generated part: the eval against the clip's caption (means)\n")
        print(table([{"mode": m.replace("_", " "), "preserved": ("exact" if r[m].get("preserved_exact") else
                      fmt(r[m].get("preserved_psnr_db"))) if m.startswith("extend") else
                      f"first frame {fmt(r[m]['first_frame_psnr_db_median'])} dB median", **r[m]}
                     for m in generated],
                    ["mode", "preserved", "adherence", "permanence", "objects_seen", "objects_prompted", "count_right"]))
    if "edit" in r:
        print("\n### Edit: one object's colour changed in the prompt\n")
        print(table(r["edit"]["curve"], ["strength", "clips", "diff_to_input", "adherence_edited", "adherence_original",
                                         "recoloured"]))
    if "long" in r:
        lg = r["long"]
        print(f"\n### {lg['frames']}-frame clip: the eval on consecutive {SEGMENT}-frame segments (means per 10 s), "
              f"{lg['clips']} clips\n")
        print(table(lg["per_10s"], ["from_s", "objects_seen", "objects_prompted", "count_right", "adherence",
                                    "permanence"]))
        print(f"\ndrift (last third - first third): {lg['drift_last_third_minus_first_third']}")
        if lg.get("drift_per_clip"):
            print(table(lg["drift_per_clip"]["summary"], ["metric", "mean", "stderr", "ci95_low", "ci95_high",
                                                          "clips_down", "clips_up"]))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--checkpoint", type=Path, default=None, help="a training checkpoint or run directory (EMA weights)")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--seconds", default="10,30,60", help='long-video timing durations; "" skips them')
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--fidelity", action="store_true", help="each mode's fidelity (needs a trained model)")
    ap.add_argument("--seed", type=int, default=0, help="the held-out stream (--fidelity)")
    ap.add_argument("--steps", type=int, default=25, help="sampling steps (--fidelity)")
    ap.add_argument("--guidance", type=float, default=5.0, help="guidance scale (--fidelity)")
    ap.add_argument("--long-clips", type=int, default=4, help="clips of --long-seconds (--fidelity)")
    ap.add_argument("--long-seconds", type=float, default=60.0)
    ap.add_argument("--img-dir", type=Path, default=ROOT / "docs/img", help="the frame strips (--fidelity)")
    ap.add_argument("--long-probe", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--only", type=lambda v: [m for m in v.split(",") if m], default=list(MODES),
                    help=f"the --fidelity modes to run, comma-separated (default: all: {','.join(MODES)})")
    ap.add_argument("--connect-strength", type=float, default=None,
                    help="connect from a cross-fade of the two ends noised to this level (default: the pipeline's)")
    args = ap.parse_args()
    unknown = [m for m in args.only if m not in MODES]
    if unknown:
        ap.error(f"--only: unknown mode {unknown[0]!r}; the modes are {', '.join(MODES)}")
    model = str(args.model) if args.model else None
    checkpoint = str(args.checkpoint) if args.checkpoint else None
    if args.long_probe is not None:
        long_probe(args.long_probe, model, checkpoint, args.threads)
        return
    torch.set_num_threads(args.threads)
    pipe = build(args.model, args.checkpoint)
    result = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads",
              "date": time.strftime("%Y-%m-%d"),
              "model": model or checkpoint or "world DiT at random init + shipped VAE + MiniLM",
              "image_to_video": image_to_video(pipe, args.clips), "long_video": []}
    for s in [float(x) for x in args.seconds.split(",") if x]:
        cmd = [sys.executable, __file__, "--long-probe", str(s), "--threads", str(args.threads)]
        cmd += ["--model", model] if model else ["--checkpoint", checkpoint] if checkpoint else []
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        result["long_video"].append(json.loads(line))
        print(line, flush=True)
    if args.fidelity:
        result["fidelity"] = fidelity(pipe, args)
        result["fidelity"].update(steps=args.steps, guidance=args.guidance, seed=args.seed, split="heldout")
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
