"""The `spacetime` command: one entry point, one subcommand per job.

    spacetime world --out DIR --num-clips N [--split train|heldout] [--num-frames 17] [--size 64x64] [--fps 8] [--seed S]
    spacetime data probe DIR [--out manifest.jsonl]

Bad arguments exit with status 2 and a message naming the argument and value; a failure while
working exits with status 1. Heavy imports happen inside the subcommands so `--help` is instant.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from pathlib import Path

from spacetime import __version__

MAX_SIDE = 4096
MAX_FRAMES = 100_000


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height), each 1..4096 pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT in pixels, like 64x64 or 96x64, got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be 1..{MAX_SIDE} pixels")
    return w, h


def _int_in(name: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be in {lo}..{hi}, got {v}")
        return v

    return parse


def parse_fps(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fps must be a number, got {text!r}") from None
    if not (math.isfinite(v) and 0 < v <= 240):
        raise argparse.ArgumentTypeError(f"fps must be in (0, 240], got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spacetime", description="Sora's recipe on one machine.")
    parser.add_argument("--version", action="version", version=f"spacetime {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("world", help="render clips of the procedural world to a folder (MP4 + captions + ground truth)")
    w.add_argument("--out", required=True, type=Path, help="output folder (resumed if it holds the same data set)")
    w.add_argument("--num-clips", required=True, type=_int_in("--num-clips", 1, 10_000_000))
    w.add_argument("--split", choices=["train", "heldout"], default="train")
    w.add_argument("--num-frames", type=_int_in("--num-frames", 1, MAX_FRAMES), default=17)
    w.add_argument("--size", type=parse_size, default=(64, 64), metavar="WxH", help="frame size, width x height (default 64x64)")
    w.add_argument("--fps", type=parse_fps, default=8.0)
    w.add_argument("--seed", type=_int_in("--seed", 0, 2**63 - 1), default=0)
    w.add_argument("--pix-fmt", choices=["yuv444p", "yuv420p"], default="yuv444p",
                   help="MP4 chroma: 4:4:4 keeps full colour (default), 4:2:0 plays in every browser")
    w.add_argument("--overwrite", action="store_true", help="replace a world data set made with other settings")
    w.set_defaults(func=_cmd_world)

    t = sub.add_parser("train-vae", help="train the video VAE (resumes from the newest checkpoint in run_dir)",
                       description="Train the VAE. Any config key can follow as --key value, nested keys with dots: "
                                   "--max_steps 100 --optim.lr 3e-4 --data.source folder --data.path DIR")
    t.add_argument("--config", type=Path, default=None, help="YAML config (default: the built-in defaults)")
    t.set_defaults(func=_cmd_train_vae, overrides=True)

    d = sub.add_parser("data", help="work with folders of videos")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    p = dsub.add_parser("probe", help="decode every video in a folder and write a manifest; broken files are reported")
    p.add_argument("dir", type=Path, help="folder of videos (with captions.jsonl or captions.csv)")
    p.add_argument("--out", type=Path, default=None, help="manifest path (JSONL)")
    p.set_defaults(func=_cmd_probe)
    return parser


def _cmd_world(args: argparse.Namespace) -> int:
    from spacetime.world.dataset import write_world

    width, height = args.size
    out = write_world(
        args.out,
        args.num_clips,
        split=args.split,
        num_frames=args.num_frames,
        height=height,
        width=width,
        fps=args.fps,
        seed=args.seed,
        overwrite=args.overwrite,
        pix_fmt=args.pix_fmt,
    )
    print(f"wrote {args.num_clips} clips to {out} (captions.jsonl, clips/*.mp4, clips/*.json)")
    return 0


def _cmd_train_vae(args: argparse.Namespace) -> int:
    from spacetime.config import load_config
    from spacetime.train import TrainVAEConfig, train_vae

    cfg = load_config(TrainVAEConfig, args.config, args.extra)
    out = train_vae(cfg)
    print(f"trained VAE written to {out}")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from spacetime.data.probe import main_probe

    if not args.dir.is_dir():
        raise ValueError(f"{args.dir} is not a directory")
    return main_probe(args.dir, args.out)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as e:
        print(f"spacetime {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"spacetime {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
