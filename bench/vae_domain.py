"""How a model's VAE round-trips pictures from outside the procedural world.

    python bench/vae_domain.py [--model DIR] [--json out/vae_domain.json]

The modes that start from a user's picture (image->video, extend, connect, edit) encode it with the
model's VAE, and what comes out is what the VAE can decode. The shipped VAE learned the world
alone — a few background colours, ten object colours, flat shading — so this measures, on
still frames at 64x64, the round trip (encode, decode) of
  - the world's own first frames (held-out split), the reference;
  - flat greys at every 16th level, flat colours between the world's, smooth gradients and a
    blurred random texture: what photos are made of.
Per input kind: PSNR (dB, mean over its pictures) and the mean absolute colour shift of the
picture's mean colour (0-255 levels), the share of pictures within 25 dB.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def round_trip(pipe, frames: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) stills -> the VAE's uint8-range float reconstructions, one at a time."""
    out = []
    with torch.no_grad():
        for a in frames:
            y = pipe.vae.decode(pipe._encode(a[None]))  # (1, 3, 1, H, W) in [-1, 1]
            out.append(((y[0, :, 0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).float().numpy())
    return np.stack(out)


def pictures(seed: int = 0) -> dict[str, np.ndarray]:
    from spacetime.world import make_clip

    g = np.random.default_rng(seed)
    world = np.stack([make_clip(i, num_frames=1, height=64, width=64, split="heldout").frames[0] for i in range(32)])
    greys = np.stack([np.full((64, 64, 3), v, np.uint8) for v in range(0, 256, 16)])
    colours = g.integers(0, 256, (32, 1, 1, 3)).repeat(64, 1).repeat(64, 2).astype(np.uint8)
    x = np.linspace(0.0, 1.0, 64)
    grads = []
    for _ in range(16):
        a, b = g.integers(0, 256, 3), g.integers(0, 256, 3)
        t = np.clip(np.add.outer(x * g.uniform(-1, 1), x * g.uniform(-1, 1)) + 0.5, 0, 1)[..., None]
        grads.append((a * (1 - t) + b * t).astype(np.uint8))
    noise = torch.from_numpy(g.standard_normal((16, 3, 8, 8))).float()
    texture = F.interpolate(noise, size=(64, 64), mode="bicubic", align_corners=False)
    texture = ((texture - texture.amin((1, 2, 3), keepdim=True)) /
               (texture.amax((1, 2, 3), keepdim=True) - texture.amin((1, 2, 3), keepdim=True)) * 255)
    return {"world (held-out first frames)": world, "flat greys": greys, "flat random colours": colours,
            "gradients": np.stack(grads), "smooth random texture": texture.permute(0, 2, 3, 1).round().byte().numpy()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a pipeline folder (default: the shipped model)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from spacetime.pipeline import SpacetimePipeline

    torch.manual_seed(0)
    pipe = SpacetimePipeline.from_pretrained(args.model) if args.model else SpacetimePipeline.from_pretrained()
    rows = {}
    for kind, x in pictures().items():
        y = round_trip(pipe, x)
        mse = ((x.astype(np.float64) - y) ** 2).mean((1, 2, 3))
        psnr = 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))
        shift = np.abs(x.reshape(len(x), -1, 3).mean(1) - y.reshape(len(y), -1, 3).mean(1)).mean()
        rows[kind] = {"pictures": len(x), "psnr_db": round(float(np.minimum(psnr, 60).mean()), 1),
                      "within_25db": round(float((psnr >= 25).mean()), 2), "mean_colour_shift": round(float(shift), 1)}
    print("| input (64x64 stills) | pictures | PSNR (dB, capped at 60) | share >= 25 dB | mean colour shift (levels) |")
    print("| --- | --- | --- | --- | --- |")
    for kind, r in rows.items():
        print(f"| {kind} | {r['pictures']} | {r['psnr_db']} | {r['within_25db']:.2f} | {r['mean_colour_shift']} |")
    result = {"model": args.model or "shipped", "command": "python bench/vae_domain.py " + " ".join(argv or sys.argv[1:]),
              "rows": rows}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
