"""Calibrate the world-model evaluation: the simulator and baselines that break it in one known way
each, scored by `spacetime.eval` on prompts from both splits. The table in docs/eval.md is this
script's output.

    python bench/eval_baselines.py [--num-clips 200] [--size 64x64] [--num-frames 17] [--fps 8] [--json out.json]
        [--vae src/spacetime/models/world/vae [--save-vae DIR]] [--splits heldout] [--no-generators]

Rows: the source clips the prompts were captioned from (raw, and through H.264 4:2:0 and 4:4:4 at
the default CRF; with --vae, also encoded to latents and decoded back by that VAE and saved as
`spacetime eval` saves a model's clips (4:4:4, crf 0): the best a DiT on its latents can score;
--save-vae DIR keeps those clips, a folder `spacetime eval --videos` re-scores with reasons), then
every generator in `spacetime.eval.generators.BASELINES` on the same
prompts. Before the table, the tracker's own accuracy on the source clips against their ground
truth: centroid error over clean frames (pixels; a triangle's area centroid is r/3 below its box
centre), and the share of objects seen whole whose shape and size it reads right (the shape also
per size and shape: [objects, share]). Columns: each metric's mean over the clips it judges (`-`: none), the trajectory Fréchet
distance to the simulator's renditions (same reference draws for every row), and the median
vertical acceleration measured on objects whose prompt has gravity (world: -4 units/s^2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name  # bench/machine.py

from spacetime.cli import parse_size
from spacetime.data.video import frames_to_tensor, read_video, tensor_to_frames, write_video
from spacetime.eval import BASELINES, METRICS, Sample, evaluate, generate_samples, split_prompts
from spacetime.eval.command import save_samples
from spacetime.world.clip import make_clip, stream_seed


def _row(name: str, result) -> dict:
    agg = result.aggregate()
    return {
        "baseline": name,
        **{m: agg[m]["mean"] for m in METRICS},
        **{f"{m}_pass_rate": agg[m]["pass_rate"] for m in METRICS},
        **{f"{m}_clips": agg[m]["clips"] for m in METRICS},
        "frechet_distance": agg["distribution"]["frechet_distance"],
        "gravity_accel_median": agg["gravity"]["gravity"]["median_accel_y"],
    }


def _tracker_accuracy(clips, result) -> dict:
    errs, shape_ok, size_ok, by_kind = [], [], [], {}
    for clip, score in zip(clips, result.scores):
        gt, h = clip.ground_truth(), clip.height
        for o in gt["objects"]:
            tr = score.track.tracks.get(o["colour"])
            if tr is None:
                continue
            want = np.asarray(o["pixel"]) + ([0, o["radius_px"] / 3] if o["shape"] == "triangle" else [0, 0])
            errs += np.hypot(*(tr.centroid[tr.clean] - want[tr.clean]).T).tolist()
            if tr.shape() is not None:
                shape_ok.append(tr.shape() == o["shape"])
                size_ok.append(tr.size(h) == o["size"])
                by_kind.setdefault(f"{o['size']} {o['shape']}", []).append(shape_ok[-1])
    return {
        "centroid_error_px_mean": round(float(np.mean(errs)), 3),
        "centroid_error_px_p99": round(float(np.percentile(errs, 99)), 3),
        "objects_judged": len(shape_ok),
        "shape_accuracy": round(float(np.mean(shape_ok)), 4),
        "size_accuracy": round(float(np.mean(size_ok)), 4),
        "shape_accuracy_by_kind": {k: [len(v), round(float(np.mean(v)), 4)] for k, v in sorted(by_kind.items())},
    }


@torch.no_grad()
def vae_round_trip(vae, frames: np.ndarray, noise: float = 0.0, generator: torch.Generator | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same clip encoded to the posterior mean and decoded, uint8; with
    `noise`, that times N(0, 1) (drawn from `generator`) added to the normalized latents first."""
    z = vae.encode(frames_to_tensor(frames)[None])
    if noise:
        z = z + noise * torch.randn(z.shape, generator=generator)
    return tensor_to_frames(vae.decode(z)[0])


def _table(rows: list[dict]) -> str:
    head = "| baseline | " + " | ".join(METRICS) + " | Fréchet dist. | accel. under gravity |"
    lines = [head, "|" + " --- |" * (len(METRICS) + 3)]
    for r in rows:
        cells = ["-" if r[m] is None else f"{r[m]:.3f}" for m in METRICS]
        fd = "-" if r["frechet_distance"] is None else f"{r['frechet_distance']:.2f}"
        g = "-" if r["gravity_accel_median"] is None else f"{r['gravity_accel_median']:+.2f}"
        lines.append(f"| {r['baseline']} | " + " | ".join(cells) + f" | {fd} | {g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-clips", type=int, default=200, help="prompts per split")
    ap.add_argument("--size", type=parse_size, default=(64, 64), help="WxH")
    ap.add_argument("--num-frames", type=int, default=17)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--vae", type=Path, default=None, help="a VAE model folder: add its round trip as a row")
    ap.add_argument("--save-vae", type=Path, default=None, help="keep the VAE's round trips here, a folder per split")
    ap.add_argument("--no-generators", action="store_true", help="the source rows alone (and --vae's)")
    ap.add_argument("--splits", default="train,heldout", help="comma-separated: train, heldout")
    args = ap.parse_args(argv)
    splits = args.splits.split(",")
    if not splits or any(s not in ("train", "heldout") for s in splits):
        ap.error(f"--splits: expected train and/or heldout, got {args.splits!r}")
    torch.set_num_threads(1)
    w, h = args.size
    geometry = {"num_frames": args.num_frames, "height": h, "width": w, "fps": args.fps}
    t0 = time.perf_counter()
    out = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python bench/eval_baselines.py "
        + " ".join(argv if argv is not None else os.sys.argv[1:]),
        **{k: v for k, v in geometry.items()},
        "num_clips": args.num_clips,
        "splits": {},
    }
    vae = None
    if args.vae is not None:
        from spacetime.vae import VideoVAE

        vae = VideoVAE.from_pretrained(args.vae)
    for split in splits:
        clips = [
            make_clip(stream_seed(args.seed, i, split), split=split, **geometry)
            for i in range(args.num_clips)
        ]
        prompts = [c.captions["detailed"] for c in clips]
        assert prompts == split_prompts(split, args.num_clips, seed=args.seed, **geometry)
        rows = []
        source = evaluate(
            [Sample(f"{i:06d}", p, c.frames, args.fps) for i, (p, c) in enumerate(zip(prompts, clips))],
            seed=args.seed,
            progress=False,
        )
        refs = source.references
        rows.append(_row("source clips (the captioned clips)", source))
        tracker = {"raw": _tracker_accuracy(clips, source)}
        with tempfile.TemporaryDirectory() as d:
            for pix_fmt in ("yuv444p", "yuv420p"):
                samples = []
                for i, (p, c) in enumerate(zip(prompts, clips)):
                    path = Path(d) / f"{i}.mp4"
                    write_video(c.frames, path, fps=args.fps, pix_fmt=pix_fmt)
                    samples.append(Sample(f"{i:06d}", p, read_video(path)[0], args.fps))
                result = evaluate(samples, seed=args.seed, references=refs, progress=False)
                rows.append(_row(f"source clips, H.264 {pix_fmt[3:]}", result))
                tracker[pix_fmt] = _tracker_accuracy(clips, result)
        if vae is not None:
            samples = [Sample(f"{i:06d}", p, vae_round_trip(vae, c.frames), args.fps) for i, (p, c) in enumerate(zip(prompts, clips))]
            keep = None if args.save_vae is None else contextlib.nullcontext(args.save_vae / split)
            with keep or tempfile.TemporaryDirectory() as d:
                samples = list(save_samples(samples, Path(d), "detailed"))
            result = evaluate(samples, seed=args.seed, references=refs, progress=False)
            rows.append(_row("source clips through the VAE (encode, decode)", result))
            tracker["vae"] = _tracker_accuracy(clips, result)
        for name, gen in () if args.no_generators else BASELINES.items():
            samples = generate_samples(gen, prompts, seed=args.seed, **geometry)
            rows.append(_row(name, evaluate(samples, seed=args.seed, references=refs, progress=False)))
        out["splits"][split] = rows
        out.setdefault("tracker", {})[split] = tracker
        print(f"\n{split} split, {args.num_clips} prompts; tracker vs ground truth: {json.dumps(tracker)}\n")
        print(_table(rows), flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{out['machine']}; {out['seconds']} s")
    return out


if __name__ == "__main__":
    main()
