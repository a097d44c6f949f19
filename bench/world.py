"""Benchmark the procedural world: rendering speed and MP4 round-trip fidelity.

    python bench/world.py [--clips 300] [--size 64x64] [--num-frames 17] [--json out.json]

Rendering speed counts whole clips, as training consumes them: scene sampling, physics, the
rasterizer, visibility and captions, in one process. The round trip writes each clip with
`write_video` (H.264, yuv420p) and reads it back with `read_video`; PSNR is over all pixels.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from spacetime.cli import parse_size
from spacetime.data.video import read_video, write_video
from spacetime.world.clip import make_clip, stream_seed
from spacetime.world.render import render


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--size", type=parse_size, default=(64, 64), help="WxH")
    ap.add_argument("--num-frames", type=int, default=17)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--roundtrip-clips", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    w, h = args.size
    seeds = [stream_seed(0, i) for i in range(args.clips)]

    make_clip(seeds[0], num_frames=args.num_frames, height=h, width=w)  # warm-up
    t0 = time.perf_counter()
    clips = [make_clip(s, num_frames=args.num_frames, height=h, width=w, fps=args.fps) for s in seeds]
    full = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c in clips:
        render(c.scene, c.trajectory, h, w)
    raster = time.perf_counter() - t0
    frames = args.clips * args.num_frames

    psnrs = []
    with tempfile.TemporaryDirectory() as d:
        for i, c in enumerate(clips[: args.roundtrip_clips]):
            path = Path(d) / f"{i}.mp4"
            write_video(c.frames, path, fps=args.fps)
            back, fps = read_video(path)
            assert back.shape == c.frames.shape and abs(fps - args.fps) < 1e-6, (back.shape, fps)
            psnrs.append(psnr(c.frames, back))

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "size": f"{w}x{h}",
        "num_frames": args.num_frames,
        "clips": args.clips,
        "frames_per_s_full_clip": round(frames / full, 1),
        "frames_per_s_rasterizer_only": round(frames / raster, 1),
        "mp4_roundtrip_psnr_db_mean": round(float(np.mean(psnrs)), 2),
        "mp4_roundtrip_psnr_db_min": round(float(np.min(psnrs)), 2),
        "mp4_roundtrip_clips": len(psnrs),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
