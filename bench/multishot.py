"""Calibrate the multi-shot metrics: the simulator filming the prompt's shots, and generators that
break one thing at the first cut, scored by `spacetime eval` on multi-shot prompts from both
splits. The tables and strips in docs/multishot.md are this script's output.

    python bench/multishot.py [--num-clips 100] [--json multishot.json] [--figures docs/img] [--model DIR]

Prompts: the detailed captions of clips 0..N-1 of the multi-shot world stream of each split (17
frames, 64x64, 8 fps). Rows: every generator in `spacetime.eval.generators.MULTISHOT_BASELINES`
(simulator, concatenated, restarted, recoloured), and with --model a trained model. Columns: the
multi-shot metrics' means and pass rates over the clips they judge, cut-count accuracy, the share
of clips keeping identity at every cut, the continuity error (median and 90th percentile, in
frames of the object's motion) over every object judged at a cut, and the share of clips where
continuity fails, also by the kind of shot the first cut goes to.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from machine import cpu_name  # bench/machine.py

from spacetime.eval import EvalResult, generate_samples, score_clip, split_prompts
from spacetime.eval.generators import MULTISHOT_BASELINES, pipeline_generator
from spacetime.eval.multishot import MULTISHOT_METRICS
from spacetime.world.prompts import parse_prompt

GEOMETRY = dict(num_frames=17, height=64, width=64, fps=8.0)


def _row(name: str, result) -> dict:
    agg = result.aggregate()
    ms = agg["multishot"]
    fails: dict[str, list[bool]] = {}
    for s in result.scores:
        score = s.metrics["continuity"].score
        if score is not None:
            fails.setdefault(parse_prompt(s.prompt).shots[1].kind, []).append(score < 1)
    return {
        "generator": name,
        **{m: agg[m]["mean"] for m in MULTISHOT_METRICS},
        **{f"{m}_pass_rate": agg[m]["pass_rate"] for m in MULTISHOT_METRICS},
        **{f"{m}_clips": agg[m]["clips"] for m in MULTISHOT_METRICS},
        "cut_count_accuracy": ms["cut_count_accuracy"],
        "identity_kept": ms["identity_kept"],
        "continuity_error_median": ms["continuity_error_median"],
        "continuity_error_p90": ms["continuity_error_p90"],
        "continuity_fails_by_first_cut": {k: [round(float(np.mean(v)), 3), len(v)] for k, v in sorted(fails.items())},
        "opening_shot": {m: agg[m]["mean"] for m in ("adherence", "motion", "permanence", "physics", "smoothness")},
        "failed": [[name, m, s.metrics[m].reasons] for name, s in zip(result.names, result.scores)
                   for m in MULTISHOT_METRICS if (s.metrics[m].score or 1.0) < 1][:40],
    }


def _table(rows: list[dict]) -> str:
    head = ("| generator | cuts | identity | continuity | cut count right | identity kept | continuity error, "
            "median / p90 (frames) | continuity fails: after a cut to close-up / reverse / wide |")
    lines = [head, "| --- " * 8 + "|"]
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        by = r["continuity_fails_by_first_cut"]
        fails = " / ".join(f"{by[k][0]:.0%} of {by[k][1]}" if k in by else "-" for k in ("close-up", "reverse", "wide"))
        lines.append(
            f"| {r['generator']} | {f(r['cuts'])} | {f(r['identity'])} | {f(r['continuity'])} | "
            f"{f(r['cut_count_accuracy'])} | {f(r['identity_kept'])} | "
            f"{f(r['continuity_error_median'])} / {f(r['continuity_error_p90'])} | {fails} |"
        )
    return "\n".join(lines)


def strip(frames: np.ndarray, cuts: list[int], scale: int = 2) -> np.ndarray:
    """Frames c-2..c+1 around each cut side by side, scaled up and framed in grey, a red bar at
    each cut and a wider gap between cuts: (H*scale + 4, ..., 3) uint8."""
    grey = np.array([160, 160, 160], np.uint8)
    parts: list[np.ndarray] = []
    for n, c in enumerate(cuts):
        if n:
            parts.append(np.full((frames.shape[1] * scale + 4, 16, 3), 255, np.uint8))
        for k in range(max(c - 2, 0), min(c + 2, len(frames))):
            if k == c:
                parts.append(np.tile(np.array([255, 0, 0], np.uint8), (frames.shape[1] * scale + 4, 4, 1)))
            img = frames[k].repeat(scale, 0).repeat(scale, 1)
            parts.append(np.pad(img, ((2, 2), (2, 2), (0, 0)), constant_values=0) + np.pad(
                np.zeros_like(img), ((2, 2), (2, 2), (0, 0)), constant_values=1) * grey)
            parts.append(np.full((frames.shape[1] * scale + 4, 3, 3), 255, np.uint8))
    return np.concatenate(parts, 1)


def figures(out: Path, model: str | None = None) -> list[str]:
    """docs/img/multishot-*.png: one prompt per shot sequence; a row per generator (and the model,
    given one) with its frames around each cut (the prompt's cuts, as the simulator places them
    for this seed)."""
    from PIL import Image, ImageDraw

    prompts = {
        "close-up": "A large blue square floats to the left and a small yellow ball floats up. The background is white; "
                    "the camera is static. Then cut to a close-up of the blue square, then cut back to the wide shot.",
        "reverse": "A big red ball moves to the right and a small green triangle falls. Under gravity on a black "
                   "background; the camera is static. Then cut to the reverse angle.",
    }
    written = []
    out.mkdir(parents=True, exist_ok=True)
    rows_of = {**({"model": pipeline_generator(model)} if model else {}), **MULTISHOT_BASELINES}
    for kind, prompt in prompts.items():
        cuts = [s.start for s in _sim_shots(prompt)[1:]]
        rows = []
        for name, gen in rows_of.items():
            body = strip(gen(prompt, seed=3, **GEOMETRY), cuts)
            label = np.full((body.shape[0], 110, 3), 255, np.uint8)
            rows.append(np.concatenate([label, body], 1))
            rows.append(np.full((8, rows[-1].shape[1], 3), 255, np.uint8))
        img = Image.fromarray(np.concatenate(rows[:-1], 0))
        draw = ImageDraw.Draw(img)
        for r, name in enumerate(rows_of):
            draw.text((4, r * (rows[0].shape[0] + 8) + rows[0].shape[0] // 2 - 6), name, fill=(0, 0, 0))
        path = out / f"multishot-{kind}.png"
        img.save(path)
        written.append(str(path))
    return written


def _sim_shots(prompt: str):
    from spacetime.eval.generators import simulate_prompt

    return simulate_prompt(prompt, seed=3, **GEOMETRY).shots


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-clips", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--figures", type=Path, help="write the PNG strips here (docs/img)")
    p.add_argument("--model", help="also score a trained text-to-video model (a model directory)")
    p.add_argument("--figures-only", action="store_true", help="only write the PNG strips")
    p.add_argument("--generators", default=",".join(MULTISHOT_BASELINES), help="comma-separated rows to run")
    args = p.parse_args(argv)
    if args.figures_only:
        return {"figures": figures(args.figures or Path("docs/img"), args.model)}
    generators = {k: MULTISHOT_BASELINES[k] for k in args.generators.split(",")}
    if args.model:
        generators = {"model": pipeline_generator(args.model), **generators}
    started = time.perf_counter()
    out: dict = {"settings": {**GEOMETRY, "num_clips": args.num_clips, "seed": args.seed, "caption": "detailed"},
                 "machine": {"cpu": cpu_name(), "python": platform.python_version()}, "splits": {}}
    for split in ("train", "heldout"):
        prompts = split_prompts(split, args.num_clips, seed=args.seed, multishot=True, **GEOMETRY)
        kinds = [tuple(s.kind for s in parse_prompt(q).shots) for q in prompts]
        rows = []
        for name, gen in generators.items():
            t0 = time.perf_counter()
            # scores only: the single-shot distribution distance (simulator references) is not reported here
            samples = list(generate_samples(gen, prompts, seed=args.seed, **GEOMETRY))
            result = EvalResult([s.name for s in samples], [score_clip(s.frames, s.fps, s.prompt) for s in samples], [], {})
            rows.append({**_row(name, result), "seconds": round(time.perf_counter() - t0, 1)})
        out["splits"][split] = {"rows": rows, "shot_sequences": {" > ".join(k): kinds.count(k) for k in sorted(set(kinds))}}
        print(f"\n{split} split, {args.num_clips} multi-shot prompts:\n")
        print(_table(rows))
        print("\nshot sequences:", out["splits"][split]["shot_sequences"])
    if args.figures:
        out["figures"] = figures(args.figures, args.model)
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\n{out['seconds']} s on {out['machine']['cpu']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
