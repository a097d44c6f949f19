"""`spacetime eval` with the sampler's starting noise correlated across latent frames.

    python bench/correlated_noise.py --alpha 0.3 -- --model src/spacetime/models/world --split heldout \
        --num-clips 50 --seed 0 --no-report --out eval/noise-a03

Each latent frame's noise is sqrt(alpha)*shared + sqrt(1 - alpha)*own (unit variance still; the
shared part is one draw per video): a training-free nudge towards one layout for all frames,
tried against the shipped model's vanishings and duplicates between latent frames
(docs/experiments.md, "Correlated starting noise"). alpha 0 is the plain eval, draw for draw.
"""

from __future__ import annotations

import argparse
import math

import torch

import spacetime.pipeline as pipeline
from spacetime.cli import main as cli_main

_plain = pipeline.draw_noise


def correlated(alpha: float):
    def draw(shape, generator, device):
        noise = _plain(shape, generator, device)  # (B, C, T, H, W), the plain draws first
        if alpha == 0 or len(shape) != 5:
            return noise
        # the shared part drawn after the plain noise: each frame's own draws are the plain eval's
        shared = _plain((shape[0], shape[1], 1, *shape[3:]), generator, device)
        return math.sqrt(alpha) * shared + math.sqrt(1 - alpha) * noise
    return draw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alpha", type=float, required=True, help="the shared share of each frame's noise variance, in [0, 1)")
    ap.add_argument("eval_args", nargs=argparse.REMAINDER, help="-- then `spacetime eval` arguments")
    a = ap.parse_args()
    if not 0 <= a.alpha < 1:
        raise SystemExit(f"--alpha must be in [0, 1), got {a.alpha}")
    pipeline.draw_noise = correlated(a.alpha)
    args = a.eval_args[1:] if a.eval_args[:1] == ["--"] else a.eval_args
    torch.manual_seed(0)
    raise SystemExit(cli_main(["eval", *args]))


if __name__ == "__main__":
    main()
