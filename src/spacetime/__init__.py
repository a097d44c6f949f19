"""spacetime: Sora's recipe — a video VAE, spacetime latent patches and a text-conditioned
Diffusion Transformer — that trains from zero on one machine and runs on a laptop CPU."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "export_to_video", "read_video", "write_video"]


def __getattr__(name: str):
    # Lazy, so `import spacetime` (and the CLI's start-up) does not load PyAV or torch.
    if name in ("export_to_video", "read_video", "write_video"):
        from spacetime.data import video

        return getattr(video, name)
    raise AttributeError(f"module 'spacetime' has no attribute {name!r}")
