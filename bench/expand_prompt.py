"""Does `--expand-prompt` (re-captioning a user's short prompt in the detailed style the model was
trained on) make the model follow the prompt better?

    python bench/expand_prompt.py [--model DIR] [--num-clips 60] [--captions short,medium] [--json out.json]

Prompts: the short and medium captions of held-out world clips (what a user types). Each prompt is
generated twice with the same seed: conditioned on the prompt as typed, and on its expansion
(`spacetime.world.prompts.expand_prompt`, seeded as `spacetime generate --expand-prompt` does);
both videos are scored by the eval against the prompt as typed — what the user asked for, not what
the expansion added. 17 frames, 64x64, 8 fps, 25 steps, guidance 5.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from spacetime.eval import evaluate
from spacetime.eval.evaluate import Sample, split_prompts
from spacetime.eval.generators import derived_seed
from spacetime.pipeline import SpacetimePipeline
from spacetime.world.prompts import expand_prompt

METRICS = ("adherence", "motion", "permanence", "physics", "smoothness")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="a pipeline directory (default: the shipped model)")
    ap.add_argument("--num-clips", type=int, default=60)
    ap.add_argument("--captions", default="short,medium")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = SpacetimePipeline.from_pretrained(args.model)
    rows = []
    for caption in args.captions.split(","):
        prompts = split_prompts("heldout", args.num_clips, seed=args.seed, caption=caption)
        for variant in ("as typed", "expanded"):
            samples, t0 = [], time.perf_counter()
            for i, prompt in enumerate(prompts):
                seed = derived_seed(args.seed, i, 1)
                conditioning = expand_prompt(prompt, seed=seed) if variant == "expanded" else prompt
                frames = pipe(conditioning, num_frames=17, height=64, width=64, num_inference_steps=25,
                              guidance_scale=5.0, generator=torch.Generator().manual_seed(seed)).frames[0]
                samples.append(Sample(f"{i:06d}", prompt, frames, 8.0))  # judged against the prompt as typed
            agg = evaluate(samples, seed=args.seed, progress=False).aggregate()
            row = {"caption": caption, "variant": variant, "clips": len(prompts),
                   **{m: agg[m]["mean"] for m in METRICS},
                   "gravity_sign": agg["gravity"]["gravity"]["sign_correct"],
                   "gravity_clips": agg["gravity"]["gravity"]["clips"],
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| prompts | conditioned on | " + " | ".join(METRICS) + " | gravity sign (clips) |")
    print("|" + " --- |" * (len(METRICS) + 3))
    for r in rows:
        vals = " | ".join("-" if r[m] is None else f"{r[m]:.3f}" for m in METRICS)
        g = "-" if r["gravity_sign"] is None else f"{r['gravity_sign']:.2f} ({r['gravity_clips']})"
        print(f"| {r['caption']} | {r['variant']} | {vals} | {g} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": str(args.model or "shipped default"), "rows": rows,
                                         "date": time.strftime("%Y-%m-%d")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
