"""The default model's figures (docs/model-card.md, docs/eval.md): the learning curve (eval metrics
of each kept checkpoint's EMA weights against the training step), and the denoising-steps curve
(quality and time per clip against the number of sampling steps).

    python bench/default_model.py curve --run runs/dit-world --num-clips 50 --every 1000 --json out/curve.json
    python bench/default_model.py curve --run runs/ab-vae-f4 --num-clips 50 --every 1200 --guidance-interval 0.3 1 --shift 5
    python bench/default_model.py export --checkpoint runs/ab-vae-f4/checkpoints/step-00001200 --out runs/ab-vae-f4/model-1200 \
        --guidance-interval 0.3 1 --shift 5    # a checkpoint's EMA as a model `spacetime eval --model` reads
        # (--steps, --guidance-scale, --dtype: the sampling it ships with, when not 25, 5, float32)
    python bench/default_model.py steps --model src/spacetime/models/world --steps 8 12 16 25 --num-clips 100 --json out/steps.json
    python bench/default_model.py examples --num-clips 6 --png docs/img/default-examples.png
    python bench/default_model.py geometry --num-clips 200 --json out/geometry.json
    python bench/default_model.py guidance --intervals 0,1 0.3,1 0.5,1 0,0.7 --num-clips 100 --json out/guidance-interval.json
    python bench/default_model.py shift --shifts 1 2 3 5 8 --num-clips 100 --json out/shift.json

Prompts are the held-out split's detailed captions (the same stream as `spacetime eval`), 17x64x64
at 8 fps, guidance 5 (above noise level 0.3: the shipped model's own interval), one seed per clip. `geometry` scores the same model away from that default:
other frame counts, sizes and aspect ratios, and the shorter caption styles a user types, each row
beside the simulator's score at the same setting (the eval's ceiling there).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name  # bench/machine.py
from safetensors.torch import load_file

from spacetime.checkpoint import complete_checkpoints
from spacetime.cli import DTYPE_NAMES
from spacetime.data.video import to_uint8_frames
from spacetime.dit import DiT, DiTConfig
from spacetime.eval import evaluate_generator
from spacetime.pipeline import SpacetimePipeline, load_text_encoder
from spacetime.train import pipeline_config, vae_path
from spacetime.vae import VideoVAE

BARS = {"adherence": 0.90, "motion": 0.85, "permanence": 0.95, "gravity_sign": 0.90}


def checkpoint_vae_and_text(ckpt: Path) -> tuple[VideoVAE, object]:
    """The VAE and the text encoder of a training checkpoint's run (its config.json names them)."""
    config = json.loads((ckpt / "config.json").read_text())
    return (VideoVAE.from_pretrained(vae_path(config["vae"])),
            load_text_encoder(config["text_encoder"], config["text_max_length"]))


def checkpoint_pipeline(ckpt: Path, vae: VideoVAE, text, **sampler) -> SpacetimePipeline:
    """The EMA weights of a training checkpoint as a pipeline (what `spacetime train` would ship);
    `sampler`: defaults it samples with (num_inference_steps, guidance_scale, guidance_interval,
    shift, dtype), each None or left out: the pipeline's."""
    config = json.loads((ckpt / "config.json").read_text())
    dit = DiT(DiTConfig(**config["model"]))
    dit.load_state_dict(load_file(ckpt / "ema.safetensors"))
    model = pipeline_config(config)
    model["defaults"].update({k: v for k, v in sampler.items() if v is not None})
    return SpacetimePipeline(dit, vae, text, model)


ROWS = ("adherence", "motion", "permanence", "physics", "smoothness")


def summary(agg: dict) -> dict:
    row = {m: agg[m]["mean"] for m in ROWS}
    row["gravity_sign"] = agg["gravity"]["gravity"]["sign_correct"]
    row["gravity_clips"] = agg["gravity"]["gravity"]["clips"]
    row["median_accel_y"] = agg["gravity"]["gravity"]["median_accel_y"]
    row["frechet_distance"] = agg["distribution"]["frechet_distance"]
    return row


def score(pipe: SpacetimePipeline, num_clips: int, steps: int, guidance: float, interval=None, shift=None,
          **setting) -> dict:
    """Eval metrics of `pipe` on held-out prompts; `setting` is passed to `evaluate_generator`
    (num_frames, height, width, caption); `interval`: the guidance interval, `shift` the sampler's
    timestep shift (None: the model's)."""
    seconds = []

    def generate(prompt: str, *, num_frames: int, height: int, width: int, fps: float, seed: int) -> np.ndarray:
        t0 = time.perf_counter()
        out = pipe(prompt, num_frames=num_frames, height=height, width=width, num_inference_steps=steps,
                   guidance_scale=guidance, guidance_interval=interval, shift=shift, generator=torch.Generator().manual_seed(seed))
        seconds.append(time.perf_counter() - t0)
        return to_uint8_frames(out.frames[0])

    agg = evaluate_generator(generate, split="heldout", num_clips=num_clips, progress=False, **setting).aggregate()
    row = summary(agg)
    row["seconds_per_clip"] = round(float(np.median(seconds)), 3)
    return row


def simulator_score(num_clips: int, **setting) -> dict:
    """The simulator's own clips for the same prompts and setting: what a perfect model scores."""
    from spacetime.eval import BASELINES

    sim = BASELINES["simulator"]
    return summary(evaluate_generator(sim, split="heldout", num_clips=num_clips, progress=False, **setting).aggregate())


def parse_setting(text: str) -> dict:
    """'17x64x96' or '17x64x96:short' (frames x height x width[:caption]) -> evaluate_generator kwargs."""
    geometry, _, caption = text.partition(":")
    try:
        frames, height, width = (int(v) for v in geometry.split("x"))
    except ValueError:
        raise SystemExit(f"--settings: {text!r} is not FRAMESxHEIGHTxWIDTH[:caption], e.g. 17x64x96:short") from None
    if caption not in ("", "detailed", "medium", "short"):
        raise SystemExit(f"--settings: caption {caption!r} in {text!r} is not detailed, medium or short")
    return {"num_frames": frames, "height": height, "width": width, "caption": caption or "detailed"}


def loss_near(run: Path, step: int, window: int = 250) -> float | None:
    """Mean logged training loss over the `window` steps up to `step`."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    vals = [r["loss"] for r in rows if "loss" in r and step - window < r["step"] <= step]
    return round(float(np.mean(vals)), 4) if vals else None


def table(rows: list[dict], key: str) -> str:
    cols = ["adherence", "motion", "permanence", "gravity_sign", "physics", "smoothness", "frechet_distance",
            "seconds_per_clip"]
    extra = ["train_loss"] if "train_loss" in rows[0] else []
    lines = [f"| {key} | " + " | ".join(extra + cols) + " |", "| --- " * (1 + len(extra) + len(cols)) + "|"]
    for r in rows:
        vals = [r[c] for c in extra + cols]
        lines.append(f"| {r[key]} | " + " | ".join("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
                                                  for v in vals) + " |")
    return "\n".join(lines)


def sweep(pipe: SpacetimePipeline, args, key: str, settings: list[tuple]) -> list[dict]:
    """Eval metrics of `pipe` at each setting, (label, `score` keyword arguments over the command's
    steps and guidance scale), each row printed as it comes, then the table (`key`: the label's column)."""
    rows = []
    for label, kw in settings:
        row = {key: label, **score(pipe, args.num_clips, **{"steps": args.sampling_steps, "guidance": args.guidance_scale, **kw})}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(table(rows, key))
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps = [r["step"] for r in rows]
    for m in ("adherence", "motion", "permanence", "gravity_sign"):
        line = ax.plot(steps, [np.nan if r[m] is None else r[m] for r in rows], marker="o", label=m)[0]
        ax.axhline(BARS[m], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("training step (batch 8)")
    ax.set_ylabel("held-out score (dotted: the bar)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def examples(pipe: SpacetimePipeline, num_clips: int, steps: int, guidance: float, png: Path) -> list[dict]:
    """Held-out prompts: the model's clip above the simulator's rendition, every 4th frame, with
    each clip's scores and the reasons of its failed checks."""
    from PIL import Image

    from spacetime.eval import BASELINES, score_clip
    from spacetime.eval.evaluate import split_prompts
    from spacetime.eval.generators import derived_seed

    rows, strips = [], []
    for i, prompt in enumerate(split_prompts("heldout", num_clips)):
        seed = derived_seed(0, i, 1)  # the seeds `spacetime eval` uses
        frames = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance,
                      generator=torch.Generator().manual_seed(seed)).frames[0]
        ref = BASELINES["simulator"](prompt, num_frames=17, height=64, width=64, fps=8.0, seed=derived_seed(0, i, 2))
        s = score_clip(frames, 8.0, prompt)
        rows.append({"clip": i, "prompt": prompt,
                     **{m: s.metrics[m].score for m in ("adherence", "motion", "permanence", "physics")},
                     "failed": [r for m in ("adherence", "motion", "permanence") for r in s.metrics[m].reasons][:4]})
        gap = np.full((64, 4, 3), 128, np.uint8)
        strips.append(np.concatenate([np.concatenate([f, gap], 1) for f in frames[::4]], 1))
        strips.append(np.concatenate([np.concatenate([f, gap], 1) for f in ref[::4]], 1))
        strips.append(np.full((6, strips[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(strips, 0)
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(png)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("curve", help="eval metrics of every kept checkpoint (EMA) against the step")
    c.add_argument("--run", type=Path, required=True)
    c.add_argument("--every", type=int, default=1000, help="only checkpoints at multiples of this step (and the last)")
    c.add_argument("--plot", type=Path, default=None, help="a PNG of the curve")
    c.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="guidance only at noise levels in [LO, HI] (default: every step, as a checkpoint has no interval of its own)")
    c.add_argument("--shift", type=float, default=None,
                   help="the sampler's timestep shift (default 1, as a checkpoint has no shift of its own)")
    x = sub.add_parser("export", help="a checkpoint's EMA weights as a model directory (for `spacetime eval --model`)")
    x.add_argument("--checkpoint", type=Path, required=True)
    x.add_argument("--out", type=Path, required=True)
    x.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="the model's default guidance interval (default: the pipeline's)")
    x.add_argument("--shift", type=float, default=None, help="the model's default sampler shift (default: the pipeline's)")
    x.add_argument("--steps", type=int, default=None, help="the model's default sampler steps (default: the pipeline's)")
    x.add_argument("--guidance-scale", type=float, default=None, help="the model's default guidance scale (default: the pipeline's)")
    x.add_argument("--dtype", choices=DTYPE_NAMES, default=None,
                   help="the dtype the model samples in by default (weights are stored float32; default: the pipeline's)")
    x.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("steps", help="quality and time per clip against the number of denoising steps")
    s.add_argument("--model", type=Path, default=None, help="a pipeline directory (default: the shipped model)")
    s.add_argument("--steps", type=int, nargs="+", default=[8, 12, 16, 25])
    e = sub.add_parser("examples", help="a PNG of held-out prompts: the model's clips above the simulator's")
    e.add_argument("--model", type=Path, default=None)
    e.add_argument("--png", type=Path, required=True)
    g = sub.add_parser("geometry", help="quality at other frame counts, sizes and caption styles, beside the simulator")
    g.add_argument("--model", type=Path, default=None)
    g.add_argument("--settings", nargs="+",
                   default=["17x64x64", "17x64x96", "17x96x64", "33x64x64", "17x64x64:medium", "17x64x64:short"],
                   help="FRAMESxHEIGHTxWIDTH[:caption] (caption: detailed, medium or short; default detailed)")
    gi = sub.add_parser("guidance", help="quality against the guidance interval (noise levels where guidance is applied)")
    gi.add_argument("--model", type=Path, default=None)
    gi.add_argument("--intervals", nargs="+", default=["0,1", "0.3,1", "0.5,1", "0,0.7"], help="LO,HI each")
    sh = sub.add_parser("shift", help="quality against the sampler's timestep shift")
    sh.add_argument("--model", type=Path, default=None)
    sh.add_argument("--shifts", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0, 8.0])
    for p in (c, s, e, g, gi, sh):
        p.add_argument("--num-clips", type=int, default=50)
        p.add_argument("--guidance-scale", type=float, default=5.0)
        p.add_argument("--sampling-steps", type=int, default=25)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "export":
        pipe = checkpoint_pipeline(args.checkpoint, *checkpoint_vae_and_text(args.checkpoint),
                                   guidance_interval=args.guidance_interval, shift=args.shift,
                                   num_inference_steps=args.steps, guidance_scale=args.guidance_scale, dtype=args.dtype)
        print(pipe.save_pretrained(args.out))
        return
    result = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads",
              "date": time.strftime("%Y-%m-%d"), "num_clips": args.num_clips, "guidance_scale": args.guidance_scale,
              "split": "heldout"}
    if args.what == "curve":
        ckpts = complete_checkpoints(args.run)
        if not ckpts:
            raise SystemExit(f"{args.run}: no complete checkpoint")
        chosen = [p for p in ckpts if int(p.name.split("-")[1]) % args.every == 0]
        if ckpts[-1] not in chosen:
            chosen.append(ckpts[-1])
        vae, text = checkpoint_vae_and_text(ckpts[-1])  # once for all of the run's checkpoints
        rows = []
        for p in chosen:
            step = int(p.name.split("-")[1])
            t0 = time.perf_counter()
            row = {"step": step, "train_loss": loss_near(args.run, step),
                   **score(checkpoint_pipeline(p, vae, text), args.num_clips, args.sampling_steps, args.guidance_scale,
                           tuple(args.guidance_interval) if args.guidance_interval else None, args.shift)}
            rows.append(row)
            print(json.dumps(row), f"({time.perf_counter() - t0:.0f} s)", flush=True)
        result.update(run=str(args.run), sampling_steps=args.sampling_steps, guidance_interval=args.guidance_interval,
                      shift=args.shift, curve=rows)
        print(table(rows, "step"))
        if args.plot:
            plot(rows, args.plot)
    elif args.what == "examples":
        rows = examples(SpacetimePipeline.from_pretrained(args.model), args.num_clips, args.sampling_steps,
                        args.guidance_scale, args.png)
        for r in rows:
            print(json.dumps(r))
        result.update(examples=rows)
    elif args.what == "geometry":
        pipe = SpacetimePipeline.from_pretrained(args.model)
        rows = []
        for text in args.settings:
            setting = parse_setting(text)
            t0 = time.perf_counter()
            row = {"setting": text, **setting,
                   **score(pipe, args.num_clips, args.sampling_steps, args.guidance_scale, **setting),
                   "simulator": simulator_score(args.num_clips, **setting)}
            rows.append(row)
            print(json.dumps(row), f"({time.perf_counter() - t0:.0f} s)", flush=True)
        result.update(model=str(args.model or "shipped"), sampling_steps=args.sampling_steps, geometry=rows)
        print(table(rows, "setting"))
        sim = [{"setting": r["setting"], **r["simulator"], "seconds_per_clip": None} for r in rows]
        print("simulator, same prompts and settings:")
        print(table(sim, "setting"))
    else:  # one sampling setting varied: the guidance interval, the shift or the number of steps
        pipe = SpacetimePipeline.from_pretrained(args.model)
        model = str(args.model or "shipped")
        if args.what == "guidance":
            intervals = [tuple(float(v) for v in text.split(",")) for text in args.intervals]
            rows = sweep(pipe, args, "interval", [(f"[{lo:g}, {hi:g}]", {"interval": (lo, hi)}) for lo, hi in intervals])
            result.update(model=model, sampling_steps=args.sampling_steps, guidance_curve=rows)
        elif args.what == "shift":
            rows = sweep(pipe, args, "shift", [(v, {"shift": v}) for v in args.shifts])
            result.update(model=model, sampling_steps=args.sampling_steps, shift_curve=rows)
        else:
            result.update(model=model, steps_curve=sweep(pipe, args, "steps", [(n, {"steps": n}) for n in args.steps]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
