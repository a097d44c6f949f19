"""A pipeline whose DiT weights lie between two pipelines' (weight-space ensembling, WiSE-FT).

    python bench/interpolate_models.py BASE TUNED --alpha 0.5 --out runs/soup-0.5
    python bench/interpolate_models.py BASE TUNED --alpha 1 --random-direction 0 --out runs/jitter

--random-direction SEED, the control for a fine-tune's effect: BASE moved as far as TUNED is from
it, tensor by tensor (the same norm of change in each), but in a random direction. Whether a
metric falls there too says if it falls for *where* training went or merely for moving at all.

The DiT's weights are (1 - alpha) * BASE + alpha * TUNED, computed in fp32; everything else
(config, VAE) is TUNED's. Meaningful when TUNED was fine-tuned from BASE (the default model's
stages are): the two lie in one basin, and points between them often keep what each does well —
here, an earlier stage's motion and permanence and a later stage's adherence
(docs/experiments.md, stage 7). Both DiTs must have the same tensors and shapes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from spacetime.checkpoint import save_model


def check_same_tensors(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor]) -> None:
    if base.keys() != tuned.keys():
        raise ValueError(f"the DiTs differ in tensors: {sorted(base.keys() ^ tuned.keys())[:5]}")
    for k, b in base.items():
        if b.shape != tuned[k].shape:
            raise ValueError(f"{k}: shape {tuple(b.shape)} in BASE, {tuple(tuned[k].shape)} in TUNED")


def interpolate(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * base + alpha * tuned, tensor by tensor, in fp32."""
    check_same_tensors(base, tuned)
    return {k: torch.lerp(b.float(), tuned[k].float(), alpha) if b.is_floating_point() else tuned[k]
            for k, b in base.items()}


def random_direction(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float,
                     seed: int) -> tuple[dict[str, torch.Tensor], float]:
    """base + alpha * r per tensor, r Gaussian with the norm of (tuned - base); and the relative
    size of the whole change, |tuned - base| / |base| over all floating tensors."""
    check_same_tensors(base, tuned)
    gen = torch.Generator().manual_seed(seed)
    out, moved, size = {}, 0.0, 0.0
    for k in sorted(base):
        b, t = base[k], tuned[k]
        if not b.is_floating_point():
            out[k] = t
            continue
        d = t.float() - b.float()
        r = torch.randn(b.shape, generator=gen)
        out[k] = b.float() + alpha * r * (d.norm() / r.norm().clamp_min(1e-12))
        moved += float(d.norm()) ** 2
        size += float(b.float().norm()) ** 2
    return out, (moved / max(size, 1e-30)) ** 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path)
    ap.add_argument("tuned", type=Path)
    ap.add_argument("--alpha", type=float, required=True, help="0: BASE, 1: TUNED")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--random-direction", type=int, default=None, metavar="SEED",
                    help="move BASE as far as TUNED is, tensor by tensor, in a random direction")
    a = ap.parse_args()
    if not 0.0 <= a.alpha <= 1.0:
        raise SystemExit(f"--alpha must be in [0, 1], got {a.alpha}")
    for p in (a.base, a.tuned):
        if not (p / "COMPLETE").is_file():
            raise SystemExit(f"{p} is not a complete pipeline directory")
    base, tuned = load_file(a.base / "model.safetensors"), load_file(a.tuned / "model.safetensors")
    if a.random_direction is None:
        weights = interpolate(base, tuned, a.alpha)
        what = f"{1 - a.alpha:g} x {a.base} + {a.alpha:g} x {a.tuned}"
    else:
        weights, rel = random_direction(base, tuned, a.alpha, a.random_direction)
        what = (f"{a.base} moved {a.alpha:g} x as far as {a.tuned} is from it ({rel:.2e} of its norm), "
                f"in a random direction (seed {a.random_direction})")
    config = json.loads((a.tuned / "config.json").read_text())
    subdirs = {d.name: d for d in a.tuned.iterdir() if d.is_dir()}
    save_model(a.out, config, weights, subdirs=subdirs)
    print(f"wrote {a.out}: {what}")


if __name__ == "__main__":
    main()
