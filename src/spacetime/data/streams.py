"""Training data as streams the training loops index: a run resumes at sample i with nothing but i.

`video_batches` feeds the VAE; `dit_items` feeds the DiT — world clips rendered on the fly (at
several sizes for native-size training), or a folder of videos whose clips are encoded once and
kept in a latent cache (`data.cache`). With `data.num_workers`, DataLoader workers render or
decode the samples, and the stream is the same sample for sample.
"""

from __future__ import annotations

import collections
import copy
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spacetime.data.decode import VideoReadError
from spacetime.data.video import MIN_FPS
from spacetime.vae import VideoVAE
from spacetime.world.dataset import rank_and_world

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    source: str = "world"  # "world": rendered on the fly; "folder": a folder of videos + captions
    path: str | None = None  # the folder, for source "folder"
    split: str = "train"
    num_frames: int = 17
    height: int = 64
    width: int = 64
    fps: float = 8.0
    seed: int = 0
    num_workers: int = 0
    # world data: the share of clips cut into 2-3 shots (wide, close-up, reverse angle; captions
    # tell the cuts), docs/multishot.md. 0 keeps the single-shot stream bit for bit.
    multishot: float = 0.0
    # folder data, DiT training: keep each video's own size (centre-cropped to a multiple of
    # 16, the latent patch grid) instead of scaling to height x width; Sora trains at native size
    native_size: bool = False
    # folder data, DiT training: encode each clip once and keep its latents in run_dir/cache
    # (`cache_variants` clip windows per video, epoch e reads window e % cache_variants)
    cache_latents: bool = True
    cache_variants: int = 4
    # folder data: broken videos are skipped and counted; more than this share of them stops the run
    max_bad_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.source not in ("world", "folder"):
            raise ValueError(f"data.source must be 'world' or 'folder', got {self.source!r}")
        if self.source == "folder" and not self.path:
            raise ValueError("data.path is required when data.source is 'folder'")
        if self.path:  # "~/videos" in a YAML config, or --data.path=~/videos, which the shell leaves as is
            self.path = os.path.expanduser(self.path)
        if self.source == "folder" and not Path(self.path).is_dir():
            why = ("a file, not a folder of videos (a captions file goes in the folder as captions.jsonl or .csv)"
                   if Path(self.path).exists() else "no such directory")
            raise ValueError(f"data.path {self.path}: {why}")
        if not 0.0 <= self.multishot <= 1.0:
            raise ValueError(f"data.multishot is a share of clips in [0, 1], got {self.multishot!r}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0 (0: load in the training process), got {self.num_workers}")
        if not MIN_FPS <= self.fps <= 1000:  # NaN fails this too
            raise ValueError(f"data.fps must be in [{MIN_FPS}, 1000], got {self.fps!r}")
        for name in ("num_frames", "height", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")


def video_batches(data: DataConfig, batch_size: int, start: int) -> Iterator[torch.Tensor]:
    """Batches (B, 3, T, H, W) in [-1, 1], from sample index `start` of the run's data stream: this
    rank's next `batch_size` samples in stream order, however many loader workers render them. A
    folder that cannot be read (no captions file, no video) is an error here, not at the first batch."""
    if data.source == "world":
        from spacetime.world.dataset import WorldDataset

        ds = WorldDataset(data.seed, data.split, data.num_frames, data.height, data.width, data.fps, start=start,
                          multishot=data.multishot)
        videos = (item["video"] for item in _world_items(ds, data.num_workers))
    else:
        from spacetime.data.folder import FolderVideoDataset

        ds = FolderVideoDataset(data.path, data.num_frames, data.fps, (data.height, data.width), seed=data.seed,
                                max_bad_fraction=data.max_bad_fraction)
        stream = _folder_stream(len(ds), data.seed, start)  # (epoch, index): another clip window each epoch
        videos = (item["video"] for item in _read(_FolderReader(ds), ds, stream, data.num_workers))
    # stacked here, not by a batching loader: each worker would build whole batches from its own
    # shard, and the samples consumed would be the stream's order only every num_workers batches
    return (torch.stack(list(itertools.islice(videos, batch_size))) for _ in itertools.count())


def _world_items(ds, num_workers: int) -> Iterator[dict]:
    """A WorldDataset's items in this rank's stream order, rendered here or by loader workers."""
    if num_workers == 0:
        yield from iter(ds)
        return
    # workers render chunks of the stream round-robin and the loader reads them in turn: the
    # same order as one process, one shared-memory buffer per chunk
    from spacetime.world.dataset import WorldChunks, unchunk

    loader = torch.utils.data.DataLoader(WorldChunks(ds), batch_size=None, num_workers=num_workers, prefetch_factor=4)
    for chunk in loader:
        yield from unchunk(chunk)


def _folder_stream(n: int, seed: int, start: int) -> Iterator[tuple[int, int]]:
    """(epoch, item) of this rank's samples of a folder of n items, from stream sample `start`:
    sample i is item perm_e[i % n] of epoch e = i // n (resumable at any i); rank r reads
    samples r, r + world, ..."""
    rank, world = rank_and_world()
    i = start + rank
    while True:
        epoch, k = divmod(i, n)
        yield epoch, int(np.random.default_rng([seed, epoch]).permutation(n)[k])
        i += world


class _FolderReader(torch.utils.data.Dataset):
    """Decodes clips of a folder for the training streams, here or in a loader worker: (window,
    index) -> the FolderVideoDataset's item, with `passed`: the entries it skipped on the way, as
    broken or (`min_side`) too small, a neighbour standing in. It reads a quiet copy of the dataset,
    so each worker's own record of broken videos spares it decoding them again, and `_merge` tells
    the training process's dataset, which warns and stops as if it had read the item itself."""

    def __init__(self, ds, min_side: int = 0):
        self.ds, self.min_side = copy.copy(ds), min_side
        self.ds.broken, self.ds.unreadable, self.ds.quiet = {}, set(), True

    def __getitem__(self, task: tuple[int, int] | None) -> dict | None:
        if task is None:  # a sample read from the latent cache: nothing to decode
            return None
        window, index = task
        ds, n = self.ds, len(self.ds)
        ds.set_epoch(window)  # another clip window of each video every epoch
        try:
            item = ds[index]
            while min(item["video"].shape[-2:]) < self.min_side:
                h, w = item["video"].shape[-2:]
                ds.broken[item["path"]] = f"{item['path']}: {w}x{h} (native size, cropped) is under one 16x16 latent patch"
                item = ds[index]
            end = index + (item["index"] - index) % n
        except VideoReadError:  # none left: every entry was passed over
            item, end = {"index": index}, index + n
        paths = [str(ds.entries[i % n]["path"]) for i in range(index, end)]
        item["passed"] = [(p, ds.broken[p], p in ds.unreadable) for p in paths]
        return item


def _read(reader: _FolderReader, ds, tasks: Iterator, num_workers: int) -> Iterator[dict | None]:
    """The reader's items for `tasks`, in order, read here or by loader workers, merged into `ds`.
    The loader hands the workers the tasks as it goes, at most 2 a worker ahead of the training
    loop, and gives back their items in the tasks' order."""
    if num_workers == 0:
        items = map(reader.__getitem__, tasks)
    else:
        items = torch.utils.data.DataLoader(reader, batch_size=None, sampler=tasks, num_workers=num_workers,
                                            prefetch_factor=2)
    for item in items:
        yield None if item is None else _merge(ds, item)


def _merge(ds, item: dict) -> dict:
    """Tells the training process's dataset of the videos a reader passed over for `item`: it warns
    of each once and stops past max_bad_fraction, at the sample it would have reading it itself
    (a reader's scan passes the same entries whoever reads, in the same order)."""
    for path, reason, unreadable in item.pop("passed"):
        if path in ds.broken:
            continue
        if unreadable:
            ds.skip(path, reason)
        else:
            ds.broken[path] = reason
            log.warning("skipping a video too small to train on: %s", reason)
    if "video" not in item:
        raise ds.none_left()
    return item


def dit_items(
    data: DataConfig,
    start: int,
    vae: VideoVAE,
    *,
    sizes: list | None = None,
    vae_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Iterator[dict]:
    """Training items from sample index `start` of the run's stream: {video (3, T, H, W), caption}
    or, from the latent cache in `cache_dir` (folder data), {latents (C, t, h, w), caption}.
    `sizes`: world clips drawn among these (frames, height, width). A folder that cannot be read
    (no captions file, no video) is an error here, not at the first item."""
    if data.source == "world":
        from spacetime.world.dataset import WorldDataset

        sizes = [tuple(s) for s in sizes or []] or None
        ds = WorldDataset(data.seed, data.split, data.num_frames, data.height, data.width, data.fps, start=start, sizes=sizes,
                          multishot=data.multishot)
        return _world_items(ds, data.num_workers)
    from spacetime.data.cache import LatentCache
    from spacetime.data.folder import FolderVideoDataset

    size = None if data.native_size else (data.height, data.width)
    ds = FolderVideoDataset(data.path, data.num_frames, data.fps, size, seed=data.seed,
                            max_bad_fraction=data.max_bad_fraction)
    cache = None
    if data.cache_latents and cache_dir is not None and vae_dir is not None:
        settings = {"num_frames": data.num_frames, "fps": data.fps, "size": size, "seed": data.seed}
        cache = LatentCache(cache_dir, vae_dir, settings)
    return _folder_items(ds, data, start, vae, cache)


def _folder_items(ds, data: DataConfig, start: int, vae: VideoVAE, cache) -> Iterator[dict]:
    reader = _FolderReader(ds, min_side=16)  # (native size) under one latent patch: nothing to train on
    # (epoch, index, window variant, cached latents, again) of the samples handed to the reader, in order
    plan: collections.deque = collections.deque()

    def cached(index: int, variant: int) -> torch.Tensor | None:
        try:  # keyed by the entry too: a video named twice is two samples, with two windows
            return None if cache is None else cache.get(ds.entries[index]["path"], index, variant)
        except OSError:  # gone or unreadable since the run began: the reader skips it as broken
            return None

    def tasks() -> Iterator[tuple[int, int] | None]:  # run by the loader, ahead of the loop below
        for epoch, index in _folder_stream(len(ds), data.seed, start):
            variant = epoch % max(1, data.cache_variants) if cache is not None else epoch
            # a clip that a sample still in flight decodes is looked up again in its turn, when
            # that one has cached it: read from the cache, as without workers, not decoded twice
            again = cache is not None and any(p[1:3] == (index, variant) and p[3] is None for p in plan)
            z = None if again else cached(index, variant)
            plan.append((epoch, index, variant, z, again))
            yield None if z is not None or again else (variant, index)

    for item in _read(reader, ds, tasks(), data.num_workers):
        epoch, index, variant, z, again = plan.popleft()
        if again and (z := cached(index, variant)) is None:  # that one was a stand-in, not cached
            item = _merge(ds, reader[variant, index])
        if z is not None:
            yield {"latents": z, "caption": caption_of(ds, data.seed, epoch, index)}
            continue
        # a broken video's neighbour stands in for it: its own caption goes with it, and every
        # sample fills its slot of the stream (a resumed run reads what a straight one does)
        caption = caption_of(ds, data.seed, epoch, item["index"])
        h, w = item["video"].shape[-2:]
        top, left = (h % 16) // 2, (w % 16) // 2
        video = item["video"][..., top : top + h - h % 16, left : left + w - w % 16]  # the latent patch grid
        if cache is None:
            yield {"video": video, "caption": caption}
            continue
        z = encode_videos(vae, [video])[0]
        if item["index"] == index:  # not a stand-in for a broken video
            cache.put(item["path"], index, variant, z)
        yield {"latents": z, "caption": caption}


def caption_of(ds, seed: int, epoch: int, index: int) -> str:
    """Re-captioning: one of the video's caption lengths, drawn per (epoch, video), cached or not."""
    captions = ds.entries[index]["captions"]
    return captions[sorted(captions)[int(np.random.default_rng([seed, epoch, index, 1]).integers(len(captions)))]]


@torch.no_grad()
def encode_videos(vae: VideoVAE, videos: list[torch.Tensor]) -> list[torch.Tensor]:
    """Normalized latents (C, t, h, w) of (3, T, H, W) videos, batched by size."""
    out: list[torch.Tensor | None] = [None] * len(videos)
    by_size: dict[tuple, list[int]] = {}
    for i, v in enumerate(videos):
        by_size.setdefault(tuple(v.shape), []).append(i)

    for idx in by_size.values():
        batch = torch.stack([videos[i] for i in idx])
        # temporal chunks bound memory on CPUs; on a GPU they only cost time (~2x, docs/benchmarks.md)
        z = vae.encode(batch, chunk=None if batch.is_cuda else 4)
        for i, zi in zip(idx, z):
            out[i] = zi
    return out  # type: ignore[return-value]
