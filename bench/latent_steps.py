"""Where a video's frame-to-frame steps are large, by position within the VAE's latent frames.

    python bench/latent_steps.py [--model src/spacetime/models/world] [--clips 10] [--frames 33] [--json out.json]

The causal VAE decodes latent frame k >= 1 to frames 4k-3..4k, so the step from frame 4k to 4k+1
crosses from one latent frame to the next ("phase 0") and the other three steps stay inside one
latent frame's group. For each video: every step's mean absolute pixel difference over the
video's median step (as bench/modes.py's seam ratios), averaged per phase; the median over clips.
Rows: held-out world clips themselves; their VAE round trip; the round trip with Gaussian noise of
sigma added to the (normalized) latents; and the model's text -> video clips for the same captions
(--steps, --guidance, --solver: 25 Euler steps, guidance 5 by default). A model whose latents
agree from one latent frame to the next gives ~1 in every phase, as the VAE rows do.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from modes import heldout, steps_of, typical_step  # bench/modes.py

from spacetime.data.video import tensor_to_frames
from spacetime.pipeline import SpacetimePipeline


def by_phase(video: np.ndarray, factor: int) -> list[float]:
    steps = steps_of(video) / typical_step(video)  # step j: frame j -> j + 1
    return [float(steps[p::factor].mean()) for p in range(factor)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="a pipeline directory (default: the shipped model)")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--sigmas", default="0.1,0.2,0.4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--solver", default="euler")
    ap.add_argument("--model-only", action="store_true", help="skip the world and VAE rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = SpacetimePipeline.from_pretrained(args.model)
    factor = pipe.vae.config.temporal_factor
    sigmas = [float(s) for s in args.sigmas.split(",") if s]
    rows: dict[str, list[list[float]]] = {"world clip": [], "VAE round trip": [],
                                          **{f"VAE round trip, latent noise {s:g}": [] for s in sigmas}, "model": []}
    for i in range(args.clips):
        clip = heldout(args.seed, i, args.frames)
        out = pipe(clip.captions["detailed"], num_frames=args.frames, num_inference_steps=args.steps,
                   guidance_scale=args.guidance, solver=args.solver, generator=torch.Generator().manual_seed(i)).frames[0]
        rows["model"].append(by_phase(out, factor))
        if args.model_only:
            continue
        rows["world clip"].append(by_phase(clip.frames, factor))
        with torch.no_grad():
            z = pipe._encode(clip.frames)
            rows["VAE round trip"].append(by_phase(tensor_to_frames(pipe.vae.decode(z)[0]), factor))
            for s in sigmas:
                noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(i))
                rows[f"VAE round trip, latent noise {s:g}"].append(by_phase(tensor_to_frames(pipe.vae.decode(z + s * noise)[0]), factor))
    rows = {k: v for k, v in rows.items() if v}
    result = {"clips": args.clips, "frames": args.frames, "model": str(args.model or "shipped default"),
              "steps": args.steps, "guidance": args.guidance, "solver": args.solver,
              "median_step_ratio_by_phase": {k: [round(float(x), 3) for x in np.median(v, axis=0)] for k, v in rows.items()}}
    print("| video | " + " | ".join(["4k → 4k+1 (across latent frames)"] + [f"4k+{p} → 4k+{p + 1}" for p in range(1, factor)])
          + " |")
    print("|" + " --- |" * (factor + 1))
    for k, v in result["median_step_ratio_by_phase"].items():
        print(f"| {k} | " + " | ".join(f"{x:.2f}" for x in v) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
