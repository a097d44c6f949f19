"""How a VAE's decoder draws imprecise latents: held-out clips encoded, Gaussian noise of each level
added to their normalized latents (unit spread per channel, the DiT's space), decoded, saved as
`spacetime eval` saves a model's clips, and scored by its metrics. A DiT's latents are near the
encoder's, never on them; a decoder that turns small errors into objects that flicker or appear
from nowhere costs the model permanence it has learned.

    python bench/decoder_noise.py --vae src/spacetime/models/world/vae --vae runs/vae-decoder-noise/model \
        --noise 0 0.3 0.6 --num-clips 100 [--json out/decoder_noise.json]

Every VAE decodes the same clips with the same noise draws. Columns: each metric's mean, and how
many of permanence's vanishings fall between two latent frames (bench/eval_reasons.py --frames).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from eval_baselines import vae_round_trip  # bench/eval_baselines.py
from eval_reasons import latent_boundary_share, presence_steps  # bench/eval_reasons.py

from spacetime.eval import Sample, evaluate
from spacetime.eval.command import save_samples
from spacetime.vae import VideoVAE
from spacetime.world.clip import make_clip, stream_seed

METRICS = ("adherence", "motion", "permanence", "physics")


def noisy_round_trips(vae: VideoVAE, clips: list, noise: float, seed: int) -> list:
    """Each clip (T, H, W, 3 uint8) through `vae_round_trip` with `noise` x N(0, 1) on its normalized
    latents, the draws from one generator seeded `seed`, clip by clip."""
    g = torch.Generator().manual_seed(seed)
    return [vae_round_trip(vae, frames, noise, g) for frames in clips]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", type=Path, action="append", required=True, help="a VAE model folder (repeat to compare)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3, 0.6], help="noise levels, in latent spreads")
    ap.add_argument("--num-clips", type=int, default=100)
    ap.add_argument("--num-frames", type=int, default=17)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    if any(n < 0 for n in a.noise):
        ap.error(f"--noise: levels must be >= 0, got {a.noise}")
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    clips = [make_clip(stream_seed(a.seed, i, "heldout"), split="heldout", num_frames=a.num_frames, height=64,
                       width=64, fps=8) for i in range(a.num_clips)]
    prompts = [c.captions["detailed"] for c in clips]
    rows, references = [], None
    print("| VAE | noise | " + " | ".join(METRICS) + " | vanishings between latent frames |")
    print("| --- | --- |" + " --- |" * (len(METRICS) + 1))
    for path in a.vae:
        vae = VideoVAE.from_pretrained(path)
        factor = vae.config.temporal_factor
        for level in a.noise:
            frames = noisy_round_trips(vae, [c.frames for c in clips], level, a.seed)
            samples = [Sample(f"{i:06d}", p, f, 8.0) for i, (p, f) in enumerate(zip(prompts, frames))]
            with tempfile.TemporaryDirectory() as d:
                samples = list(save_samples(samples, Path(d), "detailed"))
            result = evaluate(samples, seed=a.seed, references=references, progress=False)
            references = result.references
            agg = result.aggregate()
            at, n, chance = latent_boundary_share(presence_steps(result.to_json()["clips"])["vanishes"],
                                                  a.num_frames, factor)
            row = {"vae": str(path), "noise": level, **{m: agg[m]["mean"] for m in METRICS},
                   "vanishings": n, "at_latent_boundaries": at, "chance": chance}
            rows.append(row)
            print(f"| {path} | {level:g} | " + " | ".join(f"{row[m]:.3f}" for m in METRICS)
                  + f" | {at} / {n} (chance {chance:.0%}) |", flush=True)
    out = {"command": "python bench/decoder_noise.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "num_clips": a.num_clips, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
