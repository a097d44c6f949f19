"""Does `--expand-prompt` (re-captioning a user's short prompt in the detailed style the model was
trained on) make the model follow the prompt better? And does completing a prompt that names an
object without its colour (`complete_prompt`, what `spacetime generate` does by default)?

    python bench/expand_prompt.py [--model DIR] [--num-clips 60] [--captions short,medium] [--json out.json]
    python bench/expand_prompt.py --colourless --variants "as typed,completed,expanded" --json out/complete_prompt.json
    python bench/expand_prompt.py --synonyms --captions short --variants "as typed,completed"
    python bench/expand_prompt.py --colourless --input image --captions medium --variants "as typed,completed"
    python bench/expand_prompt.py --colourless --input extend --captions medium --variants "as typed,completed"

Prompts: the short and medium captions of held-out world clips (what a user types); with
`--colourless`, with their colour words taken out ("a ball falls and bounces on the floor"). Each
prompt is generated once per variant with the same seed: conditioned on the prompt as typed, on its
expansion (`spacetime.world.prompts.expand_prompt`, seeded as `spacetime generate --expand-prompt`
does), or on its completion (`complete_prompt`: the medium-style expansion when an object has no
colour, the detailed one where the medium leaves out something the prompt says, else the prompt as
typed); every video is scored by the eval against the prompt as typed —
what the user asked for, not what the expansion added. 17 frames, 64x64, 8 fps, 25 steps, guidance
5. "empty" is the share of clips that are a plain background: most frames with a pixel standard
deviation under 4 levels (a world frame with one object in view has ~15 or more). With `--input
image` each clip is generated from the held-out clip's first frame (image -> video), with `--input
extend` as the extension of its 17 frames by 16 more; "completed" then writes in the colours the
input shows where the new frames join it (`spacetime.cli.objects_where_inputs_join`, as `generate`
does), "empty" and "blank frames" judge the new frames alone, and the eval scores the clip made
from the image, or the extension from the last given frame on (17 frames).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from spacetime.cli import objects_where_inputs_join
from spacetime.eval import evaluate
from spacetime.eval.evaluate import Sample, split_prompts
from spacetime.eval.generators import derived_seed
from spacetime.pipeline import SpacetimePipeline
from spacetime.world.clip import make_clip, stream_seed
from spacetime.world.prompts import complete_prompt, expand_prompt
from spacetime.world.vocab import COLOURS

METRICS = ("adherence", "motion", "permanence", "physics", "smoothness")
COLOUR_WORDS = r"\b(" + "|".join(COLOURS) + r")\b"
SAID_AS = {"red": "crimson", "magenta": "pink", "yellow": "gold", "cyan": "teal", "green": "lime", "orange": "amber"}


def blank_share(frames) -> float:
    """The share of frames that are a flat background (the model drew no object in them)."""
    f = np.asarray(frames, dtype=np.float32)
    f = f * 255 if f.max() <= 1.0 else f
    return float(np.mean([x.std() < 4 for x in f]))


def blank(frames) -> bool:
    """Most frames a flat background."""
    return blank_share(frames) > 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="a pipeline directory (default: the shipped model)")
    ap.add_argument("--num-clips", type=int, default=60)
    ap.add_argument("--captions", default="short,medium")
    ap.add_argument("--variants", default="as typed,expanded", help="of: as typed, expanded, completed")
    ap.add_argument("--colourless", action="store_true", help="take the colour words out of the prompts")
    ap.add_argument("--synonyms", action="store_true",
                    help="say the colours as users might: crimson, pink, gold, teal, lime, amber (blue stays blue)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--input", choices=("none", "image", "extend"), default="none",
                    help="generate from each held-out clip's first frame, or extend the clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = SpacetimePipeline.from_pretrained(args.model)
    rows = []
    for caption in args.captions.split(","):
        prompts = split_prompts("heldout", args.num_clips, seed=args.seed, caption=caption)
        clips = [make_clip(stream_seed(args.seed, i, "heldout"), num_frames=17, height=64, width=64, fps=8.0,
                           split="heldout") for i in range(args.num_clips)] if args.input != "none" else []
        if args.colourless:
            prompts = [" ".join(re.sub(COLOUR_WORDS, "", p).split()) for p in prompts]
        if args.synonyms:
            prompts = [re.sub(COLOUR_WORDS, lambda m: SAID_AS.get(m.group(), m.group()), p) for p in prompts]
        for variant in args.variants.split(","):
            samples, t0, empty, blank_frames = [], time.perf_counter(), 0, []
            for i, prompt in enumerate(prompts):
                seed = derived_seed(args.seed, i, 1)
                given = {}
                if args.input == "image":
                    given = {"image": clips[i].frames[0]}
                elif args.input == "extend":
                    given = {"video": clips[i].frames}
                if variant == "expanded":
                    conditioning = expand_prompt(prompt, seed=seed)
                elif variant == "completed":
                    seen = None
                    if given:
                        seen = objects_where_inputs_join("image-to-video" if "image" in given else "extend-forward",
                                                         given.get("image"), given.get("video"))
                    conditioning = complete_prompt(prompt, seed=seed, seen=seen)
                else:
                    conditioning = prompt
                frames = pipe(conditioning, num_frames=17, height=64, width=64, num_inference_steps=args.steps,
                              guidance_scale=5.0, generator=torch.Generator().manual_seed(seed), **given).frames[0]
                new = frames[1:] if args.input == "image" else frames[17:] if args.input == "extend" else frames
                empty += blank(new)
                blank_frames.append(blank_share(new))
                judged = frames[16:] if args.input == "extend" else frames  # the extension: from the last given frame on
                samples.append(Sample(f"{i:06d}", prompt, judged, 8.0))  # judged against the prompt as typed
            agg = evaluate(samples, seed=args.seed, progress=False).aggregate()
            row = {"caption": caption, "variant": variant, "colourless": args.colourless, "synonyms": args.synonyms,
                   "input": args.input,
                   "clips": len(prompts), "empty": empty / len(prompts),
                   "blank_frames": float(np.mean(blank_frames)), **{m: agg[m]["mean"] for m in METRICS},
                   "gravity_sign": agg["gravity"]["gravity"]["sign_correct"],
                   "gravity_clips": agg["gravity"]["gravity"]["clips"],
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| prompts | input | conditioned on | empty | blank frames | " + " | ".join(METRICS) + " | gravity sign (clips) |")
    print("|" + " --- |" * (len(METRICS) + 6))
    for r in rows:
        vals = " | ".join("-" if r[m] is None else f"{r[m]:.3f}" for m in METRICS)
        g = "-" if r["gravity_sign"] is None else f"{r['gravity_sign']:.2f} ({r['gravity_clips']})"
        said = " colourless" if r["colourless"] else " synonyms" if r.get("synonyms") else ""
        print(f"| {r['caption']}{said} | {r['input']} | {r['variant']} | "
              f"{r['empty']:.2f} | {r['blank_frames']:.2f} | {vals} | {g} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": str(args.model or "shipped default"), "rows": rows,
                                         "date": time.strftime("%Y-%m-%d")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
