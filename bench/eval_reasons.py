"""Why clips fail, side by side for several `spacetime eval` runs on the same prompts.

    python bench/eval_reasons.py eval/stage4 eval/stage7 [--metric motion permanence] [--top 12] [--cuts]

Each run's metrics.json lists, per clip and metric, the reasons a check failed. Reasons are
reduced to their kind — colours, shapes, sizes, walls and numbers replaced by placeholders — and
counted per run: how many clips show each kind. Where two models share the eval's prompts and
seeds, the table says which failures grew and which shrank between them.

`--paired` prints each metric's mean per-clip change against the first run, with its standard
error over the clips both runs scored: on the same prompts and seeds a change is judged against
how much clips differ from each other, not against the spread of the scores themselves.

`--cuts` also runs the eval's cut detector on each run's saved videos: on single-shot prompts
every cut it sees is one the model made up (a multi-shot habit bleeding into single shots).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from spacetime.world.vocab import COLOURS, SHAPES

_WORDS = [(r"\b(" + "|".join(sorted(COLOURS, key=len, reverse=True)) + r")\b", "<colour>"),
          (r"\b(" + "|".join(SHAPES) + r"|disc|circle|ball|box|block)s?\b", "<shape>"),
          (r"\b(small|large|little|big|tiny)\b", "<size>"),
          (r"\b(left|right|top|bottom) wall\b|\b(floor|ceiling)\b", "<wall>"),
          (r"\b(left|right|up|down)\b", "<dir>"),
          (r"-?\d+(\.\d+)?", "<n>")]


def reason_kind(reason: str) -> str:
    """'the blue ball never reaches the right wall' -> 'the <colour> <shape> never reaches the <wall>';
    a list of events after ': ' becomes its distinct events, sorted, so repeats count as one kind."""
    s = reason.lower()
    for pattern, token in _WORDS:
        s = re.sub(pattern, token, s)
    s = re.sub(r"(<colour> )+", "<colour> ", s)
    s = re.sub(r"\s*\([^)]*\)", "", s)  # measured values: "(vx +0.3, vy -0.1)"
    head, sep, tail = s.partition(": ")
    if sep:  # "vanishes ..., appears ..., vanishes ...": the distinct events, once each
        s = head + sep + ", ".join(sorted(set(tail.split(", "))))
    return re.sub(r"\s+", " ", s).strip()


def kinds_per_run(clips: list[dict], metric: str) -> Counter:
    """How many of a run's clips (metrics.json's) show each kind of failure of `metric` (a clip
    counts once per kind)."""
    counts: Counter = Counter()
    for clip in clips:
        got = clip["metrics"].get(metric) or {}
        counts.update({reason_kind(r) for r in got.get("reasons", [])})
    return counts


PAIRED = ("adherence", "motion", "permanence", "physics", "smoothness")


def paired_change(base: list[dict], other: list[dict], metric: str) -> tuple[float, float, int]:
    """(mean, standard error, clips) of `other`'s per-clip score of `metric` less `base`'s, over
    the clips (matched by name) that both scored."""
    def scores(clips: list[dict]) -> dict:
        return {c["name"]: c["metrics"][metric]["score"] for c in clips
                if (c["metrics"].get(metric) or {}).get("score") is not None}

    a, b = scores(base), scores(other)
    d = np.array([b[k] - a[k] for k in a if k in b], dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan"), len(d)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d)


def clips_with_cuts(path: Path, clips: list[dict]) -> tuple[int, int]:
    """(clips of the run whose saved video the cut detector cuts, clips) over its single-shot prompts."""
    from spacetime.data.video import read_video
    from spacetime.eval.multishot import detect_cuts
    from spacetime.eval.track import track

    single = [c for c in clips if " cut to " not in c["prompt"].lower()]
    cut = 0
    for c in single:
        frames, fps = read_video(path / "videos" / f"{c['name']}.mp4")
        cut += bool(detect_cuts(track(frames, fps)))
    return cut, len(single)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="eval output folders (each with metrics.json)")
    ap.add_argument("--metric", nargs="+", default=["motion", "permanence"])
    ap.add_argument("--top", type=int, default=12, help="kinds shown per metric (the most frequent over all runs)")
    ap.add_argument("--cuts", action="store_true", help="count single-shot clips in which the cut detector sees a cut")
    ap.add_argument("--paired", action="store_true", help="each metric's per-clip change against the first run")
    a = ap.parse_args()
    for path in a.runs:
        if not (path / "metrics.json").is_file():
            raise SystemExit(f"{path}: no metrics.json (run `spacetime eval ... --out {path}` first)")
    clips = [json.loads((p / "metrics.json").read_text())["clips"] for p in a.runs]
    for metric in a.metric:
        per_run = [kinds_per_run(c, metric) for c in clips]
        total = sum(per_run, Counter())
        print(f"\n{metric}: clips showing each kind of failure\n")
        print("| kind | " + " | ".join(p.name for p in a.runs) + " |")
        print("| --- |" + " --- |" * len(a.runs))
        for kind, _ in total.most_common(a.top):
            print(f"| {kind} | " + " | ".join(str(c[kind]) for c in per_run) + " |")
    if a.paired:
        print(f"\nper-clip change against {a.runs[0].name}: mean ± standard error (clips)\n")
        print("| run | " + " | ".join(PAIRED) + " |")
        print("| --- |" + " --- |" * len(PAIRED))
        for p, c in zip(a.runs[1:], clips[1:]):
            cells = [paired_change(clips[0], c, m) for m in PAIRED]
            print(f"| {p.name} | " + " | ".join(f"{m:+.3f} ± {se:.3f} ({n})" for m, se, n in cells) + " |")
    if a.cuts:
        print("\n| run | single-shot clips with a detected cut |\n| --- | --- |")
        for p, c in zip(a.runs, clips):
            n, total = clips_with_cuts(p, c)
            print(f"| {p.name} | {n} of {total} |")


if __name__ == "__main__":
    main()
