"""The cut detector against the world's ground truth: how often `detect_cuts` sees a cut in a
single-shot simulator clip (false cuts) and how often it misses, adds or misplaces one in a
multi-shot clip, at five sizes the model trains or is evaluated at. The figures in docs/multishot.md ("The cut detector on
the simulator's own clips") are this script's output.

    python bench/cut_detector.py [--seeds 0 200] [--json out/cut_detector.json]

Clips: `make_clip(seed, split=...)` for each seed, split (train, held-out) and size, once single
shot and once with `multishot=True` (1 to 3 shots). A clip counts as an error when the detected
cut frames differ from the world's shot starts; the first errors are listed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spacetime.eval.multishot import detect_cuts
from spacetime.eval.track import track
from spacetime.world import make_clip

SIZES = [(17, 64, 64), (17, 64, 96), (17, 96, 64), (33, 64, 64), (17, 64, 48)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=[0, 200], metavar=("FIRST", "END"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows, errors = [], []
    for multishot in (False, True):
        for split in ("train", "heldout"):
            for t, h, w in SIZES:
                wrong = 0
                for seed in range(*args.seeds):
                    clip = make_clip(seed, num_frames=t, height=h, width=w, split=split, multishot=multishot)
                    truth = [s.start for s in clip.shots[1:]]
                    seen = detect_cuts(track(clip.frames, clip.fps))
                    if seen != truth:
                        wrong += 1
                        errors.append(dict(multishot=multishot, split=split, size=[t, h, w], seed=seed, cuts=truth, seen=seen))
                rows.append(dict(multishot=multishot, split=split, size=[t, h, w], clips=args.seeds[1] - args.seeds[0], wrong=wrong))
    print("| clips | split | " + " | ".join(f"{t}x{h}x{w}" for t, h, w in SIZES) + " | all |")
    print("| --- " * (len(SIZES) + 3) + "|")
    for multishot in (False, True):
        for split in ("train", "heldout"):
            sel = [r for r in rows if r["multishot"] == multishot and r["split"] == split]
            cells = [f"{r['wrong']}" for r in sel]
            total = sum(r["wrong"] for r in sel), sum(r["clips"] for r in sel)
            kind = "multi-shot" if multishot else "single-shot"
            print(f"| {kind} | {split} | " + " | ".join(cells) + f" | {total[0]} of {total[1]} ({100 * total[0] / total[1]:.1f}%) |")
    for e in errors[:12]:
        print(e)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(seeds=args.seeds, rows=rows, errors=errors), indent=1))


if __name__ == "__main__":
    main()
