"""The world as training data: an infinite, seedable torch dataset rendered on the fly, and
`write_world`, which renders the same stream to a folder (MP4s + captions.jsonl + ground truth),
the folder format users' own data uses.

Clip i of a stream is a pure function of (seed, split, i), so every DataLoader worker and every
rank renders a disjoint slice of one stream, and resuming at sample i needs nothing but i.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from spacetime.atomic import atomic_write_text
from spacetime.world.clip import Clip, can_cut, check_clip_args, make_clip, stream_seed
from spacetime.world.scene import SPLITS

log = logging.getLogger(__name__)

CAPTION_LENGTHS = ("short", "medium", "detailed")
# Training draws among the three caption lengths (Sora's re-captioning): mostly the long ones, so
# the model learns the detailed style that `expand_prompt` produces at sampling time.
CAPTION_WEIGHTS = (0.2, 0.3, 0.5)
CLIP_FILE = re.compile(r"(\d{6})\.(mp4|json)")  # how write_world names a clip's files


def pick_caption(captions: dict[str, str], rng: np.random.Generator, mode: str = "random") -> str:
    if mode == "random":
        return captions[str(rng.choice(CAPTION_LENGTHS, p=CAPTION_WEIGHTS))]
    if mode not in CAPTION_LENGTHS:
        raise ValueError(f"caption must be 'random' or one of {CAPTION_LENGTHS}, got {mode!r}")
    return captions[mode]


class WorldDataset(IterableDataset):
    """Endless world clips: dicts with `video` float (3, T, H, W) in [-1, 1], `caption`, `index`.

    Sharded across torch.distributed ranks and DataLoader workers round-robin over the stream
    index, so no clip repeats or is skipped across them. `start` resumes the stream at an index.
    `sizes`, a list of (num_frames, height, width): each clip is rendered at one of them, drawn
    from (seed, index) — native-size training with several durations and aspect ratios (batches
    then hold mixed sizes: iterate items, not a default-collated DataLoader).
    `multishot`: the share of clips cut into 2 or 3 shots (docs/multishot.md), drawn from (seed,
    index) apart from the scene, so at 0 (the default) the stream is the single-shot one, bit for
    bit; clips too short for a cut (under 9 frames) stay single-shot.
    """

    def __init__(
        self,
        seed: int = 0,
        split: str = "train",
        num_frames: int = 17,
        height: int = 64,
        width: int = 64,
        fps: float = 8.0,
        caption: str = "random",
        start: int = 0,
        sizes: list[tuple[int, int, int]] | None = None,
        multishot: float = 0.0,
    ):
        check_clip_args(num_frames, height, width, fps)
        # a negative seed or start was numpy's "expected non-negative integer" at the first clip (in
        # a DataLoader worker), naming neither; a float seed was truncated to another stream
        for name, v in (("seed", seed), ("start", start)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if not 0.0 <= multishot <= 1.0:
            raise ValueError(f"multishot is the share of multi-shot clips, in [0, 1]; got {multishot!r}")
        self.multishot = float(multishot)
        self.sizes = [tuple(int(v) for v in s) for s in sizes] if sizes else None
        for size in self.sizes or []:
            if len(size) != 3:
                raise ValueError(f"sizes must be (num_frames, height, width) triples, got {size!r}")
            check_clip_args(size[0], size[1], size[2], fps)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if caption != "random" and caption not in CAPTION_LENGTHS:
            raise ValueError(f"caption must be 'random' or one of {CAPTION_LENGTHS}, got {caption!r}")
        self.seed, self.split, self.caption, self.start = int(seed), split, caption, int(start)
        self.num_frames, self.height, self.width, self.fps = num_frames, height, width, fps

    def clip(self, index: int) -> Clip:
        """Clip `index` of the stream, with its ground truth."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"index must be a non-negative integer (a clip of the stream), got {index!r}")
        clip_seed = stream_seed(self.seed, index, self.split)
        t, h, w = self.num_frames, self.height, self.width
        if self.sizes:
            t, h, w = self.sizes[int(np.random.default_rng([clip_seed, 2]).integers(len(self.sizes)))]
        multishot = self.multishot > 0 and can_cut(t) and np.random.default_rng([clip_seed, 3]).random() < self.multishot
        return make_clip(clip_seed, num_frames=t, height=h, width=w, fps=self.fps, split=self.split, multishot=multishot)

    def render(self, index: int) -> tuple[np.ndarray, str]:
        """Clip `index` of the stream: uint8 frames (T, H, W, 3) and its caption."""
        clip = self.clip(index)
        clip_seed = clip.seed
        rng = np.random.default_rng([clip_seed, 1])  # caption choice: independent of the scene's draws
        return clip.frames, pick_caption(clip.captions, rng, self.caption)

    def sample(self, index: int) -> dict:
        frames, caption = self.render(index)
        video = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0  # (3, T, H, W)
        return {"video": video, "caption": caption, "index": index}

    def __iter__(self) -> Iterator[dict]:
        rank, world, worker, workers = _shard()
        # worker-major: rank r's workers, read in turn, yield r, r + world, r + 2 world, ... —
        # the rank's share of the stream in order, however many workers it has
        shard, shards = worker * world + rank, world * workers
        for index in itertools.count(self.start + shard, shards):
            yield self.sample(index)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the calling process: (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _shard() -> tuple[int, int, int, int]:
    """(rank, world size, DataLoader worker, workers) of the calling process."""
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return (*rank_and_world(), worker, workers)


class WorldChunks(IterableDataset):
    """A WorldDataset's stream for DataLoader workers, `chunk` clips at a time: worker w renders
    this rank's chunks w, w + workers, ... and sends each as one buffer, so the loader moves one
    shared-memory tensor per chunk instead of one per clip. Read in turn, the chunks are this rank's share of the stream in order; `unchunk`
    gives back WorldDataset's items."""

    def __init__(self, dataset: WorldDataset, chunk: int = 16):
        # 0 or less was numpy's "need at least one array to concatenate" in a worker
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ValueError(f"chunk must be a positive number of clips, got {chunk!r}")
        self.dataset, self.chunk = dataset, int(chunk)

    def __iter__(self) -> Iterator[dict]:
        rank, world, worker, workers = _shard()
        ds, n = self.dataset, self.chunk
        for c in itertools.count(worker, workers):
            indices = [ds.start + rank + world * p for p in range(c * n, (c + 1) * n)]  # this rank's positions
            rendered = [ds.render(i) for i in indices]
            # float in [-1, 1] here, in the worker: the main process only takes views
            flat = torch.from_numpy(np.concatenate([f.reshape(-1) for f, _ in rendered])).float() / 127.5 - 1.0
            yield {"buffer": flat,
                   "shapes": [f.shape for f, _ in rendered], "captions": [cap for _, cap in rendered],
                   "indices": indices}


def unchunk(chunk: dict) -> Iterator[dict]:
    """WorldChunks' chunk -> WorldDataset items ({video (3, T, H, W) in [-1, 1], caption, index})."""
    offset = 0
    for shape, caption, index in zip(chunk["shapes"], chunk["captions"], chunk["indices"]):
        size = int(np.prod(shape))
        frames = chunk["buffer"][offset : offset + size].view(*shape)
        offset += size
        yield {"video": frames.permute(3, 0, 1, 2), "caption": caption, "index": int(index)}


# ---------------------------------------------------------------------------------------------
# A rendered folder

def _read_settings(meta_path: Path) -> dict | None:
    if not meta_path.exists():
        return None
    try:
        return json.loads(meta_path.read_text())["settings"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{meta_path} is not a valid world.json ({e}); remove it or choose another --out") from None


def _complete_clip(video_path: Path, gt_path: Path, num_frames: int) -> dict | None:
    """The ground truth of a clip an earlier run wrote, or None (logged, naming the file) when its
    JSON does not parse or its MP4 does not decode to `num_frames` frames: it is rendered again."""
    from spacetime.data.decode import decode

    try:
        gt = json.loads(gt_path.read_text())
        if not isinstance(gt, dict) or not isinstance(gt.get("captions"), dict) or gt.get("num_frames") != num_frames:
            raise ValueError("not this clip's ground truth")
    except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
        log.warning("%s is damaged (%s); rendering the clip again", gt_path, e)
        return None
    try:
        n = len(decode(video_path, rgb=False).times)
    except (OSError, ValueError) as e:  # VideoReadError is a ValueError and names the file
        log.warning("%s; rendering the clip again", e)
        return None
    if n != num_frames:
        log.warning("%s decodes to %d of its %d frames; rendering the clip again", video_path, n, num_frames)
        return None
    return gt


def write_world(
    out: str | os.PathLike,
    num_clips: int,
    *,
    split: str = "train",
    num_frames: int = 17,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    pix_fmt: str = "yuv444p",
    multishot: float = 0.0,
) -> Path:
    """Render clips 0..num_clips-1 of the stream (seed, split) into `out`:
    `clips/NNNNNN.mp4`, `clips/NNNNNN.json` (ground truth), `captions.jsonl`, `world.json`.

    Videos are 4:4:4 H.264 by default: training data keeps full colour resolution (see
    `spacetime.data.video.PIX_FMTS`); pass pix_fmt="yuv420p" for files every player shows.
    `multishot`: the share of clips cut into shots, as in `WorldDataset`.
    Interrupted runs resume: clips already complete in `out` are kept; clips past `num_clips` that
    an earlier run wrote are removed. A folder written with other settings, or a non-empty folder
    that is not a world folder, is refused unless `overwrite`. `multishot` > 0 with clips too short
    for a cut is refused.
    """
    from tqdm import tqdm

    from spacetime.data.video import PIX_FMTS, write_video

    check_clip_args(num_frames, height, width, fps)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(num_clips, bool) or not isinstance(num_clips, (int, np.integer)) or num_clips < 1:
        raise ValueError(f"num_clips must be a positive integer, got {num_clips!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    num_clips, seed = int(num_clips), int(seed)  # world.json holds plain ints (a numpy one is no JSON)
    if pix_fmt not in PIX_FMTS:
        raise ValueError(f"pix_fmt must be one of {PIX_FMTS}, got {pix_fmt!r}")
    out = Path(out)
    asked_pix_fmt = pix_fmt
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):  # write_video's fallback: record what is written
        pix_fmt = "yuv444p"
        log.warning("odd size %dx%d (WxH) cannot be 4:2:0; the clips are written yuv444p", width, height)
    settings = {
        "split": split, "num_frames": num_frames, "height": height, "width": width, "fps": fps, "seed": seed,
        "pix_fmt": pix_fmt,
    }
    if multishot:  # only then, so that single-shot folders keep their settings (and resume)
        settings["multishot"] = float(multishot)
    stream = WorldDataset(seed, split, num_frames, height, width, fps, multishot=multishot)
    if multishot > 0 and not can_cut(num_frames):  # the stream would make every clip single-shot
        least = next(n for n in itertools.count(num_frames) if can_cut(n))
        raise ValueError(
            f"--multishot {multishot:g} asks for cuts, but --num-frames {num_frames} leaves no room for one "
            f"(a cut falls on a frame 1 + 4k and every shot lasts at least 4 frames): use --num-frames "
            f"{least} or more, or --multishot 0"
        )
    meta_path = out / "world.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        old = _read_settings(meta_path)
        if old != settings and old == {**settings, "pix_fmt": asked_pix_fmt}:
            old = settings  # written before world.json recorded the 4:2:0 fallback: the same clips
        if old != settings and not overwrite:
            if old is None:
                raise ValueError(f"{out} is not empty and is not a world data set; choose another --out or pass --overwrite")
            raise ValueError(
                f"{out} holds a world data set made with other settings ({old}); choose another --out or pass --overwrite"
            )
        if old != settings:  # --overwrite: clips made with other settings are stale
            shutil.rmtree(out / "clips", ignore_errors=True)
    clips_dir = out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(meta_path, json.dumps({"format": "spacetime-world", "version": 1, "settings": settings}, indent=2))

    rows = []
    kept = 0
    for k in tqdm(range(num_clips), desc="world", unit="clip", disable=not progress):
        name = f"{k:06d}"
        video_path, gt_path = clips_dir / f"{name}.mp4", clips_dir / f"{name}.json"
        # complete from an earlier run (the GT is written last), unless a file is damaged
        gt = _complete_clip(video_path, gt_path, num_frames) if video_path.exists() and gt_path.exists() else None
        if gt is not None:
            kept += 1
        else:
            clip = stream.clip(k)
            write_video(clip.frames, video_path, fps=fps, pix_fmt=pix_fmt)
            gt = clip.ground_truth()
            gt["index"] = k
            atomic_write_text(gt_path, json.dumps(gt))
        rows.append(
            {
                "path": f"clips/{name}.mp4",
                "captions": gt["captions"],
                "num_frames": gt["num_frames"],
                "fps": gt["fps"],
                "height": gt["height"],
                "width": gt["width"],
                "ground_truth": f"clips/{name}.json",
            }
        )
    atomic_write_text(out / "captions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    if kept:
        log.info("kept %d clips already complete in %s", kept, out)
    # clips an earlier, longer run left past this one's count: listed nowhere now, they would pass
    # for uncaptioned videos of the folder. Only files of the world's own naming go.
    stale = sorted(
        p for p in clips_dir.iterdir()
        if (m := CLIP_FILE.fullmatch(p.name)) and int(m[1]) >= num_clips and p.is_file()
    )
    for p in stale:
        p.unlink()
    if stale:
        log.info("removed %d file(s) of clips past --num-clips %d from %s (an earlier run's)", len(stale), num_clips, clips_dir)
    return out
