"""Benchmark the video VAE: quality on held-out world clips, speed against diffusers' Wan VAE at an
equal parameter count, and memory as duration grows.

    pip install -e ".[bench]"          # diffusers, for the speed comparison only
    python bench/vae.py --model runs/vae-world/model [--clips 64] [--json out.json]

Quality: PSNR and SSIM (Gaussian 11x11, sigma 1.5, per frame and channel) of encode -> decode
(posterior mean) on held-out world clips, 64x64, 17 frames. Speed: encode+decode of one
1x3x17x64x64 clip, median of 5 after a warm-up, our VAE (random init, the model's config) vs
`AutoencoderKLWan` built from a config whose parameter count is closest to ours (random init).
Memory: peak RSS of a fresh process that encodes and decodes 17 and 257 frames (chunked).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from spacetime.vae import VAEConfig, VideoVAE, count_parameters


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of videos (B, 3, T, H, W) in [-1, 1], frame by frame."""
    x = ((a.clamp(-1, 1) + 1) / 2).transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W) in [0, 1]
    y = ((b.clamp(-1, 1) + 1) / 2).transpose(1, 2).flatten(0, 1)
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).to(x)
    win = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    mu_x, mu_y = F.conv2d(x, win, groups=3), F.conv2d(y, win, groups=3)
    sxx = F.conv2d(x * x, win, groups=3) - mu_x**2
    syy = F.conv2d(y * y, win, groups=3) - mu_y**2
    sxy = F.conv2d(x * y, win, groups=3) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def quality(model: VideoVAE, clips: int, batch: int = 8) -> dict:
    from spacetime.world.dataset import WorldDataset

    ds = WorldDataset(seed=0, split="heldout", num_frames=17, height=64, width=64)
    mses, ssims = [], []
    for start in range(0, clips, batch):
        video = torch.stack([ds.sample(i)["video"] for i in range(start, min(clips, start + batch))])
        recon = model.decode(model.encode(video))
        mses += ((recon - video) ** 2).mean((1, 2, 3, 4)).tolist()
        ssims.append(ssim(recon, video) * video.shape[0])
    psnrs = [10 * torch.log10(torch.tensor(4.0 / m)).item() for m in mses]
    # chunked and tiled paths against the whole-clip one, on a wider held-out clip
    wide = WorldDataset(seed=0, split="heldout", num_frames=33, height=64, width=96).sample(0)["video"][None]
    z = model.encode(wide, chunk=None)
    whole = model.decode(z, chunk=None)
    mse_chunk = F.mse_loss(model.decode(model.encode(wide, chunk=2), chunk=2), whole).item()
    mse_tile = F.mse_loss(model.decode(model.encode(wide, tile=32), tile=32), whole).item()
    return {"clips": clips, "psnr_db_mean": round(statistics.mean(psnrs), 2), "psnr_db_min": round(min(psnrs), 2),
            "ssim_mean": round(sum(ssims) / clips, 4),
            "chunked_vs_whole_max_abs": round((model.decode(model.encode(wide, chunk=2), chunk=2) - whole).abs().max().item(), 7),
            "chunked_vs_whole_psnr_db": round(10 * math.log10(4 / max(mse_chunk, 1e-20)), 1),
            "tiled32_vs_whole_psnr_db": round(10 * math.log10(4 / max(mse_tile, 1e-20)), 1)}


def _time(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(cfg: VAEConfig, threads: int) -> dict:
    from diffusers import AutoencoderKLWan

    torch.set_num_threads(threads)
    ours = VideoVAE(cfg).eval()
    n_ours = count_parameters(ours)
    best = None
    for base in range(4, 33):
        for blocks in (1, 2):
            n = count_parameters(AutoencoderKLWan(base_dim=base, num_res_blocks=blocks))
            if best is None or abs(n - n_ours) < abs(best[0] - n_ours):
                best = (n, base, blocks)
    wan = AutoencoderKLWan(base_dim=best[1], num_res_blocks=best[2]).eval()
    x = torch.rand(1, 3, 17, 64, 64) * 2 - 1
    with torch.no_grad():
        t_ours = _time(lambda: ours.decode(ours.encode(x, chunk=None), chunk=None))
        t_chunked = _time(lambda: ours.decode(ours.encode(x)))
        t_wan = _time(lambda: wan.decode(wan.encode(x).latent_dist.mode()).sample)
    return {"threads": threads, "ours_params": n_ours, "wan_params": best[0],
            "wan_config": {"base_dim": best[1], "num_res_blocks": best[2]},
            "ours_s": round(t_ours, 4), "ours_chunked_s": round(t_chunked, 4), "wan_s": round(t_wan, 4),
            "speedup": round(t_wan / t_ours, 2)}


def rss_probe(cfg: VAEConfig, frames: int) -> None:
    """In a fresh process: encode and decode `frames` frames, print peak RSS in MiB."""
    torch.set_num_threads(2)
    model = VideoVAE(cfg).eval()
    x = torch.rand(1, 3, frames, 64, 64) * 2 - 1
    with torch.no_grad():
        y = model.decode(model.encode(x))
    assert y.shape == x.shape
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def memory(cfg_json: str) -> dict:
    out = {}
    for frames in (17, 257):
        r = subprocess.run([sys.executable, __file__, "--rss-probe", str(frames), "--config-json", cfg_json],
                           capture_output=True, text=True, check=True)
        out[f"peak_rss_mib_{frames}"] = round(float(r.stdout.strip().splitlines()[-1]), 1)
    out["ratio_257_over_17"] = round(out["peak_rss_mib_257"] / out["peak_rss_mib_17"], 3)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a trained model directory (for quality)")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--rss-probe", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--config-json", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_probe:
        rss_probe(VAEConfig(**json.loads(args.config_json)), args.rss_probe)
        return {}
    result: dict = {}
    if args.model:
        model = VideoVAE.from_pretrained(args.model)
        cfg = model.config
        result["quality_heldout"] = quality(model, args.clips)
        metrics = args.model.parent / "metrics.jsonl"
        if metrics.exists():
            last = json.loads(metrics.read_text().splitlines()[-1])
            result["training"] = {"steps": last["step"], "wall_s": round(last["time_s"], 1)}
    else:
        cfg = VAEConfig()
    result["memory"] = memory(json.dumps(cfg.to_dict()))
    if not args.skip_speed:
        result["speed"] = [speed(cfg, t) for t in (1, 2)]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
