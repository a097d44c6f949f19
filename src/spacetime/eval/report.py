"""The evaluation report: PNG figures (matplotlib) and an index.html that shows them with the metric
table and every clip's reasons.

    metrics.png       mean score and pass rate per metric
    frames.png        sample frames of the first clips, each tracked object's centroid drawn
    trajectories.png  height over time of each tracked object, beside the simulator's rendition
    gravity.png       measured vertical accelerations against the world's g and 0

matplotlib is an optional dependency (`pip install spacetime[eval]`); it is imported here only.
"""

from __future__ import annotations

import html
import logging
import os
import traceback
from pathlib import Path

import numpy as np

from spacetime.atomic import atomic_path, atomic_write_text
from spacetime.eval.evaluate import EvalResult
from spacetime.eval.metrics import GRAVITY_TOL, METRICS, expected_gravity
from spacetime.eval.multishot import MULTISHOT_METRICS
from spacetime.world import vocab
from spacetime.world.prompts import parse_prompt

log = logging.getLogger(__name__)


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "the evaluation report needs matplotlib: pip install -e '.[eval]' in the spacetime checkout (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(c / 255 for c in vocab.COLOURS[colour])


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def _accel(summary: dict) -> str:
    """A median acceleration for the page: "n/a" where no object was seen in free flight."""
    m = summary["median_accel_y"]
    return f"{m} units/s² ({summary['objects']} objects)" if m is not None else "n/a (no object seen in free flight)"


def shown_metrics(agg: dict) -> tuple[str, ...]:
    """The metrics the report shows: the five single-shot ones, and the multi-shot ones where some
    prompt has cuts (`EvalResult.aggregate` has them then), as `spacetime eval` prints them."""
    return (*METRICS, *(m for m in MULTISHOT_METRICS if m in agg))


def plot_metrics(result: EvalResult, path: Path) -> None:
    plt = _plt()
    agg = result.aggregate()
    names = shown_metrics(agg)
    means = [agg[m]["mean"] or 0.0 for m in names]
    passes = [agg[m]["pass_rate"] or 0.0 for m in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7 + 0.9 * (len(names) - len(METRICS)), 3.2))
    ax.bar(x - 0.2, means, 0.4, label="mean score", color="#4477aa")
    ax.bar(x + 0.2, passes, 0.4, label="clips passing every check", color="#aaccee")
    for xi, m in zip(x, names):
        ax.text(
            xi - 0.2,
            (agg[m]["mean"] or 0) + 0.02,
            "n/a" if agg[m]["mean"] is None else f"{agg[m]['mean']:.2f}",
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(x, [f"{m}\n({agg[m]['clips']} clips)" for m in names], fontsize=8)
    ax.set_ylim(0, 1.15)
    fd = agg["distribution"]["frechet_distance"]
    ax.set_title(
        f"{len(result.scores)} clips; trajectory Fréchet distance {fd if fd is not None else 'n/a'}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)
    plt.close(fig)


def plot_frames(result: EvalResult, path: Path, columns: int = 6) -> None:
    plt = _plt()
    clips = sorted(result.kept_frames)
    rows = max(1, len(clips))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, i in enumerate(clips):
        frames, ct = result.kept_frames[i], result.scores[i].track
        picks = np.unique(np.linspace(0, len(frames) - 1, columns).round().astype(int))
        for c, k in enumerate(picks):
            ax = axes[r, c]
            ax.imshow(frames[k], interpolation="nearest")
            # a prompt with cuts is tracked (and scored on the single-shot metrics) over its opening
            # shot only: frames after it have no tracked centres to draw
            tracked = k < ct.num_frames
            for colour, tr in ct.tracks.items():
                # the tracked centre: a ring in the object's colour on a black one
                if tracked and tr.present[k]:
                    x, y = tr.centroid[k] - 0.5  # imshow puts pixel centres on integers
                    ax.plot(x, y, "o", ms=7, mfc="none", mec="black", mew=2.2)
                    ax.plot(x, y, "o", ms=7, mfc="none", mec=_rgb(colour), mew=1.2)
            title = f"clip {i}, frame {k}" + ("" if tracked else " (after cut)")
            ax.set_title(title, fontsize=6)  # prompts: in index.html
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_trajectories(result: EvalResult, path: Path, clips: int = 6) -> None:
    """Height (scene units, floor = 0) over time for each object: the video solid, the simulator's
    rendition of the same prompt dashed (another draw of what the prompt leaves open, so the
    curves differ in detail; the shapes — parabolas, bounces, straight drifts — should match)."""
    plt = _plt()
    idx = list(range(min(clips, len(result.scores))))
    cols = 3
    rows = max(1, -(-len(idx) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for n, i in enumerate(idx):
        ax = axes[n // cols, n % cols]
        ax.axis("on")
        for score, style in ((result.scores[i], "-"), (result.references[i], "--")):
            fps = score.track.fps
            for colour, m in score.motions.items():
                t, y = np.arange(len(m.xy)) / fps, m.xy[:, 1]
                ax.plot(t, y, style, color=_rgb(colour), lw=1.4 if style == "-" else 1.0)
                # a frame seen between two unseen ones (a one-frame clip, a flicker) is a line of
                # one point, which draws nothing: a dot, filled for the video, hollow for the simulator
                seen = np.isfinite(y)
                alone = seen & ~np.r_[False, seen[:-1]] & ~np.r_[seen[1:], False]
                if alone.any():
                    ax.plot(t[alone], y[alone], "o", ms=3, color=_rgb(colour), mfc=None if style == "-" else "none")
        ax.set_ylim(0, 1)
        ax.set_title(f"clip {i}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("s", fontsize=6)
        ax.set_ylabel("height (units)", fontsize=6)
    fig.suptitle("object height: video (solid) vs simulator (dashed)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_gravity(result: EvalResult, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    bins = np.linspace(-3 * vocab.GRAVITY, 3 * vocab.GRAVITY, 49)
    for want, label, colour in (
        (True, "prompt: gravity", "#cc6677"),
        (False, "prompt: zero gravity", "#117733"),
    ):
        acc = [
            m.accel_y
            for s in result.scores
            if expected_gravity(parse_prompt(s.prompt)) is want
            for m in s.motions.values()
            if m.accel_y is not None
        ]
        if acc:
            ax.hist(
                np.clip(acc, bins[0], bins[-1]),
                bins=bins,
                alpha=0.6,
                label=f"{label} ({len(acc)} objects)",
                color=colour,
            )
    for target in (-vocab.GRAVITY, 0.0):
        ax.axvspan(target - GRAVITY_TOL, target + GRAVITY_TOL, color="grey", alpha=0.15)
        ax.axvline(target, color="grey", lw=0.8)
    ax.set_xlabel("measured vertical acceleration (units/s², y up); world g = -4", fontsize=8)
    ax.set_ylabel("objects", fontsize=8)
    if ax.get_legend_handles_labels()[0]:  # no object measured in free flight: nothing to label
        ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


PLOTS = {
    "metrics.png": plot_metrics,
    "frames.png": plot_frames,
    "trajectories.png": plot_trajectories,
    "gravity.png": plot_gravity,
}
FIGURES = tuple(PLOTS)  # the report's image files


def write_report(result: EvalResult, out: str | os.PathLike, *, strict: bool = False) -> Path:
    """Write the figures and index.html into `out`; returns the index path.

    A figure that fails to draw does not cost the others or the page: the error is logged with its
    traceback, the page says which figure is missing and why, and no older file of that name is left
    to pass for it. `strict` raises the first such error instead (tests: a figure failing is a bug)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    for name, plot in PLOTS.items():
        try:
            plot(result, out / name)
        except Exception as err:
            if strict:
                raise
            log.error("the report's %s could not be drawn:\n%s", name, traceback.format_exc())
            failed[name] = f"{type(err).__name__}: {err}"
            (out / name).unlink(missing_ok=True)  # an earlier run's figure would pass for this one's

    def img(name: str) -> str:
        if name in failed:
            return f"<p class=err>{name} could not be drawn ({html.escape(failed[name])}); see the log.</p>"
        return f'<img src="{name}">'

    agg = result.aggregate()
    names = shown_metrics(agg)
    e = html.escape
    rows = "".join(
        f"<tr><td>{m}</td><td>{'n/a' if agg[m]['mean'] is None else format(agg[m]['mean'], '.3f')}</td>"
        f"<td>{'n/a' if agg[m]['pass_rate'] is None else format(agg[m]['pass_rate'], '.3f')}</td><td>{agg[m]['clips']}</td></tr>"
        for m in names
    )
    fd = agg["distribution"]["frechet_distance"]
    g = agg["gravity"]
    clips = []
    for i, (name, s) in enumerate(zip(result.names, result.scores)):
        # "–": not judged, or a metric this clip does not have (a single-shot prompt among cut ones)
        cells = "".join(
            f"<td>{'–' if m not in s.metrics or s.metrics[m].score is None else format(s.metrics[m].score, '.2f')}</td>"
            for m in names
        )
        # what the prompt asked that the world does not know first, so a low score is read right
        said = (
            [f"words of the prompt the world does not know: {', '.join(s.unknown_words)}"]
            if s.unknown_words
            else []
        )
        said += [f"prompt: {n}" for n in s.prompt_notes]
        why = "<br>".join(
            [f"<i>{e(x)}</i>" for x in said] + [e(f"{m}: {r}") for m in names if m in s.metrics for r in s.metrics[m].reasons]
        )
        clips.append(
            f"<tr><td>{i}</td><td>{e(name)}</td>{cells}<td class=p>{e(s.prompt)}</td><td class=p>{why}</td></tr>"
        )
    settings = e(", ".join(f"{k}={v}" for k, v in result.settings.items()))
    pr = agg["prompts"]
    prompts = e(
        f"Prompts with words the world does not know: {pr['with_unknown_words']} of {pr['clips']}"
        + (
            " (" + ", ".join(f"{w} ×{n}" for w, n in list(pr["unknown_words"].items())[:12]) + ")"
            if pr["unknown_words"]
            else ""
        )
        + "; nothing is checked for those words (each clip's words are listed below)."
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>spacetime eval</title>
<style>body{{font-family:sans-serif;margin:1.5em;}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}} td.p{{max-width:32em;font-size:11px}} img{{max-width:100%}} .err{{color:#b00}}</style>
</head><body>
<h1>World-model evaluation</h1>
<p>{settings}</p>
<table><tr><th>metric</th><th>mean</th><th>pass rate</th><th>clips judged</th></tr>{rows}</table>
<p>Trajectory Fréchet distance to the simulator: <b>{fd if fd is not None else "n/a"}</b>
({agg["distribution"]["objects"]} objects). Vertical acceleration, gravity prompts: median
{_accel(g["gravity"])} (world: {-vocab.GRAVITY}); zero-gravity prompts: median
{_accel(g["zero_gravity"])}.</p>
<p>{prompts}</p>
<p>Definitions and thresholds: docs/eval.md. The raw numbers: <a href="metrics.json">metrics.json</a>.</p>
{img("metrics.png")}<h2>Sample frames (tracked centres ringed)</h2>{img("frames.png")}
<h2>Trajectories</h2>{img("trajectories.png")}<h2>Gravity</h2>{img("gravity.png")}
<h2>Clips</h2>
<table><tr><th>#</th><th>video</th>{"".join(f"<th>{m}</th>" for m in names)}<th>prompt</th><th>why checks failed</th></tr>
{"".join(clips)}</table>
</body></html>
"""
    index = out / "index.html"
    atomic_write_text(index, page)
    return index
