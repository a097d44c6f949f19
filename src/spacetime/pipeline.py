"""`SpacetimePipeline`: text -> video with a trained DiT, its VAE and its text encoder — the
diffusers shape, so users know it.

    pipe = SpacetimePipeline.from_pretrained("runs/dit-world/model")
    video = pipe("a red ball bounces off the left wall", num_frames=17, height=64, width=64,
                 num_inference_steps=25, guidance_scale=5.0,
                 generator=torch.Generator().manual_seed(0)).frames[0]   # uint8 (T, H, W, 3)
    spacetime.export_to_video(video, "out.mp4", fps=8)

A pipeline directory: `config.json` ({"format": "spacetime-pipeline", "dit": DiTConfig,
"text_encoder": "minilm" | a local path | "hash", "text_max_length", "defaults": {num_frames,
height, width, fps}}), `model.safetensors` (the DiT's EMA weights), `vae/` (a VAE model
directory) and `COMPLETE`, written last.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spacetime import flow, sampling
from spacetime.dit import DiT, DiTConfig
from spacetime.vae import VideoVAE

log = logging.getLogger(__name__)


def load_text_encoder(spec: str, max_length: int, device: str | torch.device = "cpu"):
    """"minilm": the shipped all-MiniLM-L6-v2; "hash" or "hash:DIM": the model-free test encoder;
    anything else: a local Hugging Face model directory."""
    from spacetime import text

    if spec == "minilm":
        return text.TextEncoder(max_length=max_length, device=device)
    if spec == "hash" or spec.startswith("hash:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 384
        return text.HashTextEncoder(dim=dim, max_length=max_length, device=device)
    return text.TextEncoder(path=spec, max_length=max_length, device=device)


@dataclass
class SpacetimePipelineOutput:
    frames: list[np.ndarray]  # one uint8 (T, H, W, 3) video per prompt
    timings: dict[str, float] = field(default_factory=dict)  # seconds: text, denoise, decode


class SpacetimePipeline:
    def __init__(self, dit: DiT, vae: VideoVAE, text_encoder, config: dict):
        self.dit, self.vae, self.text_encoder, self.config = dit.eval(), vae.eval(), text_encoder, config
        self.defaults = config.get("defaults", {})

    @classmethod
    def from_pretrained(cls, path: str | Path) -> SpacetimePipeline:
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"{path}: no such model directory")
        if not (path / "COMPLETE").is_file():
            raise ValueError(f"{path} is not a complete model directory (no COMPLETE marker); refusing to load it")
        config = json.loads((path / "config.json").read_text())
        if config.get("format") != "spacetime-pipeline":
            raise ValueError(f"{path}/config.json is not a spacetime text-to-video pipeline (format {config.get('format')!r})")
        dit = DiT(DiTConfig(**config["dit"]))
        dit.load_state_dict(load_file(path / "model.safetensors"))
        vae = VideoVAE.from_pretrained(path / "vae")
        text = load_text_encoder(config["text_encoder"], config["text_max_length"])
        return cls(dit, vae, text, config)

    def fit_size(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """The nearest size the model can make (1 + 4k frames, sides multiples of the latent patch
        in pixels), with a logged warning when that differs from what was asked, as diffusers does."""
        for name, v in (("num_frames", num_frames), ("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        ft = self.vae.config.temporal_factor * self.dit.config.patch[0]
        _, ph, pw = self.dit.config.patch
        mh, mw = self.vae.config.spatial_factor * ph, self.vae.config.spatial_factor * pw
        fitted = (1 + ft * math.floor((num_frames - 1) / ft + 0.5),
                  mh * max(1, math.floor(height / mh + 0.5)), mw * max(1, math.floor(width / mw + 0.5)))
        if fitted != (num_frames, height, width):
            log.warning("%d frames of %dx%d (WxH) do not fit the model (1 + %dk frames, sides multiples of %dx%d); "
                        "making %d frames of %dx%d", num_frames, width, height, ft, mw, mh, fitted[0], fitted[2], fitted[1])
        return fitted

    def check_size(self, num_frames: int, height: int, width: int) -> None:
        ft = self.vae.config.temporal_factor
        pt, ph, pw = self.dit.config.patch
        fs_h, fs_w = self.vae.config.spatial_factor * ph, self.vae.config.spatial_factor * pw
        if num_frames < 1 or (num_frames - 1) % (ft * pt):
            raise ValueError(f"num_frames must be 1 + {ft * pt}k (1, {1 + ft * pt}, {1 + 2 * ft * pt}, ...), got {num_frames}")
        if height < fs_h or height % fs_h or width < fs_w or width % fs_w:
            raise ValueError(f"height must be a multiple of {fs_h} and width of {fs_w}, got {height}x{width} (HxW)")

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 5.0,
        generator: torch.Generator | None = None,
        solver: str = "euler",
        progress: bool = False,
    ) -> SpacetimePipelineOutput:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        num_frames = self.defaults.get("num_frames", 17) if num_frames is None else num_frames
        height = self.defaults.get("height", 64) if height is None else height
        width = self.defaults.get("width", 64) if width is None else width
        num_frames, height, width = self.fit_size(num_frames, height, width)
        self.check_size(num_frames, height, width)
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        timings = {}
        t0 = time.perf_counter()
        text, mask = self.text_encoder.encode(prompts)
        neg_text = neg_mask = None
        if guidance_scale != 1.0:
            negatives = [""] * len(prompts) if negative_prompt is None else (
                [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt))
            neg_text, neg_mask = self.text_encoder.encode(negatives)
        timings["text"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        c, t, h, w = self.vae.latent_shape(num_frames, height, width)
        pt, ph, pw = self.dit.config.patch
        shift = flow.resolution_shift(t * h * w // (pt * ph * pw))
        noise = torch.randn((len(prompts), c, t, h, w), generator=generator)
        latents = sampling.sample(self.dit, noise, text, mask, num_steps=num_inference_steps,
                                  guidance_scale=guidance_scale, negative_text=neg_text, negative_mask=neg_mask,
                                  solver=solver, shift=shift, progress=progress)
        timings["denoise"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        video = self.vae.decode(latents)  # (B, 3, T, H, W) in [-1, 1]
        frames = ((video.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        timings["decode"] = time.perf_counter() - t0
        return SpacetimePipelineOutput(frames=list(frames), timings=timings)


__all__ = ["SpacetimePipeline", "SpacetimePipelineOutput", "load_text_encoder"]
