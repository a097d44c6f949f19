"""Why clips fail, side by side for several `spacetime eval` runs on the same prompts.

    python bench/eval_reasons.py eval/stage4 eval/stage7 [--metric motion permanence] [--top 12] [--cuts] [--frames] [--strip PNG]

Each run's metrics.json lists, per clip and metric, the reasons a check failed. Reasons are
reduced to their kind — colours, shapes, sizes, walls and numbers replaced by placeholders — and
counted per run: how many clips show each kind. Where two models share the eval's prompts and
seeds, the table says which failures grew and which shrank between them.

`--paired` prints each metric's mean per-clip change against the first run, with its standard
error over the clips both runs scored: on the same prompts and seeds a change is judged against
how much clips differ from each other, not against the spread of the scores themselves.
`--paired-without RUN` leaves out the clips RUN scored: where a setting was picked on a short
run, the rest of the clips judge it without that choice's luck.

`--frames` places permanence's vanishings and appearances in time: how many fall between two
latent frames (the VAE's causal temporal factor f: latent frame 0 is frame 0, latent frame j
frames f(j-1)+1..fj) against the share of frame-to-frame steps that do. A DiT that drops an object
from a whole latent frame makes it vanish at those steps; a VAE's round trip does not.

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

from spacetime.eval.evaluate import KEPT_CLIPS
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


def leave_out(runs: list[list[dict]], names: set[str]) -> list[list[dict]]:
    """Each run's clips without those named: a setting picked on some clips is judged on the rest."""
    return [[c for c in clips if c["name"] not in names] for clips in runs]


_EVENT = re.compile(r"(vanishes after|appears at) frame (\d+)")


def presence_steps(clips: list[dict]) -> dict[str, Counter]:
    """Permanence's unexplained vanishings and appearances, counted by the frame-to-frame step they
    happen at: step k is frame k -> k + 1 ("vanishes after frame k", "appears at frame k + 1")."""
    out = {"vanishes": Counter(), "appears": Counter()}
    for clip in clips:
        for reason in (clip["metrics"].get("permanence") or {}).get("reasons", []):
            for event, frame in _EVENT.findall(reason):
                if event == "vanishes after":
                    out["vanishes"][int(frame)] += 1
                else:
                    out["appears"][int(frame) - 1] += 1
    return out


def latent_boundary_share(steps: Counter, num_frames: int, factor: int) -> tuple[int, int, float]:
    """(events at steps between two latent frames, events, the share of steps that are such) for a
    causal VAE of temporal factor `factor`: step k crosses a latent frame boundary when k % factor == 0."""
    at = sum(n for k, n in steps.items() if k % factor == 0)
    boundaries = sum(1 for k in range(num_frames - 1) if k % factor == 0)
    return at, sum(steps.values()), boundaries / max(num_frames - 1, 1)


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


def frames_strip(runs: list[Path], num_clips: list[int], shown: int, out: Path, keep: int = KEPT_CLIPS) -> None:
    """The first `shown` clips of each run's frames.png (one row per clip kept for the report: the
    first `keep`), labelled with the run, one run under another."""
    from PIL import Image, ImageDraw

    label = 22
    parts = []
    for run, n in zip(runs, num_clips):
        img = Image.open(run / "frames.png").convert("RGB")
        rows = min(keep, n)
        kept = min(shown, rows)
        parts.append((run, kept, img.crop((0, 0, img.width, round(img.height * kept / rows)))))
    width = max(img.width for _, _, img in parts)
    strip = Image.new("RGB", (width, sum(img.height + label for _, _, img in parts)), "white")
    draw, y = ImageDraw.Draw(strip), 0
    for run, n, img in parts:
        draw.text((8, y + 6), f"{run} (clips 0-{n - 1})", fill="black")
        strip.paste(img, (0, y + label))
        y += img.height + label
    out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(out, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="eval output folders (each with metrics.json)")
    ap.add_argument("--metric", nargs="+", default=["motion", "permanence"])
    ap.add_argument("--top", type=int, default=12, help="kinds shown per metric (the most frequent over all runs)")
    ap.add_argument("--cuts", action="store_true", help="count single-shot clips in which the cut detector sees a cut")
    ap.add_argument("--paired", action="store_true", help="each metric's per-clip change against the first run")
    ap.add_argument("--paired-without", type=Path, default=None, metavar="RUN",
                    help="--paired over the clips this eval run did not score (e.g. the probe a setting was chosen on)")
    ap.add_argument("--frames", action="store_true",
                    help="permanence's vanishings and appearances: how many fall between two latent frames")
    ap.add_argument("--temporal-factor", type=int, default=4, help="the VAE's temporal factor (for --frames)")
    ap.add_argument("--num-frames", type=int, default=17, help="clip length where an eval's settings lack it (--frames)")
    ap.add_argument("--strip", type=Path, default=None, metavar="PNG",
                    help="a PNG of the runs' first clips (rows of each eval's frames.png, the runs one under another)")
    ap.add_argument("--strip-clips", type=int, default=3, help="clips per run in --strip")
    a = ap.parse_args()
    for path in a.runs:
        if not (path / "metrics.json").is_file():
            raise SystemExit(f"{path}: no metrics.json (run `spacetime eval ... --out {path}` first)")
    results = [json.loads((p / "metrics.json").read_text()) for p in a.runs]
    clips = [r["clips"] for r in results]
    for metric in a.metric:
        per_run = [kinds_per_run(c, metric) for c in clips]
        total = sum(per_run, Counter())
        print(f"\n{metric}: clips showing each kind of failure\n")
        print("| kind | " + " | ".join(p.name for p in a.runs) + " |")
        print("| --- |" + " --- |" * len(a.runs))
        for kind, _ in total.most_common(a.top):
            print(f"| {kind} | " + " | ".join(str(c[kind]) for c in per_run) + " |")
    if a.paired_without is not None and not a.paired:
        raise SystemExit("--paired-without goes with --paired")
    if a.paired:
        paired = clips
        if a.paired_without is not None:
            if not (a.paired_without / "metrics.json").is_file():
                raise SystemExit(f"{a.paired_without}: no metrics.json (--paired-without)")
            seen = {c["name"] for c in json.loads((a.paired_without / "metrics.json").read_text())["clips"]}
            paired = leave_out(clips, seen)
            print(f"\n(leaving out the {len(seen)} clips {a.paired_without} scored)")
        print(f"\nper-clip change against {a.runs[0].name}: mean ± standard error (clips)\n")
        print("| run | " + " | ".join(PAIRED) + " |")
        print("| --- |" + " --- |" * len(PAIRED))
        for p, c in zip(a.runs[1:], paired[1:]):
            cells = [paired_change(paired[0], c, m) for m in PAIRED]
            print(f"| {p.name} | " + " | ".join(f"{m:+.3f} ± {se:.3f} ({n})" for m, se, n in cells) + " |")
    if a.frames:
        f = a.temporal_factor
        print(f"\npermanence events between two latent frames (temporal factor {f}): at those steps / all, "
              "against the share of steps that cross one\n")
        print("| run | vanishes | appears | chance |\n| --- | --- | --- | --- |")
        for p, r in zip(a.runs, results):
            t = r["settings"].get("num_frames") or a.num_frames  # a videos folder's eval does not record it
            cells = [latent_boundary_share(c, t, f) for c in presence_steps(r["clips"]).values()]
            print(f"| {p.name} | " + " | ".join(f"{k} / {n} ({k / max(n, 1):.0%})" for k, n, _ in cells)
                  + f" | {cells[0][2]:.0%} |")
    if a.strip:
        frames_strip(a.runs, [len(c) for c in clips], a.strip_clips, a.strip)
        print(f"\nwrote {a.strip}")
    if a.cuts:
        print("\n| run | single-shot clips with a detected cut |\n| --- | --- |")
        for p, c in zip(a.runs, clips):
            n, total = clips_with_cuts(p, c)
            print(f"| {p.name} | {n} of {total} |")


if __name__ == "__main__":
    main()
