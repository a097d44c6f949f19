"""A disk cache of VAE latents for training on a folder of videos: each clip is decoded and
encoded once, then read back as a few kilobytes of safetensors.

A cached clip is keyed by what determines it: the VAE's weights (a digest of model.safetensors),
the video file (path, size, modification time), its entry in the captions file (the window is drawn
per entry: a video named twice is two samples, two entries here) and the clip settings (frames, fps,
frame size, seed, window variant). Change any of them and the entry is simply not found; stale files are
never read. `variants` windows are drawn per video (epoch e uses window e % variants), so a long
run still sees several parts of each video. Writes are atomic: an interrupted run leaves no
half-written entry. Nothing here unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from spacetime.atomic import atomic_path


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class LatentCache:
    def __init__(self, directory: str | os.PathLike, vae_dir: str | os.PathLike, settings: dict):
        self.directory = Path(directory)  # made by the first put: a failed start leaves no folder behind
        self.identity = json.dumps({"vae": file_digest(Path(vae_dir) / "model.safetensors"), **settings}, sort_keys=True)
        self.hits = self.misses = 0

    def key(self, video_path: str | os.PathLike, entry: int, variant: int) -> str:
        st = os.stat(video_path)
        ident = f"{self.identity}|{os.path.abspath(video_path)}|{st.st_size}|{st.st_mtime_ns}|{entry}|{variant}"
        return hashlib.sha256(ident.encode()).hexdigest()[:32]

    def get(self, video_path: str | os.PathLike, entry: int, variant: int) -> torch.Tensor | None:
        """The latents of captions entry `entry` (naming `video_path`), window `variant`, or None."""
        path = self.directory / f"{self.key(video_path, entry, variant)}.safetensors"
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        return load_file(path)["latents"]

    def put(self, video_path: str | os.PathLike, entry: int, variant: int, latents: torch.Tensor) -> None:
        with atomic_path(self.directory / f"{self.key(video_path, entry, variant)}.safetensors") as tmp:
            save_file({"latents": latents.contiguous()}, tmp)
