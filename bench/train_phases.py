"""Where a DiT training step's time goes on one device, phase by phase, at a GPU-sized batch.

    python bench/train_phases.py [--device cuda] [--batch 128] [--text minilm|DIR|shape:DIR] [--json out.json]
        [--vae DIR] [--patch 1,2,2 1,4,4 ...]

Each phase is timed alone (synchronized, after warm-ups), on the world's own clips and captions:
rendering (one process), the shipped VAE's encoding (fp32 as training runs it, bf16 autocast, and
without temporal chunks), text encoding (tokenizer + encoder), and the DiT step itself (loss,
backward, AdamW, bf16 autocast) of the `world` preset on a batch of mixed sizes: the same batch
each call, and a new draw from a pool of twice the batch each call — training's case, where the
number of clips of each size and the longest caption change every step — with PyTorch's default
attention kernels and, on a GPU, without cuDNN's (training's choice: `attention_for_changing_shapes`
in spacetime.train). `--text shape:DIR`
builds the encoder from DIR's config and tokenizer with random weights — the same speed, for
machines that do not carry the weights. `--vae DIR` encodes with another VAE (the factor-4 one, say)
and `--patch` times the DiT step at each patch given, in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import random
import time
from pathlib import Path

import torch

from spacetime.config import load_config
from spacetime.data.streams import encode_videos
from spacetime.dit import PRESETS, DiT
from spacetime.pipeline import DEFAULT_MODEL, load_text_encoder
from spacetime.train import TrainDiTConfig, attention_for_changing_shapes, flow_step_loss, sample_generators
from spacetime.vae import VideoVAE
from spacetime.world.dataset import WorldDataset

# the GPU runs' size mix, as bench/train_default_gpu.sh trains it
SIZES = [tuple(s) for s in load_config(TrainDiTConfig, Path(__file__).parent.parent / "configs" / "dit-world-gpu.yaml").sizes]


def timed(fn, device: torch.device, repeats: int) -> float:
    """Seconds per call: the median of `repeats` synchronized calls after two warm-ups."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def random_weights_copy(src: Path, dest: Path) -> Path:
    """dest: the model of src's config and tokenizer, at random weights (src's weights unread)."""
    from transformers import AutoConfig, AutoModel

    dest.mkdir(parents=True, exist_ok=True)
    AutoModel.from_config(AutoConfig.from_pretrained(src)).save_pretrained(dest)
    for f in src.iterdir():
        if f.suffix in (".json", ".txt") and f.name != "config.json":
            (dest / f.name).write_bytes(f.read_bytes())
    return dest


def text_encoder(spec: str, max_length: int, device: torch.device):
    if spec.startswith("shape:"):  # the architecture and tokenizer of DIR, random weights
        import tempfile

        spec = str(random_weights_copy(Path(spec[len("shape:"):]), Path(tempfile.mkdtemp())))
    return load_text_encoder(spec, max_length, device=device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--text", default="minilm")
    ap.add_argument("--text-max-length", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--vae", type=Path, default=DEFAULT_MODEL / "vae")
    ap.add_argument("--patch", nargs="+", default=["1,2,2"], help="DiT patches to time, each pt,ph,pw")
    args = ap.parse_args()
    device = torch.device(args.device)
    out: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                 "batch": args.batch, "torch": torch.__version__}

    ds = WorldDataset(seed=0, split="train", sizes=SIZES, multishot=0.15)
    t0 = time.perf_counter()
    items = [ds.sample(i) for i in range(args.batch)]
    out["render_ms_per_clip_one_process"] = 1e3 * (time.perf_counter() - t0) / args.batch
    pool = items + [ds.sample(args.batch + i) for i in range(args.batch)]
    videos = [b["video"].to(device) for b in items]
    prompts = [b["caption"] for b in items]

    patches = [tuple(int(v) for v in p.split(",")) for p in args.patch]
    if any(len(p) != 3 for p in patches):
        raise SystemExit(f"--patch: each patch is pt,ph,pw, got {args.patch}")
    vae = VideoVAE.from_pretrained(args.vae).to(device).eval()
    out["vae"] = str(args.vae)
    bf16 = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    variants = {"fp32": (contextlib.nullcontext, 4), "bf16": (bf16, 4), "fp32_unchunked": (contextlib.nullcontext, None),
                "bf16_unchunked": (bf16, None)}
    out["vae_encode_ms"] = {}
    for name, (ctx, chunk) in variants.items():
        def encode(ctx=ctx, chunk=chunk):
            with torch.no_grad(), ctx():
                by_size: dict = {}
                for v in videos:
                    by_size.setdefault(tuple(v.shape), []).append(v)
                return [vae.encode(torch.stack(vs), chunk=chunk) for vs in by_size.values()]
        out["vae_encode_ms"][name] = 1e3 * timed(encode, device, args.repeats)
        print(name, out["vae_encode_ms"][name], flush=True)
    with torch.no_grad():
        latents = encode_videos(vae, videos)

    text = text_encoder(args.text, args.text_max_length, device)
    n = [0]

    def encode_text():  # fresh prompts each call: the training stream never repeats a caption
        n[0] += 1
        return text.encode([f"{p} {n[0]}" for p in prompts])
    out["text_encode_ms"] = 1e3 * timed(encode_text, device, args.repeats)
    emb, mask = text.encode(prompts)
    print("text", out["text_encode_ms"], flush=True)

    with torch.no_grad():
        pool_latents = encode_videos(vae, [b["video"].to(device) for b in pool])
    pool_emb, pool_mask = text.encode([b["caption"] for b in pool])
    for patch in patches:
        model = DiT(dataclasses.replace(PRESETS["world"], patch=patch)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

        def dit_step(latents, emb, mask, indices, model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            gens = sample_generators(0, indices)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = flow_step_loss(model, latents, emb, mask, gens, condition_prob=0.25)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        # the first patch's figures keep the keys earlier runs wrote; the others are suffixed
        key = "" if patch == patches[0] else "_patch_" + "x".join(map(str, patch))
        out["dit_step_ms" + key] = 1e3 * timed(lambda: dit_step(latents, emb, mask, list(range(len(latents)))),
                                               device, args.repeats)
        print("dit step, one batch, patch", patch, out["dit_step_ms" + key], flush=True)
        draw = random.Random(0)

        def changing_step(draw=draw, dit_step=dit_step):
            idx = sorted(draw.sample(range(len(pool)), args.batch))  # stream order: sizes interleaved
            dit_step([pool_latents[i] for i in idx], pool_emb[idx], pool_mask[idx], idx)
        changing = out["dit_step_ms_changing_batch" + key] = {
            "default_kernels": 1e3 * timed(changing_step, device, args.repeats)}
        if device.type == "cuda":
            was = torch.backends.cuda.cudnn_sdp_enabled()
            attention_for_changing_shapes(device)  # what training does
            changing["no_cudnn_attention"] = 1e3 * timed(changing_step, device, args.repeats)
            torch.backends.cuda.enable_cudnn_sdp(was)
        print("dit step, changing batch, patch", patch, changing, flush=True)
        out["tokens_per_step" + key] = sum(math.prod(model.token_grid(z.shape[1:])) for z in latents)
        del model, opt
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
