"""The `spacetime` command: one entry point, one subcommand per job.

    spacetime world --out DIR --num-clips N [--split train|heldout] [--num-frames 17] [--size 64x64] [--fps 8] [--seed S]
    spacetime data probe DIR [--out manifest.jsonl]
    spacetime eval (--model DIR | --videos DIR) --out DIR [--split heldout | --prompts FILE] [--num-clips N] [--seed S]
    spacetime train-vae --config configs/vae-world.yaml [--key value ...]
    spacetime train --config configs/dit-world.yaml [--key value ...]
    spacetime generate PROMPT [--num-frames N | --seconds S] [--size WxH | --height H --width W] [--fps F]
                       [--num-inference-steps K] [--guidance-scale G] [--dtype bfloat16] [--seed S] [--model DIR] --output out.mp4
                       [--embed-prompt] [--no-provenance] [--sign-cert PEM --sign-key PEM]
    spacetime verify FILE... [--json] [--trust-anchors PEM] [--no-local-ca]

Bad arguments exit with status 2 and a message naming the argument and value; a failure while
working exits with status 1. Heavy imports happen inside the subcommands so `--help` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import sys
from pathlib import Path

from spacetime import __version__

MAX_SIDE = 4096
MAX_FRAMES = 100_000
EVAL_MODEL_ONLY = {"split": "heldout", "prompts": None, "num_frames": 17, "size": (64, 64), "fps": 8.0,  # eval flags for --model, defaults
                   "num_inference_steps": None, "guidance_scale": None, "guidance_interval": None, "shift": None,
                   "dtype": None, "guidance_method": None, "guidance_option": None, "prompt_as_typed": False}
# the DiT's and VAE's weights and arithmetic (torch's names): bfloat16 halves their memory and, where the CPU
# has bfloat16 matrix units, samples faster (docs/benchmarks.md)
DTYPE_NAMES = ("float32", "bfloat16")
# how the conditional and unconditional predictions combine: sampling.GUIDANCE_METHODS (cli imports no torch)
GUIDANCE_METHODS = ("cfg", "cfg-zero-star", "apg", "stg")


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


def _float_in(name: str, lo: float, hi: float, open_low: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not (math.isfinite(v) and (lo < v if open_low else lo <= v) and v <= hi):
            span = f"({lo:g}, {hi:g}]" if open_low else f"{lo:g}..{hi:g}"
            raise argparse.ArgumentTypeError(f"{name} must be in {span}, got {text!r}")
        return v

    return parse


def parse_guidance_option(text: str) -> tuple[str, float]:
    """'KEY=VALUE' -> (key, number): one option of --guidance-method (which checks the key)."""
    key, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not key.strip() or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"--guidance-option must be KEY=NUMBER, like momentum=-0.5, got {text!r}")
    return key.strip(), number


def guidance_options(pairs: list[tuple[str, float]] | None) -> dict | None:
    """--guidance-option pairs as the options dict the pipeline takes (None: none given)."""
    return None if not pairs else dict(pairs)


def parse_fps(text: str) -> float:
    from spacetime.data.video import MIN_FPS

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fps must be a number, got {text!r}") from None
    if not (math.isfinite(v) and MIN_FPS <= v <= 240):
        raise argparse.ArgumentTypeError(f"fps must be in [{MIN_FPS:g}, 240], got {text!r}")
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
    w.add_argument("--multishot", type=_float_in("--multishot", 0.0, 1.0), default=0.0,
                   help="share of clips cut into 2-3 shots: wide, close-up, reverse angle (default 0; docs/multishot.md)")
    w.add_argument("--overwrite", action="store_true", help="replace a world data set made with other settings")
    w.set_defaults(func=_cmd_world)

    t = sub.add_parser("train-vae", help="train the video VAE (resumes from the newest checkpoint in run_dir)",
                       description="Train the VAE. Any config key can follow as --key value, nested keys with dots: "
                                   "--max_steps 100 --optim.lr 3e-4 --data.source folder --data.path DIR. The keys "
                                   "are TrainVAEConfig's fields (docs/vae.md; an unknown key's error lists them).")
    t.add_argument("--config", type=Path, default=None, help="YAML config (default: the built-in defaults)")
    t.set_defaults(func=_cmd_train_vae, overrides=True)

    t = sub.add_parser("train", help="train the text-to-video DiT on a trained VAE's latents (resumes from run_dir)",
                       description="Train the DiT. Any config key can follow as --key value, nested keys with dots: "
                                   "--max_steps 100 --optim.lr 3e-4 --vae runs/vae-world/model --model.depth 4. The "
                                   "keys are TrainDiTConfig's fields (docs/dit.md; an unknown key's error lists them).")
    t.add_argument("--config", type=Path, default=None, help="YAML config (default: the built-in defaults)")
    t.set_defaults(func=_cmd_train, overrides=True)

    g = sub.add_parser("generate", help="generate a video from a text prompt",
                       description="Text to video with a trained model; writes the video and a JSON sidecar "
                                   "(same name, .json) with every parameter and the seed.")
    g.add_argument("prompt", help="what the video shows")
    g.add_argument("--output", "-o", required=True, type=Path, help="the video to write (.mp4), or the image (.png: one frame, text -> image or image -> image)")
    g.add_argument("--model", type=Path, default=None, help="a pipeline directory (default: the model shipped with spacetime)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--num-frames", type=_int_in("--num-frames", 1, MAX_FRAMES), default=None,
                        help="frames, 1 + 4k (default: the model's training length)")
    length.add_argument("--seconds", type=_float_in("--seconds", 0.001, 3600.0), default=None,
                        help="duration: the frames span it, (frames - 1) / fps, rounded to the nearest 1 + 4k frames at --fps")
    g.add_argument("--size", type=parse_size, default=None, metavar="WxH", help="frame size (or --height and --width)")
    g.add_argument("--height", type=_int_in("--height", 1, MAX_SIDE), default=None)
    g.add_argument("--width", type=_int_in("--width", 1, MAX_SIDE), default=None)
    g.add_argument("--fps", type=parse_fps, default=None, help="frames per second of the file (default: the model's)")
    g.add_argument("--num-inference-steps", type=_int_in("--num-inference-steps", 1, 1000), default=None,
                   help="sampler steps (default: the model's own, else 25)")
    g.add_argument("--guidance-scale", type=_float_in("--guidance-scale", 0.0, 100.0), default=None,
                   help="classifier-free guidance; 1: the prompt alone (default: the model's own, else 5)")
    g.add_argument("--guidance-interval", type=_float_in("--guidance-interval", 0.0, 1.0), nargs=2, metavar=("LO", "HI"), action=_Interval,
                   default=None, help="apply guidance only at noise levels in [LO, HI] (1 = pure noise), the prompt "
                                      "alone elsewhere (default: the model's own, else 0 1)")
    g.add_argument("--shift", type=_float_in("--shift", 0.0, 100.0, open_low=True), default=None,
                   help="the sampler's timestep shift: more of the steps at high noise, where the layout is decided "
                        "(default: the model's own, else 1)")
    g.add_argument("--guidance-method", choices=GUIDANCE_METHODS, default=None,
                   help="how guidance combines the prompt's and the unconditional predictions: cfg, cfg-zero-star "
                        "(CFG-Zero*), apg (adaptive projected guidance) or stg (cfg plus spatiotemporal skip "
                        "guidance, away from the model with a block's attention cut across time) "
                        "(default: the model's own, else cfg)")
    g.add_argument("--guidance-option", type=parse_guidance_option, action="append", default=None, metavar="KEY=NUMBER",
                   help="an option of the guidance method, repeatable: cfg-zero-star zero_init_steps; apg momentum, "
                        "norm_threshold, eta; stg scale, block, blocks, identity (docs/experiments.md, Guidance methods)")
    g.add_argument("--negative-prompt", default=None, help="what the video should not show (the unconditional input)")
    g.add_argument("--solver", choices=["euler", "heun"], default="euler")
    g.add_argument("--dtype", choices=DTYPE_NAMES, default=None,
                   help="the DiT's and VAE's weights and arithmetic (default: the model's own, else float32)")
    g.add_argument("--seed", type=_int_in("--seed", 0, 2**63 - 1), default=0)
    g.add_argument("--image", type=Path, default=None, help="image -> video: animate this still (its first frame)")
    g.add_argument("--video", type=Path, default=None, help="a video to extend, connect from, or edit (see --mode)")
    g.add_argument("--mode", choices=["extend-forward", "extend-backward", "edit", "connect"], default=None,
                   help="what to do with --video (default: extend-forward)")
    g.add_argument("--video2", type=Path, default=None, help="--mode connect: the video to end in")
    g.add_argument("--strength", type=_float_in("--strength", 0.0, 1.0, open_low=True), default=None,
                   help="--mode edit: in (0, 1], how far from --video the result may go; --mode connect: the "
                        "transition starts from a cross-fade of the two ends noised to this level (default "
                        "0.6; 1: from noise)")
    g.add_argument("--loop", action="store_true",
                   help="make the last frame flow into the first: a loop of NUM_FRAMES - 1 frames (the next would be the first "
                        "again); one longer than --window-frames is the clip, then a generated transition back to its start "
                        "(a window less its two ends: 20 frames more with the default 33-frame window)")
    g.add_argument("--expand-prompt", action="store_true",
                   help="rewrite a short world prompt in the detailed caption style the model was trained on "
                        "(seeded by --seed; the sidecar keeps both)")
    g.add_argument("--prompt-as-typed", action="store_true",
                   help="condition on the prompt exactly as typed: a model whose config.json says so (the shipped one) "
                        "otherwise completes a prompt that names an object without its colour, as its captions always "
                        "name one: with the colours of an --image/--video where the new frames join it, else with a "
                        "scene drawn by --seed (the sidecar keeps both)")
    g.add_argument("--window-frames", type=_int_in("--window-frames", 9, MAX_FRAMES), default=None,
                   help="videos longer than this are made window by window (default: twice the training length)")
    g.add_argument("--embed-prompt", action="store_true",
                   help="store the prompt itself in the signed Content Credentials (default: only its SHA-256)")
    g.add_argument("--no-provenance", action="store_true",
                   help="write no C2PA manifest (the sidecar says so); the pixel watermark stays")
    g.add_argument("--sign-cert", type=Path, default=None,
                   help="your signing certificate chain (PEM, signer first) instead of the local identity; with --sign-key")
    g.add_argument("--sign-key", type=Path, default=None, help="the private key (PEM) of --sign-cert")
    g.set_defaults(func=_cmd_generate)

    v = sub.add_parser("verify", help="check files for spacetime's Content Credentials and pixel watermark",
                       description="Exit 0 when a trusted manifest or the watermark says spacetime made every file, "
                                   "1 when neither is found in some file, 2 when some file's manifest is present but "
                                   "invalid (changed after signing), 3 when a file could not be checked (missing, a "
                                   "directory) or the command was wrong; 2 outranks 3, 3 outranks 1. See docs/provenance.md.")
    v.add_argument("files", nargs="+", type=Path, metavar="FILE")
    v.add_argument("--json", action="store_true", help="one JSON report per file (a list), for machines")
    v.add_argument("--trust-anchors", type=Path, action="append", default=[], metavar="PEM",
                   help="also trust these root certificates (repeatable); the local CA is trusted by default")
    v.add_argument("--no-local-ca", action="store_true", help="do not trust this machine's local signing CA")
    v.set_defaults(func=_cmd_verify)

    e = sub.add_parser("eval", help="score a text-to-video model, or a folder of videos, against prompts and the simulator",
                       description="Track objects by the world's palette and score prompt adherence, motion, object "
                                   "permanence, physics, smoothness and the distance to the simulator's trajectories. "
                                   "Writes metrics.json, index.html and figures to --out (see docs/eval.md).")
    source = e.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="a trained text-to-video model folder: prompts from --split are generated "
                                                   "and scored (default, without --videos: the model shipped with spacetime)")
    source.add_argument("--videos", type=Path, help="a folder of videos with captions.jsonl (e.g. from `spacetime world`): scored as they are")
    e.add_argument("--out", required=True, type=Path, help="output folder for metrics.json and the report")
    e.add_argument("--split", choices=["train", "heldout"], default=EVAL_MODEL_ONLY["split"], help="--model: which prompts (default heldout)")
    e.add_argument("--prompts", type=Path, default=None,
                   help="--model: your own prompts to generate and score, in place of --split's: a text file, one per "
                        "line (blank lines and lines starting with # skipped), or a .jsonl file of {\"prompt\": ...} lines")
    e.add_argument("--num-clips", type=_int_in("--num-clips", 1, 1_000_000), default=None,
                   help="--model: prompts to generate (default 64; with --prompts, all of them); --videos: score only the first N")
    e.add_argument("--seed", type=_int_in("--seed", 0, 2**63 - 1), default=0)
    e.add_argument("--num-frames", type=_int_in("--num-frames", 1, MAX_FRAMES), default=EVAL_MODEL_ONLY["num_frames"], help="--model only")
    e.add_argument("--size", type=parse_size, default=EVAL_MODEL_ONLY["size"], metavar="WxH", help="--model only: frame size (default 64x64)")
    e.add_argument("--fps", type=parse_fps, default=EVAL_MODEL_ONLY["fps"], help="--model only")
    e.add_argument("--num-inference-steps", type=_int_in("--num-inference-steps", 1, 1000), default=None,
                   help="--model only (default: the model's own, else 25)")
    e.add_argument("--guidance-scale", type=_float_in("--guidance-scale", 0.0, 100.0), default=None,
                   help="--model only (default: the model's own, else 5)")
    e.add_argument("--guidance-interval", type=_float_in("--guidance-interval", 0.0, 1.0), nargs=2, metavar=("LO", "HI"), action=_Interval,
                   default=None, help="--model only: guidance at noise levels in [LO, HI] (default: the model's own)")
    e.add_argument("--shift", type=_float_in("--shift", 0.0, 100.0, open_low=True), default=None,
                   help="--model only: the sampler's timestep shift (default: the model's own)")
    e.add_argument("--guidance-method", choices=GUIDANCE_METHODS, default=None,
                   help="--model only: cfg, cfg-zero-star, apg or stg (default: the model's own, else cfg)")
    e.add_argument("--guidance-option", type=parse_guidance_option, action="append", default=None, metavar="KEY=NUMBER",
                   help="--model only: an option of the guidance method, repeatable")
    e.add_argument("--dtype", choices=DTYPE_NAMES, default=EVAL_MODEL_ONLY["dtype"],
                   help="--model only: the DiT's and VAE's weights and arithmetic (default: the model's own, else float32)")
    e.add_argument("--prompt-as-typed", action="store_true",
                   help="--model only: generate from each prompt exactly as written, not completed as `generate` "
                        "completes it for a model whose config.json says so (a prompt naming an object without its colour)")
    e.add_argument("--caption", choices=["detailed", "medium", "short"], default="detailed",
                   help="which caption length is the prompt (default detailed, the style the model is trained on)")
    e.add_argument("--no-report", action="store_true", help="write metrics.json only (no matplotlib needed)")
    e.set_defaults(func=_cmd_eval)

    d = sub.add_parser("data", help="work with folders of videos")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    p = dsub.add_parser("probe", help="decode every video in a folder and write a manifest; broken files are reported")
    p.add_argument("dir", type=Path, help="folder of videos (with captions.jsonl or captions.csv)")
    p.add_argument("--out", type=Path, default=None, help="manifest path (JSONL)")
    p.set_defaults(func=_cmd_probe)

    v = sub.add_parser("serve", help="serve the HTTP API (OpenAI's Videos API shape) and the web page",
                       description="One process serves POST/GET/DELETE /v1/videos and a web page at / (see docs/serving.md). "
                                   "Needs the serve extra: pip install -e '.[serve]' in the checkout.")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=_int_in("--port", 0, 65535), default=7860, help="port (default 7860; 0 picks a free one)")
    v.add_argument("--model", type=Path, default=None, help="a pipeline directory (default: the model shipped with spacetime)")
    v.add_argument("--output-dir", type=Path, default=Path.home() / ".cache" / "spacetime" / "serve",
                   help="where jobs' videos are kept, one folder per job id (default ~/.cache/spacetime/serve)")
    v.add_argument("--queue-size", type=_int_in("--queue-size", 1, 10_000), default=8,
                   help="jobs that may wait; past that a request gets 429 with Retry-After (default 8)")
    v.add_argument("--workers", type=_int_in("--workers", 1, 64), default=1, help="jobs generated at once (default 1)")
    v.add_argument("--token-file", type=Path, default=None,
                   help="a file holding a bearer token that API requests must carry (Authorization: Bearer TOKEN)")
    v.add_argument("--max-side", type=_int_in("--max-side", 16, MAX_SIDE), default=512, help="largest height or width")
    v.add_argument("--max-frames", type=_int_in("--max-frames", 1, MAX_FRAMES), default=241, help="most frames a job may ask for")
    v.add_argument("--max-steps", type=_int_in("--max-steps", 1, 1000), default=100, help="most sampler steps a job may ask for")
    v.add_argument("--no-provenance", action="store_true",
                   help="write no C2PA manifest into served files; the pixel watermark stays (as generate's flag)")
    v.add_argument("--sign-cert", type=Path, default=None,
                   help="your signing certificate chain (PEM, signer first) instead of the local identity; with --sign-key")
    v.add_argument("--sign-key", type=Path, default=None, help="the private key (PEM) of --sign-cert")
    v.add_argument("--trust-anchors", type=Path, action="append", default=[], metavar="PEM",
                   help="root certificates the credentials checks also trust (repeatable), as verify's flag")
    v.set_defaults(func=_cmd_serve)
    for command in (*sub.choices.values(), *dsub.choices.values()):
        for action in command._actions:  # each flag's help ends with its default, unless it says it
            text = action.help or ""
            if action.option_strings and "default" not in text and not any(action.default is x for x in (None, False, argparse.SUPPRESS)):
                action.help = f"{text} (default: %(default)s)".strip()
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
        multishot=args.multishot,
    )
    print(f"wrote {args.num_clips} clips to {out} (captions.jsonl, clips/*.mp4, clips/*.json)")
    return 0


def _cmd_train_vae(args: argparse.Namespace) -> int:
    from spacetime.config import load_config
    from spacetime.train import TrainVAEConfig, leave_distributed, train_vae

    cfg = load_config(TrainVAEConfig, args.config, args.extra)
    try:
        out = train_vae(cfg)
    finally:
        leave_distributed()
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line, not one per rank
        print(f"trained VAE written to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from spacetime.config import load_config
    from spacetime.train import TrainDiTConfig, leave_distributed, train_dit

    cfg = load_config(TrainDiTConfig, args.config, args.extra)
    try:
        out = train_dit(cfg)
    finally:
        leave_distributed()
    if os.environ.get("RANK", "0") == "0":
        print(f"trained text-to-video model written to {out}")
    return 0



def _cmd_generate(args: argparse.Namespace) -> int:
    import json
    import time

    import torch

    from spacetime import pipeline
    from spacetime.atomic import atomic_write_text
    from spacetime.pipeline import SpacetimePipeline
    from spacetime.provenance import (
        Ingredient,
        Provenance,
        ProvenanceError,
        generation_claims,
        guidance_interval_parameters,
        guidance_method_parameters,
        model_identity,
        resolve_identity,
        write_output,
    )

    if args.size is not None and (args.height is not None or args.width is not None):
        raise ValueError("give --size WxH or --height/--width, not both")
    if args.output.suffix.lower() not in (".mp4", ".png"):
        raise ValueError(f"--output {args.output}: videos are written as MP4 (.mp4), images (--num-frames 1) as PNG (.png)")
    mode = args.mode or ("extend-forward" if args.video is not None else None)
    if mode is not None and args.video is None:
        raise ValueError(f"--mode {mode} needs --video")
    if args.video2 is not None and mode != "connect":
        raise ValueError("--video2 goes with --mode connect")
    if args.strength is not None and mode not in ("edit", "connect"):
        raise ValueError("--strength goes with --mode edit or --mode connect")
    if mode == "edit" and args.strength is None:
        raise ValueError("--mode edit needs --strength in (0, 1]")
    if mode == "connect" and args.video2 is None:
        raise ValueError("--mode connect needs --video2")
    for flag, path in (("--image", args.image), ("--video", args.video), ("--video2", args.video2)):
        if path is not None and not path.is_file():
            why = ("no such file" if not path.exists() else "is a directory, not a file" if path.is_dir() else
                   "not a regular file (a device or a pipe, such as <(...)): save it to a file first")
            raise ValueError(f"{flag} {path}: {why}")
        if path is not None and args.output.exists() and os.path.samefile(path, args.output):
            raise ValueError(f"--output {args.output} is the {flag} file: writing it would replace your input; "
                             "name another file")
    if args.output.parent and not args.output.parent.exists():
        raise ValueError(f"--output {args.output}: folder {args.output.parent} does not exist")
    if args.output.is_dir():
        raise ValueError(f"--output {args.output}: is a directory; name the file to write")
    if args.output.suffix.lower() == ".png" and (args.video is not None or args.loop
                                                  or args.num_frames not in (None, 1) or args.seconds is not None):
        raise ValueError(f"--output {args.output}: PNG holds one image; use --num-frames 1 without --video, "
                         "--seconds or --loop, or name the output .mp4")
    model = args.model or pipeline.DEFAULT_MODEL  # looked up now: tests point it elsewhere
    if args.model is None and not (model / "COMPLETE").is_file():
        # the package ships the world VAE; the text-to-video model around it is not trained yet
        raise ValueError("no default text-to-video model is installed yet; pass --model DIR "
                         "(a model trained with `spacetime train`)")
    if not model.is_dir():
        raise ValueError(f"--model {model}: no such model directory")
    identity = None  # resolved before any work, so a bad key fails fast and writes nothing
    if args.no_provenance and (args.sign_cert or args.sign_key):
        raise ValueError("--sign-cert/--sign-key sign the output; they cannot go with --no-provenance")
    if not args.no_provenance:
        identity = resolve_identity(args.sign_cert, args.sign_key)
    t0 = time.perf_counter()
    pipe = SpacetimePipeline.from_pretrained(model, torch_dtype=args.dtype and getattr(torch, args.dtype))
    load_s = time.perf_counter() - t0
    # the sampling used, the model's own defaults resolved, as the sidecar and the manifest record it
    steps, guidance = pipe.resolve_num_inference_steps(args.num_inference_steps), pipe.resolve_guidance_scale(args.guidance_scale)
    dtype = pipe.dtype_name  # as loaded: the model's bfloat16 is float32 on an AVX2 CPU
    d = pipe.defaults
    fps = args.fps or d.get("fps", 8.0)
    num_frames = args.num_frames
    if args.seconds is not None:
        num_frames = 1 + 4 * max(0, math.floor(args.seconds * fps / 4 + 0.5))  # (frames - 1) / fps ≈ seconds
        if num_frames > MAX_FRAMES:
            raise ValueError(f"--seconds {args.seconds:g} at --fps {fps:g} is {num_frames} frames; at most {MAX_FRAMES}")
    if mode == "edit":  # an edit keeps its video's length; the pipeline warns if one was given
        num_frames = num_frames or None
    elif args.output.suffix.lower() == ".png":  # an image asked for by its file name
        num_frames = 1
    else:
        num_frames = num_frames or d.get("num_frames", 17)
    width, height = args.size if args.size else (args.width, args.height)
    if not (args.image or args.video):  # with an input the pipeline takes its size, or its aspect ratio with one side
        width, height = width or d.get("width", 64), height or d.get("height", 64)
    for flag, path in (("--video", args.video), ("--video2", args.video2)):
        source_fps = _source_fps(path) if path is not None and args.fps is None else None
        if source_fps and abs(source_fps - fps) > 0.01 * fps:
            logging.getLogger(__name__).warning(
                "%s %s is %g fps; the output is written at %g fps (the model's), so its frames play %.2gx as "
                "fast: pass --fps to choose", flag, path, source_fps, fps, fps / source_fps)
    prompt = args.prompt
    if args.expand_prompt:
        from spacetime.world.prompts import expand_prompt

        aspect = width / height if width and height else d.get("width", 64) / d.get("height", 64)
        prompt = expand_prompt(args.prompt, seed=args.seed, num_frames=num_frames or d.get("num_frames", 17), fps=fps,
                               aspect=aspect)
        print(f"expanded prompt: {prompt}")
    completed = None
    if d.get("complete_prompt") and not (args.expand_prompt or args.prompt_as_typed):
        aspect = width / height if width and height else d.get("width", 64) / d.get("height", 64)
        completed = completed_prompt(args.prompt, seed=args.seed, num_frames=num_frames or d.get("num_frames", 17),
                                     fps=fps, aspect=aspect, mode=mode or "image-to-video", image=args.image,
                                     video=args.video, video2=args.video2)
        if completed == args.prompt:
            completed = None
        else:
            prompt = completed
            print(f"completed prompt: {prompt} (this model draws an empty scene for an object without a colour; "
                  "--prompt-as-typed to turn this off)")
    if not args.prompt.strip():  # diffusers' users may mean it; a typo of a shell variable may not
        logging.getLogger(__name__).warning("the prompt is empty: the video is the model's unconditional one, what it "
                                            "makes when asked for nothing")
    if d.get("complete_prompt"):  # a model of the world's captions knows the world's words alone
        from spacetime.world.prompts import parse_prompt

        parsed = parse_prompt(args.prompt)
        unknown = parsed.unknown_words
        if unknown:
            logging.getLogger(__name__).warning(
                "words this model never saw in training (its captions are the world's: docs/captions.md), so they "
                "ask for nothing: %s", ", ".join(unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""))
        for note in parsed.notes[:10]:  # what the world cannot show as asked ("low gravity", two objects of one colour)
            logging.getLogger(__name__).warning("the prompt as this model's world reads it: %s", note)
        if args.prompt_as_typed and any(o.colour is None for o in parsed.objects):
            logging.getLogger(__name__).warning(
                "--prompt-as-typed: an object without a colour is drawn as an empty scene by this model in most clips "
                "(docs/captions.md); without the flag its colour is completed")
    interval = pipe.resolve_guidance_interval(args.guidance_interval)  # the model's own unless given
    method, options = pipe.resolve_guidance_method(args.guidance_method, guidance_options(args.guidance_option))
    shift = pipe.resolve_shift(args.shift)
    strength = pipeline.resolve_strength(mode, args.strength)
    out = pipe(prompt, negative_prompt=args.negative_prompt, num_frames=num_frames, height=height, width=width,
               num_inference_steps=steps, guidance_scale=guidance, guidance_interval=interval, shift=shift,
               guidance_method=method, guidance_options=options, generator=torch.Generator().manual_seed(args.seed), solver=args.solver, progress=True,
               image=args.image, video=args.video, video2=args.video2, strength=strength,
               extend="backward" if mode == "extend-backward" else "forward", loop=args.loop,
               window_frames=args.window_frames)
    requested_frames = num_frames
    num_frames, height, width = out.frames[0].shape[:3]  # as made: sizes that do not fit are rounded
    t0 = time.perf_counter()
    if args.output.suffix.lower() == ".png" and num_frames != 1:  # checked before generating; kept as a guard
        raise ValueError(f"--output {args.output}: PNG holds one image, but {num_frames} frames were made")
    kind = "image" if num_frames == 1 else "video"
    made_as = mode or (f"image-to-{kind}" if args.image is not None else f"text-to-{kind}")
    params = {"num_frames": num_frames, "height": height, "width": width, "fps": fps,
              "num_inference_steps": steps, "guidance_scale": guidance,
              **guidance_interval_parameters(interval), "shift": shift, **guidance_method_parameters(method, options),
              "solver": args.solver, "dtype": dtype, "strength": strength, "loop": args.loop, "expand_prompt": args.expand_prompt,
              "complete_prompt": completed is not None}
    t_hash = time.perf_counter()
    claims = generation_claims(prompt=args.prompt, model=model_identity(model), parameters=params, seed=args.seed,
                               mode=made_as, embed_prompt=args.embed_prompt, negative_prompt=args.negative_prompt)
    t_hash = time.perf_counter() - t_hash
    inputs = [Ingredient(p, role) for p, role in ((args.image, "image"), (args.video, "video"), (args.video2, "video2"))
              if p is not None]
    try:
        provenance = write_output(out.frames[0], args.output, fps,
                                  Provenance(claims, inputs, identity, sign=not args.no_provenance))
    except ProvenanceError as e:
        raise ValueError(str(e)) from None
    provenance["prompt_in_manifest"] = args.embed_prompt and not args.no_provenance
    provenance["seconds"]["model_hash"] = round(t_hash, 4)
    timings = {"load": load_s, **out.timings, "write": time.perf_counter() - t0}
    sidecar = {"prompt": args.prompt, "expanded_prompt": prompt if args.expand_prompt else None,
               "completed_prompt": completed, "negative_prompt": args.negative_prompt, "model": str(model),
               "image": args.image and str(args.image), "video": args.video and str(args.video), "mode": made_as,
               "video2": args.video2 and str(args.video2), "strength": strength, "loop": args.loop,
               # requested_frames is what --num-frames asked (the window, with a video), num_frames what was made
               "requested_frames": requested_frames, "window_frames": args.window_frames,
               "num_frames": num_frames, "height": height, "width": width, "fps": fps,
               "num_inference_steps": steps, "guidance_scale": guidance,
               "guidance_interval": list(interval), "shift": shift,
               "guidance_method": method, "guidance_options": options,
               "solver": args.solver, "dtype": dtype, "seed": args.seed, "seconds": {k: round(v, 3) for k, v in timings.items()},
               "provenance": provenance}
    atomic_write_text(args.output.with_suffix(".json"), json.dumps(sidecar, indent=1) + "\n")
    frames = "1 frame" if num_frames == 1 else f"{num_frames} frames"  # a still said "(1 frames, ...)"
    print(f"wrote {args.output} ({frames}, {width}x{height}, {fps:g} fps) and {args.output.with_suffix('.json')}")
    return 0


def completed_prompt(prompt: str, *, seed: int, num_frames: int, fps: float, aspect: float, mode: str,
                     image=None, video=None, video2=None) -> str:
    """`world.prompts.complete_prompt` for one generation, as `generate` and `serve` make it: with a
    scene drawn for text alone, with the colours the input shows where the new frames join it
    otherwise (read only when the prompt leaves some object's colour open)."""
    from spacetime.world.prompts import complete_prompt, parse_prompt

    seen = None
    if (image is not None or video is not None) and any(o.colour is None for o in parse_prompt(prompt).objects):
        seen = objects_where_inputs_join(mode, image, video, video2)
    return complete_prompt(prompt, seed=seed, num_frames=num_frames, fps=fps, aspect=aspect, seen=seen)


def objects_where_inputs_join(mode: str, image=None, video=None, video2=None) -> list[tuple[str, str | None]]:
    """The (colour, shape) of the world-palette objects (`world.prompts.objects_in`) where the new
    frames meet the input: the image; the video's last 4 frames (its first 4 extending backward);
    both videos' joining ends; 8 frames across an edited video. Frames are read as the pipeline
    reads them, then thinned to at most 256 pixels a side: colours survive it, and the tracker's
    time stays small for any input."""
    import numpy as np

    from spacetime.data.media import load_media as load
    from spacetime.world.prompts import objects_in

    if image is not None:
        frames = load(image, "image")[:1]
    else:
        v = load(video, "video")
        if mode == "extend-backward":
            frames = v[:4]
        elif mode == "connect":
            frames = np.concatenate([v[-4:], load(video2, "video2")[:4]]) if video2 is not None else v[-4:]
        elif mode == "edit":
            frames = v[:: max(1, len(v) // 8)][:8]
        else:  # extending forward, a loop of the video
            frames = v[-4:]
    step = max(1, math.ceil(max(frames.shape[1:3]) / 256))
    return objects_in(np.ascontiguousarray(frames[:, ::step, ::step]))


def _source_fps(path: Path) -> float | None:
    """The frame rate an input video plays at; None for a still (it has no rate to play at) or a file
    that cannot be read (the pipeline reports it, naming it). Read as the pipeline reads it: an
    animated PNG or WebP by PIL, from its frames' durations (FFmpeg cannot decode animated WebP)."""
    from spacetime.data.decode import video_info
    from spacetime.data.media import IMAGE_SUFFIXES

    try:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            from PIL import Image, ImageSequence

            with Image.open(path) as im:
                if getattr(im, "n_frames", 1) > 1:
                    ms = []
                    for frame in ImageSequence.Iterator(im):
                        frame.load()  # WebP sets a frame's duration as it loads it
                        ms.append(frame.info.get("duration") or 0)
                    return 1000 * len(ms) / sum(ms) if sum(ms) > 0 else None
                return None
        info = video_info(path)
        return None if info["still"] else info["fps"]
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the pipeline, naming it
        return None


def _cmd_verify(args: argparse.Namespace) -> int:
    import json

    from spacetime.provenance import SigningKeyError, format_report, trust_anchors, verify_file

    def check(f: Path) -> dict:
        # a path that cannot be checked is reported in its place, and the others are still checked;
        # its report has every key of a checked file's, as null, so scripts can index them
        why = ("is a directory" if f.is_dir() else None if f.is_file()
               else "not a regular file (a device or a pipe)" if f.exists() else "no such file")
        if why is None:
            try:
                return verify_file(f, trust_pem=pem)
            except OSError as e:  # unreadable (permissions, an I/O error): this file only
                why = e.strerror or str(e)
        return {"file": str(f), "exit_code": VERIFY_UNCHECKED, "verdict": f"not checked: {why}", "error": why,
                "ai_generated_by_spacetime": None, "c2pa": None, "watermark": None}

    # the trust settings, once: one that cannot be used (a missing or malformed anchor, a broken
    # signing.json) is a usage error and nothing is checked, never "tampered" or "no mark"
    try:
        pem = trust_anchors(extra=args.trust_anchors, local=not args.no_local_ca)
    except (SigningKeyError, OSError, TypeError, ValueError) as e:
        print(f"spacetime verify: error: {e}", file=sys.stderr)
        return VERIFY_UNCHECKED
    reports = [check(f) for f in args.files]
    with contextlib.suppress(AttributeError, ValueError):  # an embedded prompt's emoji on a cp1252 console
        sys.stdout.reconfigure(errors="backslashreplace")  # was a 'charmap' error, exit 1, for a verified file
    try:
        if args.json:
            print(json.dumps(reports, indent=1))
        else:
            print("\n".join(f"{r['file']}: error: {r['error']}" if "error" in r else format_report(r) for r in reports))
        sys.stdout.flush()
    except BrokenPipeError:  # `spacetime verify ... | head`: the reader left; the exit code still counts
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    codes = {r["exit_code"] for r in reports}
    # tampered outranks everything: a damaged file must not hide behind a missing one
    return 2 if 2 in codes else VERIFY_UNCHECKED if VERIFY_UNCHECKED in codes else 1 if 1 in codes else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from spacetime import pipeline
    from spacetime.eval.command import run_eval

    if args.model is None and args.videos is None:  # as generate: the shipped model, wherever pip put it
        if not (pipeline.DEFAULT_MODEL / "COMPLETE").is_file():
            raise ValueError("no default text-to-video model is installed; pass --model DIR (a model trained with "
                             "`spacetime train`) or --videos DIR")
        args.model = pipeline.DEFAULT_MODEL
    return run_eval(args)


def _cmd_probe(args: argparse.Namespace) -> int:
    from spacetime.data.probe import main_probe

    if not args.dir.is_dir():
        raise ValueError(f"{args.dir} is not a directory")
    return main_probe(args.dir, args.out)


def _served_name(model: Path | None) -> str:
    """What jobs call the model: the shipped one, or the folder's name (its run's when the folder
    is a run's `model/`); never the full path, which clients need not see."""
    if model is None:
        return "spacetime-world"
    model = model.resolve()
    return model.parent.name if model.name == "model" else model.name


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from spacetime.serve import Limits, OutputMarks, create_app, serve
        from spacetime.serve.app import is_loopback
    except ImportError as e:
        raise ValueError(f"serving needs the serve extra ({e.name} is missing): pip install -e '.[serve]' in the spacetime "
                         "checkout (the PyPI project named spacetime is another one)") from None
    from spacetime import pipeline
    from spacetime.pipeline import SpacetimePipeline

    token = None
    if args.token_file is not None:
        if not args.token_file.is_file():
            raise ValueError(f"--token-file {args.token_file}: no such file")
        token = args.token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"--token-file {args.token_file}: the file is empty")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        raise ValueError(f"--output-dir {args.output_dir} exists and is not a directory")
    if not is_loopback(args.host) and token is None:
        logging.getLogger("spacetime.serve").warning("listening on %s without --token-file: anyone who can reach it "
                                                     "can generate and delete videos", args.host)
    from spacetime.provenance import SigningKeyError, trust_anchors

    try:  # every anchor parsed now: a bad one would make each signed upload read as tampered
        trust_anchors(extra=args.trust_anchors)
    except SigningKeyError as e:
        raise ValueError(str(e)) from None
    # the model is loaded and the signing key checked before the port is bound: a missing default
    # model or a bad key fails here, clearly
    pipe = SpacetimePipeline.from_pretrained(args.model)
    marks = OutputMarks.resolve(args.model or pipeline.DEFAULT_MODEL, name=_served_name(args.model), sign=not args.no_provenance,
                                cert=args.sign_cert, key=args.sign_key)
    limits = Limits(max_side=args.max_side, max_frames=args.max_frames, max_steps=args.max_steps)
    app = create_app(pipe, args.output_dir, marks=marks, limits=limits, queue_size=args.queue_size,
                     workers=args.workers, token=token, trust_anchors=args.trust_anchors)
    print(f"spacetime serve: videos go to {args.output_dir.resolve()}", flush=True)
    import signal

    def terminated(signum, frame):
        raise SystemExit(0)

    # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again under the
    # handlers it found: SIGTERM (a service manager's stop) ends as cleanly as Ctrl-C, exit 0
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        serve(app, args.host, args.port)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("spacetime serve: stopped", flush=True)
    return 0


class _Interval(argparse.Action):
    """--guidance-interval LO HI, each in [0, 1] (its type), and LO <= HI: a usage error otherwise."""

    def __call__(self, parser, namespace, values, option_string=None):
        lo, hi = values
        if lo > hi:
            parser.error(f"{option_string} LO HI: LO must not be above HI, got {lo:g} {hi:g}")
        setattr(namespace, self.dest, [lo, hi])


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, `docker stop`, a service manager) as an interrupt, so that temporary files
    are removed as after Ctrl-C; the default action ends the process where it stands."""


@contextlib.contextmanager
def _terminate_as_interrupt(enabled: bool = True):
    import signal
    import threading

    if not enabled or threading.current_thread() is not threading.main_thread():  # signals go to the main thread
        yield
        return

    def terminated(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


VERIFY_UNCHECKED = 3  # `spacetime verify`: a file or setting could not be checked (2 means tampered there)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "overrides", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # argparse's usage errors exit 2, which verify's callers read as "tampered"
        # the command is the first word that is not a flag (the global flags take no values)
        if e.code == 2 and next((a for a in argv if not a.startswith("-")), None) == "verify":
            raise SystemExit(VERIFY_UNCHECKED) from None
        raise
    args.extra = extra
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with _terminate_as_interrupt(args.command not in ("serve", "train", "train-vae")):  # those stop on their own
            return int(args.func(args) or 0)
    except Terminated:
        print(f"spacetime {args.command}: terminated (SIGTERM); nothing half-written was left", file=sys.stderr)
        return 143
    except (ValueError, OSError) as e:  # bad input, and I/O failures (a full disk): a message, not a traceback
        print(f"spacetime {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # only world (complete clips are kept) and training (checkpoints) pick up where they stopped
        again = {"world": "to resume (complete clips are kept)", "train": "to resume from the last checkpoint",
                 "train-vae": "to resume from the last checkpoint"}.get(args.command, "to start over")
        print(f"spacetime {args.command}: interrupted; run the same command again {again}", file=sys.stderr)
        return 130
    except Exception as e:
        from spacetime.train import TrainingStopped

        if not isinstance(e, TrainingStopped):
            raise
        print(f"spacetime {args.command}: {e}", file=sys.stderr)
        return e.code  # 128 + the signal (SIGTERM 143, Ctrl-C 130), as the shell reports a process it ended


if __name__ == "__main__":
    raise SystemExit(main())
