"""The tiny random pipeline the tests serve and sample (tests/conftest.py) and bench/serve_load.py
loads when given no model: one definition, so the load test measures the model the tests use."""

from pathlib import Path

import torch

from spacetime.checkpoint import save_model
from spacetime.data.video import frames_to_tensor
from spacetime.dit import DiT, DiTConfig
from spacetime.vae import PRESETS, VideoVAE
from spacetime.world.clip import make_clip


def make_tiny_pipeline(root: Path) -> Path:
    """A complete pipeline directory under `root` (tiny VAE, 1-block DiT, the hash text encoder):
    5 frames of 32x32 at 8 fps by default, a fraction of a second a video on a CPU."""
    torch.manual_seed(0)
    vae = VideoVAE(PRESETS["tiny"]).eval()
    clips = torch.stack([frames_to_tensor(make_clip(s, num_frames=5, height=32, width=32).frames) for s in range(3)])
    vae.fit_latent_stats([clips])  # unit-scale latents, as a trained VAE's are
    vae_dir = save_model(root / "vae", {"model": vae.config.to_dict()}, vae)
    dit = DiT(DiTConfig(in_channels=16, hidden=32, depth=1, heads=2, text_dim=32))
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    cfg = {"format": "spacetime-pipeline", "dit": dit.config.to_dict(), "text_encoder": "hash:32", "text_max_length": 16,
           "defaults": {"num_frames": 5, "height": 32, "width": 32, "fps": 8.0}}
    return save_model(root / "model", cfg, dit, subdirs={"vae": vae_dir})
