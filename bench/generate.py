"""Generation wall time: one 17-frame 64x64 clip at the model's default steps and dtype (25 and
float32 unless its config.json says), classifier-free guidance on, split into
loading, text encoding, denoising, VAE decode and writing the MP4.

    python bench/generate.py [--model DIR] [--vae DIR] [--repeats 3] [--threads 2] [--process 3]
                             [--guidance-method stg --guidance-option scale=1 ...]

With --model, a trained pipeline directory. Without, the world presets at random init (time does
not depend on the weights): the `world` DiT, the VAE at --vae (default: the VAE shipped in
src/spacetime/models/world/vae) and the shipped MiniLM text encoder; --guidance-embed gives that
DiT a guidance embedding (a guidance-distilled model: one pass a step where guidance applies). Timings are the median over --repeats runs after one warm-up run.
--process N also times the whole `spacetime generate PROMPT --output X.mp4` command N times (a
fresh process each: Python start, imports, loading, generating, writing), with --model if given
(else the shipped default model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from machine import cpu_name, mm_rate  # bench/machine.py

from spacetime.cli import DTYPE_NAMES, GUIDANCE_METHODS, guidance_options, parse_guidance_option
from spacetime.data.video import export_to_video
from spacetime.pipeline import SpacetimePipeline, fast_bfloat16, load_text_encoder


def build(args) -> tuple[SpacetimePipeline, float, str]:
    t0 = time.perf_counter()
    if args.model:
        pipe = SpacetimePipeline.from_pretrained(args.model, torch_dtype=args.dtype and getattr(torch, args.dtype))
        return pipe, time.perf_counter() - t0, f"trained pipeline {args.model}"
    from spacetime.dit import PRESETS as DIT_PRESETS
    from spacetime.dit import DiT
    from spacetime.vae import PRESETS as VAE_PRESETS
    from spacetime.vae import VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE.from_pretrained(args.vae) if Path(args.vae, "COMPLETE").is_file() else VideoVAE(VAE_PRESETS["world"])
    dit = DiT(replace(DIT_PRESETS["world"], guidance_embed=args.guidance_embed))
    text = load_text_encoder("minilm", 64)
    config = {"defaults": {"num_frames": 17, "height": 64, "width": 64, "fps": 8.0}}
    what = "world presets at random init (world DiT" + (" with a guidance embedding" if args.guidance_embed else "") + ", VAE " + (args.vae if Path(args.vae, "COMPLETE").is_file() else "random") + ", MiniLM)"
    return SpacetimePipeline(dit, vae, text, config).to(None, getattr(torch, args.dtype or "float32")), time.perf_counter() - t0, what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--vae", default=str(Path(__file__).resolve().parents[1] / "src/spacetime/models/world/vae"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="default: the model's own, else 25")
    ap.add_argument("--guidance-scale", type=float, default=None, help="default: the model's own, else 5")
    ap.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="default: the model's own (the shipped model guides above noise level 0.3 only)")
    ap.add_argument("--shift", type=float, default=None,
                    help="the sampler's timestep shift; default: the model's own (the shipped model's is 5)")
    ap.add_argument("--dtype", choices=DTYPE_NAMES, default=None,
                    help="the DiT's and VAE's weights; bfloat16: generation under CPU autocast (default: the model's own, else float32)")
    ap.add_argument("--guidance-method", choices=GUIDANCE_METHODS, default=None, help="default: the model's own, else cfg")
    ap.add_argument("--guidance-option", type=parse_guidance_option, action="append", default=None, metavar="KEY=NUMBER")
    ap.add_argument("--guidance-embed", action="store_true",
                    help="without --model: the world DiT guidance-distilled (one pass a step, not two)")
    ap.add_argument("--process", type=int, default=0, help="also time N whole `spacetime generate` processes")
    ap.add_argument("--peaks", action="store_true",
                    help="also measure this CPU's float32 and bfloat16 matmul rates (bfloat16 on a small matrix: an "
                         "AVX2 CPU emulates it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe, load_s, what = build(args)
    # what is timed, the model's own defaults resolved (and passed on as such to --process runs)
    args.steps, args.guidance_scale = pipe.resolve_num_inference_steps(args.steps), pipe.resolve_guidance_scale(args.guidance_scale)
    args.dtype = pipe.dtype_name
    method, options = pipe.resolve_guidance_method(args.guidance_method, guidance_options(args.guidance_option))
    prompt = "a red ball bounces off the left wall on a black background"
    runs = []
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.repeats + 1):
            # a new prompt each run, so the text encoder's cache does not hide its cost
            t0 = time.perf_counter()
            out = pipe(f"{prompt}, take {r}", num_frames=17, height=64, width=64, num_inference_steps=args.steps,
                       guidance_scale=args.guidance_scale, guidance_interval=args.guidance_interval,
                       shift=args.shift, guidance_method=method, guidance_options=options,
                       generator=torch.Generator().manual_seed(r))
            t1 = time.perf_counter()
            export_to_video(out.frames[0], os.path.join(d, f"{r}.mp4"), fps=8)
            io = time.perf_counter() - t1
            runs.append({**out.timings, "io": io, "total": time.perf_counter() - t0})
    timed = runs[1:]  # the first run warms up allocators and kernels
    med = {k: statistics.median(r[k] for r in timed) for k in timed[0]}
    result = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads",
              "model": what, "dtype": args.dtype, "load_s": round(load_s, 3), "steps": args.steps, "guidance_scale": args.guidance_scale,
              "guidance_interval": list(pipe.resolve_guidance_interval(args.guidance_interval)),
              "shift": pipe.resolve_shift(args.shift), "guidance_method": method, "guidance_options": options,
              "median_s": {k: round(v, 3) for k, v in med.items()}}
    result["cpu_capability"], result["fast_bfloat16"] = torch.backends.cpu.get_cpu_capability(), fast_bfloat16()
    if args.peaks:
        result["mm_gflop_per_s"] = {"float32": round(mm_rate(torch.float32, 2048), 1),
                                    "bfloat16": round(mm_rate(torch.bfloat16, 1024 if not fast_bfloat16() else 2048, 1), 2)}
    print(json.dumps(result, indent=1))
    print("\n| stage | seconds | share |\n| --- | --- | --- |")
    for k in ("text", "denoise", "decode", "io"):
        print(f"| {k} | {med[k]:.3f} | {100 * med[k] / med['total']:.0f}% |")
    print(f"| total | {med['total']:.3f} | |")
    if args.process:
        walls = process_times(args, method, options)
        print(json.dumps({"spacetime_generate_process_s": [round(w, 2) for w in walls],
                          "median_s": round(statistics.median(walls), 2)}))


def process_times(args, method: str, options: dict) -> list[float]:
    cli = Path(sys.executable).with_name("spacetime")
    walls = []
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.process):
            cmd = [str(cli), "generate", f"a red ball bounces to the right, take {r}", "--output", f"{d}/{r}.mp4",
                   "--seed", str(r), "--num-inference-steps", str(args.steps), "--guidance-scale", str(args.guidance_scale),
                   "--dtype", args.dtype, "--guidance-method", method]
            cmd += [f"--guidance-option={k}={v}" for k, v in options.items()]
            cmd += ["--model", str(args.model)] if args.model else []
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            walls.append(time.perf_counter() - t0)
    return walls


if __name__ == "__main__":
    main()
