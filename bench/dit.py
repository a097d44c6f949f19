"""Benchmark a DiT training step (forward + backward) against diffusers' Wan and Latte transformers
at an equal parameter count, and against this machine's matmul peak.

    pip install -e ".[bench]"        # diffusers, for the comparison only
    python bench/dit.py [--reps 5] [--reps-long 3] [--settings anchor,long] [--precisions fp32,bf16] [--json out.json]

Settings, all with 16 latent channels, patch (1, 2, 2) and text of 32 tokens x 384:
  anchor  batch 4 of 4x32x32 latents: 1,024 tokens per sample, 4,096 per step
  long    batch 1 of one 8x64x64 latent: 8,192 tokens in one sequence, where attention dominates
A step is forward, MSE against a fixed target, backward; no optimizer (its cost is per parameter, so
equal at equal counts). Models, random init: ours is PRESETS["world"] (hidden 384, 6 layers, 6 heads);
Wan is `WanTransformer3DModel` with the same width, depth, heads and MLP (which gives the same
count to 0.1%); Latte is `LatteTransformer3DModel` (ada_norm_single, the Latte pipeline's norm)
with the layer count and head width whose count is closest to ours. Every text token is real
(Wan takes no text mask, so neither peer gets one; ours gets an all-True mask).

Timing: median over `--reps` (`--reps-long`) steps after two warm-up steps (glibc's allocator needs them to stop
mapping fresh pages for every large tensor); within a repetition the three models run one after
the other, so load from other processes falls on all of them alike.
Peak: the best of a 4096x4096 `torch.mm` (fp32, and bf16 for the bf16 rows), measured between the
repetitions. Our FLOPs are counted analytically (a multiply-add is 2 FLOPs; backward = 2x forward):
  matmuls     6 * (parameters of linears on image tokens) * tokens
              + 6 * (parameters of linears on text tokens) * text tokens
  attention   self: 3 * 4 * N^2 * D per layer and sample (QK^T and PV, 2 * N^2 * D each, forward)
              cross: 3 * 4 * N * L * D per layer and sample
% of peak = those FLOPs / our best step time / the best mm rate (best against best: both as fast
as this machine runs them undisturbed). Peak RSS: a fresh process per (model, setting, precision)
that builds the model and runs three steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from machine import cpu_name, mm_rate  # bench/machine.py

from spacetime.dit import PRESETS, DiT, count_parameters

SETTINGS = {  # batch, (t, h, w) of the latent
    "anchor": (4, (4, 32, 32)),
    "long": (1, (8, 64, 64)),
}
TEXT_LEN, TEXT_DIM, CHANNELS = 32, 384, 16


# --- the models -------------------------------------------------------------------------------------

def wan(grid: tuple[int, int, int]):
    from diffusers import WanTransformer3DModel

    cfg = PRESETS["world"]
    return WanTransformer3DModel(patch_size=cfg.patch, num_attention_heads=cfg.heads, attention_head_dim=cfg.head_dim,
                                 in_channels=CHANNELS, out_channels=CHANNELS, text_dim=TEXT_DIM, freq_dim=256,
                                 ffn_dim=int(cfg.hidden * cfg.mlp_ratio), num_layers=cfg.depth, cross_attn_norm=True,
                                 qk_norm="rms_norm_across_heads", eps=1e-6)


def latte(grid: tuple[int, int, int], layers: int = 3, head_dim: int = 68):
    from diffusers import LatteTransformer3DModel

    t, h, _ = grid
    d = 6 * head_dim
    return LatteTransformer3DModel(num_attention_heads=6, attention_head_dim=head_dim, in_channels=CHANNELS,
                                   out_channels=CHANNELS, num_layers=layers, cross_attention_dim=d,
                                   attention_bias=True, sample_size=h, patch_size=2, activation_fn="gelu-approximate",
                                   norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
                                   caption_channels=TEXT_DIM, video_length=t)


def latte_closest(target: int, grid: tuple[int, int, int]) -> dict:
    """Latte's layer count and head width (6 heads) whose parameter count is closest to target."""
    best = None
    for layers in (2, 3, 4):
        for head_dim in range(40, 97, 2):
            n = count_parameters(latte(grid, layers, head_dim))
            if best is None or abs(n - target) < abs(best[0] - target):
                best = (n, layers, head_dim)
    return {"layers": best[1], "head_dim": best[2]}


def build(name: str, grid: tuple[int, int, int], latte_cfg: dict | None = None, compile: bool = False):
    torch.manual_seed(0)
    if name == "ours":
        model = DiT(PRESETS["world"])
        with torch.no_grad():  # open the zero-initialised paths, as after some training
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
    elif name == "wan":
        model = wan(grid)
    else:
        model = latte(grid, **(latte_cfg or {}))
    if compile:  # block by block, as train.py does for ours: each peer's repeated block is its unit
        blocks = list(model.blocks) if name in ("ours", "wan") else (
            list(model.transformer_blocks) + list(model.temporal_transformer_blocks))
        for block in blocks:
            block.compile()
    return model.train()


def make_step(name: str, model, batch: int, grid: tuple[int, int, int], bf16: bool):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, CHANNELS, *grid, generator=g)
    target = torch.randn(x.shape, generator=g)
    t = torch.rand(batch, generator=g)
    text = torch.randn(batch, TEXT_LEN, TEXT_DIM, generator=g)
    mask = torch.ones(batch, TEXT_LEN, dtype=torch.bool)

    def forward():
        if name == "ours":
            return model(x, t, text, mask)
        # the peers get no mask: Wan takes none, and every text token is real here
        return model(x, t * 1000, text, return_dict=False)[0]

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward()
        F.mse_loss(out.float(), target).backward()

    step.forward = forward  # for counted_flops
    return step


def flops_per_step(model: DiT, batch: int, grid: tuple[int, int, int]) -> dict:
    """Analytic FLOPs of one training step of our DiT, in closed form (see the module docstring)."""
    cfg = model.config
    pt, ph, pw = cfg.patch
    n = grid[0] // pt * grid[1] // ph * grid[2] // pw  # tokens per sample
    d, L = cfg.hidden, TEXT_LEN

    def weights(*modules) -> int:
        return sum(m.weight.numel() for m in modules)

    on_tokens = weights(model.x_embedder, model.final.linear) + sum(
        weights(b.attn.qkv, b.attn.proj, b.cross.q, b.cross.proj, b.mlp[0], b.mlp[2]) for b in model.blocks)
    on_text = weights(model.text_proj[1], model.text_proj[3]) + sum(weights(b.cross.kv) for b in model.blocks)
    matmul = 6 * on_tokens * n * batch + 6 * on_text * L * batch
    attention = 3 * 4 * (n * n + n * L) * d * cfg.depth * batch
    return {"matmul": matmul, "attention": attention, "total": matmul + attention, "tokens": n * batch}


def counted_flops(model, forward) -> dict:
    """The same count for any model, by instrumenting one forward pass: 2 * rows * in * out per
    linear (and patch convolution), 2 * Nq * Nk * (d_qk + d_v) per attention head, x3 for the step."""
    counts = {"matmul": 0, "attention": 0}

    def linear_hook(m, inp, out):
        if isinstance(m, torch.nn.Linear):
            counts["matmul"] += 2 * inp[0].numel() // m.in_features * m.in_features * m.out_features
        else:  # a patch embedding: a convolution with stride = kernel
            counts["matmul"] += 2 * out.numel() * m.weight[0].numel()

    sdpa = F.scaled_dot_product_attention

    def counting_sdpa(*args, **kwargs):
        q, k, v = (args[i] if len(args) > i else kwargs[name] for i, name in enumerate(("query", "key", "value")))
        heads = q.numel() // (q.shape[-2] * q.shape[-1])
        counts["attention"] += 2 * heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return sdpa(*args, **kwargs)

    hooks = [m.register_forward_hook(linear_hook) for m in model.modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d))]
    F.scaled_dot_product_attention = counting_sdpa
    try:
        with torch.no_grad():
            forward()
    finally:
        F.scaled_dot_product_attention = sdpa
        for h in hooks:
            h.remove()
    out = {k: 3 * v for k, v in counts.items()}  # backward = 2x forward
    out["total"] = out["matmul"] + out["attention"]
    return out


# --- the runs -----------------------------------------------------------------------------------------

def speed(setting: str, precision: str, reps: int, latte_cfg: dict, peaks: dict, compile: bool = False) -> dict:
    batch, grid = SETTINGS[setting]
    bf16 = precision == "bf16"
    names = ("ours", "wan", "latte")
    models = {k: build(k, grid, latte_cfg, compile) for k in names}
    steps = {k: make_step(k, models[k], batch, grid, bf16) for k in names}
    flops = {k: counted_flops(models[k], steps[k].forward) for k in names}
    closed = flops_per_step(models["ours"], batch, grid)
    assert abs(closed["total"] / flops["ours"]["total"] - 1) < 0.01, (closed, flops["ours"])
    for k in names:  # warm-up
        steps[k]()
        steps[k]()
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(reps):
        peaks[precision] = max(peaks[precision], mm_rate(torch.bfloat16 if bf16 else torch.float32))
        for k in names:
            t0 = time.perf_counter()
            steps[k]()
            times[k].append(time.perf_counter() - t0)
    tokens = closed["tokens"]
    row = {"setting": setting, "precision": precision, "batch": batch, "latent": list(grid), "tokens_per_step": tokens,
           "ours_closed_form_gflop": round(closed["total"] / 1e9, 1)}
    for k in names:
        best, median = min(times[k]), statistics.median(times[k])
        row[f"{k}_step_s"] = round(median, 3)
        row[f"{k}_step_s_all"] = [round(s, 3) for s in times[k]]
        row[f"{k}_tokens_per_s"] = round(tokens / median, 1)
        row[f"{k}_gflop_per_step"] = round(flops[k]["total"] / 1e9, 1)
        row[f"{k}_attention_share_of_flops"] = round(flops[k]["attention"] / flops[k]["total"], 3)
        row[f"{k}_gflop_per_s_best"] = round(flops[k]["total"] / best / 1e9, 1)
    row["speedup_vs_wan"] = round(row["wan_step_s"] / row["ours_step_s"], 3)
    row["speedup_vs_latte"] = round(row["latte_step_s"] / row["ours_step_s"], 3)
    row["speedup_vs_fastest_peer"] = round(min(row["wan_step_s"], row["latte_step_s"]) / row["ours_step_s"], 3)
    print(json.dumps({k: v for k, v in row.items() if not k.endswith("_all")}), flush=True)
    return row


def rss_probe(name: str, setting: str, precision: str, latte_cfg: dict) -> None:
    """In a fresh process: build one model, run three steps, print peak RSS in MiB."""
    batch, grid = SETTINGS[setting]
    step = make_step(name, build(name, grid, latte_cfg), batch, grid, precision == "bf16")
    for _ in range(3):
        step()
    # VmHWM, not getrusage's ru_maxrss: Linux carries the parent's high-water mark into a forked
    # child, so ru_maxrss would report this benchmark's own peak
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    print(int(hwm.split()[1]) / 1024)


def memory(settings: list[str], precisions: list[str], latte_cfg: dict, threads: int) -> dict:
    out = {}
    for setting in settings:
        for precision in precisions:
            for name in ("ours", "wan", "latte"):
                r = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--rss-probe",
                                    f"{name}:{setting}:{precision}", "--latte", json.dumps(latte_cfg)],
                                   capture_output=True, text=True, check=True)
                out[f"{name}_{setting}_{precision}"] = round(float(r.stdout.strip().splitlines()[-1]), 1)
    return out


def table(rows: list[dict], peaks: dict, counts: dict) -> str:
    lines = ["| setting | precision | tokens/s: ours | Wan | Latte | ours vs Wan | ours vs fastest peer | "
             "GFLOP/step: ours | Wan | Latte | % of mm peak (best step): ours | Wan | Latte |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        peak = peaks[r["precision"]]
        pct = [f"{100 * r[f'{k}_gflop_per_s_best'] / peak:.0f}%" for k in ("ours", "wan", "latte")]
        lines.append(f"| {r['setting']} ({r['tokens_per_step']:,} tokens) | {r['precision']} | "
                     f"{r['ours_tokens_per_s']:,.0f} | {r['wan_tokens_per_s']:,.0f} | {r['latte_tokens_per_s']:,.0f} | "
                     f"{r['speedup_vs_wan']:.2f}x | {r['speedup_vs_fastest_peer']:.2f}x | "
                     f"{r['ours_gflop_per_step']:,.0f} | {r['wan_gflop_per_step']:,.0f} | {r['latte_gflop_per_step']:,.0f} | "
                     + " | ".join(pct) + " |")
    lines.append("")
    lines.append("mm peak GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items() if v))
    lines.append("parameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="timed steps per model in the anchor setting")
    ap.add_argument("--reps-long", type=int, default=3, help="timed steps per model in the long setting")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settings", default="anchor,long")
    ap.add_argument("--precisions", default=None,
                    help="fp32,bf16 by default; fp32 alone on a CPU that emulates bfloat16 (AVX2: a 4096^2 bf16 mm "
                         "there takes minutes, and the bf16 rows hours)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile each transformer block of every model (training's `compile: true`)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rss-probe", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--latte", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_probe:
        name, setting, precision = args.rss_probe.split(":")
        rss_probe(name, setting, precision, json.loads(args.latte))
        return {}
    import diffusers

    if args.precisions is None:
        from spacetime.pipeline import fast_bfloat16

        args.precisions = "fp32,bf16" if fast_bfloat16("cpu") else "fp32"
        if args.precisions == "fp32":
            print("this CPU emulates bfloat16 (no AVX-512/AMX): fp32 rows only; --precisions fp32,bf16 to force them",
                  file=sys.stderr)
    settings, precisions = args.settings.split(","), args.precisions.split(",")
    grid = SETTINGS["anchor"][1]
    n_ours = count_parameters(DiT(PRESETS["world"]))
    latte_cfg = latte_closest(n_ours, grid)
    counts = {"ours": n_ours, "wan": count_parameters(wan(grid)), "latte": count_parameters(latte(grid, **latte_cfg))}
    result: dict = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} threads, torch {torch.__version__}, "
                   f"diffusers {diffusers.__version__}, Python {platform.python_version()}",
        "command": "python bench/dit.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "parameters": counts,
        "parameter_ratio_to_ours": {k: round(v / n_ours, 4) for k, v in counts.items()},
        "latte_config": latte_cfg,
    }
    result["compiled"] = args.compile
    print(json.dumps(result), flush=True)
    peaks = {"fp32": mm_rate(torch.float32), "bf16": mm_rate(torch.bfloat16) if "bf16" in precisions else 0.0}
    rows = [speed(s, p, args.reps_long if s == "long" else args.reps, latte_cfg, peaks, args.compile)
            for s in settings for p in precisions]
    result["mm_peak_gflop_per_s"] = {k: round(v, 1) for k, v in peaks.items()}
    result["rows"] = rows
    if not args.skip_memory:
        result["peak_rss_mib"] = memory(settings, precisions, latte_cfg, args.threads)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    print(table(rows, peaks, counts))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
