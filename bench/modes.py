"""Figures of the prompting modes that do not depend on how well the DiT is trained, and the
long-video cost.

    python bench/modes.py [--model DIR] [--clips 32] [--seconds 10,30,60] [--json out.json]

- image -> video: PSNR of the output's first frame against the given image, over held-out world
  first frames. The image is held as the first latent frame and the causal VAE decodes frame 0
  from latent frame 0 alone, so this is the VAE's image round trip whatever the DiT has learned.
- long video (`--seconds`): wall time and peak RSS of one text -> video clip of each duration,
  64x64 at 8 fps, 25 steps, guidance 5.0, made window by window (33-frame windows); each in a
  fresh process. Time per window does not depend on the DiT's weights.

Without --model: the world DiT preset at random init, the VAE shipped in the package and MiniLM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name  # bench/machine.py

ROOT = Path(__file__).resolve().parents[1]


def build(model: Path | None):
    from spacetime.dit import PRESETS, DiT
    from spacetime.pipeline import SpacetimePipeline, load_text_encoder
    from spacetime.vae import VideoVAE

    if model is not None:
        return SpacetimePipeline.from_pretrained(model)
    torch.manual_seed(0)
    vae = VideoVAE.from_pretrained(ROOT / "src/spacetime/models/world/vae")
    config = {"defaults": {"num_frames": 17, "height": 64, "width": 64, "fps": 8.0}}
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


def long_probe(seconds: float, model: str | None) -> None:
    torch.set_num_threads(2)
    pipe = build(Path(model) if model else None)
    frames = 1 + 4 * round(seconds * 8 / 4)
    t0 = time.perf_counter()
    out = pipe("a red ball bounces off the left wall", num_frames=frames, num_inference_steps=25, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(0))
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "frames": int(out.frames[0].shape[0]), "wall_s": round(wall, 1),
                      "peak_rss_mib": round(rss, 1), **{k: round(v, 1) for k, v in out.timings.items()}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--seconds", default="10,30,60")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--long-probe", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.long_probe is not None:
        long_probe(args.long_probe, str(args.model) if args.model else None)
        return
    torch.set_num_threads(2)
    result = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 2 threads",
              "model": str(args.model) if args.model else "world DiT at random init + shipped VAE + MiniLM",
              "image_to_video": image_to_video(build(args.model), args.clips), "long_video": []}
    for s in [float(x) for x in args.seconds.split(",") if x]:
        cmd = [sys.executable, __file__, "--long-probe", str(s)] + (["--model", str(args.model)] if args.model else [])
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        result["long_video"].append(json.loads(line))
        print(line, flush=True)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
