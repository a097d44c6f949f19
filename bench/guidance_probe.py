"""What guidance does at each sampler step: the update's direction against the conditional
denoised prediction (what APG removes) and CFG-Zero*'s fitted scale of v_u (what it corrects).

    python bench/guidance_probe.py --prompts "a red ball bounces to the right on a black background" \
        --model src/spacetime/models/world --json out/guidance_probe.json

Per guided step and prompt: t, cos(x0_c - x0_u, x0_c), s* = <v_c, v_u> / |v_u|^2, and the RMS of
the update x0_c - x0_u. The model samples with its own defaults (plain guidance), so the numbers
describe the path the shipped sampler takes (docs/experiments.md, "Guidance methods").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from spacetime import sampling
from spacetime.pipeline import SpacetimePipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a pipeline directory (default: the shipped model)")
    ap.add_argument("--prompts", nargs="+", default=["a red ball bounces to the right on a black background",
                                                     "a small blue triangle falls onto the floor, a green square floats up"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    pipe = SpacetimePipeline.from_pretrained(args.model)
    rows = []
    plain = sampling.predictions

    def spy(model, x, t, *rest, **kw):
        v_c, v_u = plain(model, x, t, *rest, **kw)
        time = float(t[0])
        d, x0_c = time * (v_u - v_c), x - time * v_c
        rows.append({"prompt": prompt, "t": round(time, 4),
                     "cos_update_x0c": round(float(torch.nn.functional.cosine_similarity(d.flatten(), x0_c.flatten(), 0)), 3),
                     "cfg_zero_star_scale": round(float((v_c * v_u).sum() / (v_u * v_u).sum()), 3),
                     "update_rms": round(float(d.pow(2).mean().sqrt()), 4)})
        return v_c, v_u

    sampling.predictions = spy  # the sampler looks it up at each guided step
    for prompt in args.prompts:
        pipe(prompt, guidance_method="cfg", generator=torch.Generator().manual_seed(args.seed))
    sampling.predictions = plain
    print("| prompt | t | cos(update, x0_c) | CFG-Zero* s* | update RMS |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['prompt'][:40]} | {r['t']:.3f} | {r['cos_update_x0c']:.3f} | {r['cfg_zero_star_scale']:.3f} | {r['update_rms']:.3f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
