"""`spacetime eval`: the command's body, so that the CLI stays a thin parser (`cli._cmd_eval` calls
`run_eval`), and what it does with its --out folder.

An --out folder holds one run: `metrics.json`, the report (`index.html` and `report.FIGURES`) and,
for --model, the generated `videos/` (NNNNNN.mp4 and captions.jsonl). A new run removes the files
of those kinds that it did not write itself (an earlier run's report next to a --no-report run's
metrics.json, videos past this run's clip count), and nothing else: a file of another kind is a
user's. As `spacetime world` refuses a non-empty folder that is not a world folder, eval refuses a
non-empty --out that is not an eval folder (no eval metrics.json, and files eval does not write).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from spacetime.eval.multishot import MULTISHOT_METRICS
from spacetime.eval.report import FIGURES  # report imports matplotlib only when it draws

log = logging.getLogger(__name__)

REPORT_FILES = ("index.html", *FIGURES)
VIDEO_NAME = re.compile(r"\d{6}\.mp4")
# an interrupted atomic write of one of those (spacetime.atomic: .STEM.RANDOM.tmpSUFFIX)
TEMP_NAME = re.compile(
    r"\.(metrics|index|frames|trajectories|gravity|captions|\d{6})\.[\w-]+\.tmp\.(json|html|png|jsonl|mp4)"
)


def _eval_kind(path: Path, top: bool) -> bool:
    """Is this a file (or the videos folder) of a kind `spacetime eval` writes?"""
    name = path.name
    if TEMP_NAME.fullmatch(name):
        return path.is_file()
    if top:
        if name == "videos" and path.is_dir():
            return all(_eval_kind(p, top=False) for p in path.iterdir())
        return path.is_file() and name in ("metrics.json", *REPORT_FILES)
    return path.is_file() and (name == "captions.jsonl" or bool(VIDEO_NAME.fullmatch(name)))


def _is_eval_folder(out: Path) -> bool:
    try:
        return json.loads((out / "metrics.json").read_text()).get("format") == "spacetime-eval"
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: Path) -> None:
    """Refuse an --out that is a file or lies under one, or a non-empty folder that is neither an
    earlier eval's output (its metrics.json) nor holds only files eval writes (an interrupted run)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    # a folder to be made under a file would fail only at the first write, after all the scoring
    parent = next((p for p in out.parents if p.exists()), None)
    if not out.exists() and parent is not None and not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, so the folder cannot be made; choose another --out")
    if not out.is_dir() or _is_eval_folder(out):
        return
    other = sorted(p.name for p in out.iterdir() if not _eval_kind(p, top=True))
    if other:
        shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
        raise ValueError(
            f"{out} is not empty and is not an eval output folder (it holds {shown}); choose another --out"
        )


def remove_stale(
    out: Path, *, report: bool, videos: Iterable[str] | None, keep: Path | None = None
) -> list[Path]:
    """Remove what an earlier run left in `out` that this run did not write: the report files when
    this run writes none (`report` False), and in `videos/` every NNNNNN.mp4 not named in `videos`
    (this run's clip names; None: this run wrote no videos, so captions.jsonl goes too). `keep`: a
    folder this run read its videos from, never touched. Files of other kinds stay. Returns what
    was removed."""
    removed: list[Path] = []

    def rm(p: Path) -> None:
        if p.is_file() and not (keep is not None and p.resolve().is_relative_to(keep.resolve())):
            p.unlink()
            removed.append(p)

    if not report:
        for name in REPORT_FILES:
            rm(out / name)
    folder = out / "videos"
    if folder.is_dir():
        wrote = None if videos is None else {f"{n}.mp4" for n in videos}
        for p in folder.iterdir():
            if VIDEO_NAME.fullmatch(p.name) and (wrote is None or p.name not in wrote):
                rm(p)
            elif p.name == "captions.jsonl" and wrote is None:
                rm(p)
        if not any(folder.iterdir()):
            folder.rmdir()
    if removed:
        log.info("removed %d file(s) of an earlier eval run from %s", len(removed), out)
    return removed


SAVE_CRF = 0  # H.264 4:4:4 at crf 0: lossless in YUV, the RGB conversion rounds by <= 2 levels


def save_samples(samples, folder: Path, caption: str) -> Iterator:
    """Write each sample as an MP4 (H.264 4:4:4, crf 0) with a captions.jsonl line — the folder
    format, so a model run can be re-scored later with --videos — and pass on the frames as saved
    (decoded back): what is scored is what is kept, so re-scoring the folder gives the same numbers
    (at the default crf 18 a saved clip scored otherwise: permanence 0.75 against 0.50)."""
    import dataclasses

    from spacetime.atomic import atomic_write_text
    from spacetime.data.video import read_video, write_video

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for sample in samples:
        path = write_video(sample.frames, folder / f"{sample.name}.mp4", fps=sample.fps, pix_fmt="yuv444p", crf=SAVE_CRF)
        rows.append(json.dumps({"path": f"{sample.name}.mp4", "captions": {caption: sample.prompt}}) + "\n")
        atomic_write_text(folder / "captions.jsonl", "".join(rows))
        yield dataclasses.replace(sample, frames=read_video(path)[0])


def check_geometry(args: argparse.Namespace) -> None:
    """Frames and size the model makes exactly, or an error naming the flag, before any loading
    (generate rounds a request; eval must not, its reference clips are rendered at the size asked)."""
    import json

    from spacetime.pipeline import size_multiples
    from spacetime.vae import VAEConfig

    try:
        dit = json.loads((args.model / "config.json").read_text())["dit"]
        vae = VAEConfig(**json.loads((args.model / "vae" / "config.json").read_text())["model"])
        ft, mh, mw = size_multiples(vae, dit.get("patch", (1, 2, 2)))
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a readable pipeline folder: loading it says why
    width, height = args.size
    if (args.num_frames - 1) % ft:
        raise ValueError(f"--num-frames {args.num_frames}: this model makes 1 + {ft}k frames "
                         f"(e.g. {1 + ft * max(1, round((args.num_frames - 1) / ft))})")
    if height % mh or width % mw:
        raise ValueError(f"--size {width}x{height}: this model makes widths in multiples of {mw} and heights of {mh}")


def run_eval(args: argparse.Namespace) -> int:
    """`spacetime eval` (arguments as `cli.build_parser` makes them)."""
    from spacetime.cli import EVAL_MODEL_ONLY, guidance_options
    from spacetime.eval import (
        evaluate,
        generate_samples,
        load_folder,
        pipeline_generator,
        read_prompts,
        split_prompts,
        write_json,
    )
    from spacetime.eval.generators import ModelUnavailableError

    check_out(args.out)
    if not args.no_report:  # fail before the work, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError(
                "the report needs matplotlib: pip install -e '.[eval]' in the spacetime checkout (or pip install matplotlib), or pass --no-report"
            ) from None
    if args.videos is not None:
        if not args.videos.is_dir():
            raise ValueError(f"--videos {args.videos} is not a directory")
        for flag, default in EVAL_MODEL_ONLY.items():
            if getattr(args, flag) != default:
                print(
                    f"spacetime eval: note: --{flag.replace('_', '-')} applies to --model only; the files decide",
                    file=sys.stderr,
                )
        samples = load_folder(args.videos, caption=args.caption, num_clips=args.num_clips)
        settings = {
            "source": "videos",
            "videos": str(args.videos),
            "num_clips": args.num_clips,
            "caption": args.caption,
            "seed": args.seed,
        }
    else:
        if not args.model.is_dir():
            raise ValueError(f"--model {args.model} is not a directory")
        # a user's prompts are read before the model loads, so a bad file fails at once
        own = None if args.prompts is None else read_prompts(args.prompts)
        if own is not None and args.split != EVAL_MODEL_ONLY["split"]:
            print("spacetime eval: note: --split is not used with --prompts; the file's prompts are scored", file=sys.stderr)
        check_geometry(args)  # frames and size the model makes, before loading it
        sampling = {"num_inference_steps": args.num_inference_steps, "guidance_scale": args.guidance_scale,
                    "guidance_interval": args.guidance_interval, "shift": args.shift,  # None: the pipeline's (and model's) defaults
                    "dtype": args.dtype, "guidance_method": args.guidance_method,
                    "guidance_options": guidance_options(args.guidance_option), "prompt_as_typed": args.prompt_as_typed}
        try:
            generate = pipeline_generator(args.model, **sampling)
        except ModelUnavailableError as e:
            print(f"spacetime eval: error: {e}", file=sys.stderr)
            return 1
        width, height = args.size
        geometry = {"num_frames": args.num_frames, "height": height, "width": width, "fps": args.fps}
        if own is None:
            num_clips = args.num_clips or 64
            prompts = split_prompts(args.split, num_clips, seed=args.seed, caption=args.caption, **geometry)
        else:
            if args.num_clips is not None and args.num_clips > len(own):
                print(f"spacetime eval: note: {args.num_clips} clips asked for, --prompts {args.prompts} has "
                      f"{len(own)}: scoring all {len(own)}", file=sys.stderr)
            prompts = own[: args.num_clips]
            num_clips = len(prompts)
        samples = save_samples(
            generate_samples(generate, prompts, seed=args.seed, **geometry), args.out / "videos", args.caption
        )
        settings = {
            "source": "model",
            "model": str(args.model),
            **({"split": args.split} if own is None else {"prompts": str(args.prompts)}),
            "num_clips": num_clips,
            "seed": args.seed,
            "caption": args.caption,
            **geometry,
            # the values used (a model's generator resolves the defaults), else those asked
            **getattr(generate, "sampling", {k: v for k, v in sampling.items() if v is not None}),
        }
    result = evaluate(samples, seed=args.seed, settings=settings)
    if not result.scores:  # an empty metrics.json and exit 0 would read as a run that passed
        raise ValueError(
            f"--videos {args.videos}: no clip to score (every entry of its captions file was skipped: "
            "see the warnings above); nothing written"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    data = write_json(result, args.out / "metrics.json")
    remove_stale(
        args.out,
        report=not args.no_report,
        videos=result.names if args.videos is None else None,
        keep=args.videos,
    )
    if not args.no_report:
        from spacetime.eval.report import write_report

        write_report(result, args.out)
    agg = data["aggregate"]
    asked = settings["num_clips"]
    print(
        f"scored {len(result.scores)} clips"
        + ("" if asked in (None, len(result.scores)) else f" ({asked} asked for)")
    )
    # the multi-shot metrics where some prompt has cuts (aggregate() leaves them out otherwise)
    for name in ("adherence", "motion", "permanence", "physics", "smoothness", *(m for m in MULTISHOT_METRICS if m in agg)):
        a = agg[name]
        mean = "n/a" if a["mean"] is None else f"{a['mean']:.3f}"
        print(f"{name:11s} {mean}  ({a['clips']} clips judged, pass rate {a['pass_rate']})")
    print(f"trajectory Fréchet distance {agg['distribution']['frechet_distance']}")
    if agg["prompts"]["with_unknown_words"]:
        words = ", ".join(agg["prompts"]["unknown_words"])
        print(f"prompts with words the world does not know: {agg['prompts']['with_unknown_words']} ({words})")
    print(
        f"wrote {args.out / 'metrics.json'}" + ("" if args.no_report else f" and {args.out / 'index.html'}")
    )
    return 0
