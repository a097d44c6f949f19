"""How a DiT training step scales with sequence length on this machine: time and peak memory of
forward + backward for one sample of 1k, 4k and 16k tokens, with and without activation
checkpointing (`grad_checkpointing`), each in a fresh process.

    python bench/seqlen.py [--tokens 1024,4096,16384] [--threads 2] [--json out.json]

The model is the `world` preset (hidden 384, 6 layers, 6 heads, patch 1x2x2); a latent of
(t, h, w) gives t*h*w/4 tokens: 1k = 4x32x32, 4k = 4x64x64, 16k = 16x64x64. Text: 32 tokens.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

GRIDS = {1024: (4, 32, 32), 4096: (4, 64, 64), 16384: (16, 64, 64)}


def probe(tokens: int, checkpointing: bool, threads: int) -> dict:
    from spacetime.dit import PRESETS, DiT

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = DiT(PRESETS["world"])
    model.grad_checkpointing = checkpointing
    x = torch.randn(1, 16, *GRIDS[tokens])
    text, mask = torch.randn(1, 32, 384), torch.ones(1, 32, dtype=torch.bool)
    target = torch.randn_like(x)
    times = []
    for _ in range(2):  # the first step warms up allocators
        t0 = time.perf_counter()
        F.mse_loss(model(x, torch.rand(1), text, mask), target).backward()
        times.append(time.perf_counter() - t0)
    return {"tokens": tokens, "grad_checkpointing": checkpointing, "step_s": round(times[-1], 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="1024,4096,16384")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        tokens, ckpt = args.probe.split(",")
        print(json.dumps(probe(int(tokens), ckpt == "1", args.threads)))
        return
    rows = []
    for tokens in [int(t) for t in args.tokens.split(",")]:
        for ckpt in (False, True):
            out = subprocess.run([sys.executable, __file__, "--probe", f"{tokens},{int(ckpt)}", "--threads",
                                  str(args.threads)], check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| tokens | step (s) | peak RSS (MiB) | step with checkpointing (s) | peak RSS with checkpointing (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for tokens in sorted({r["tokens"] for r in rows}):
        a, b = (next(r for r in rows if r["tokens"] == tokens and r["grad_checkpointing"] == c) for c in (False, True))
        print(f"| {tokens:,} | {a['step_s']} | {a['peak_rss_mib']:,} | {b['step_s']} | {b['peak_rss_mib']:,} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
