"""Users' own videos as training data: a folder of videos and a captions file.

    my_videos/
      captions.jsonl      {"path": "clips/a.mp4", "caption": "a dog runs"}   (one JSON object per line)
                          {"path": "b.mp4", "captions": {"short": ..., "medium": ..., "detailed": ...}}
      (or captions.csv    path,caption)

The world's own folders (`spacetime world`) are in this format. Clips are resampled in time to a
target fps by timestamp (nearest source frame), and in space by the policy documented on
`FolderVideoDataset`.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spacetime.data.video import VideoReadError, frames_to_tensor, read_video

log = logging.getLogger(__name__)

CAPTION_FILES = ("captions.jsonl", "captions.csv")


def load_captions(directory: str | Path, strict: bool = False) -> list[dict]:
    """Entries {path (absolute), captions: {name: text}} of `directory`'s captions file.

    Malformed lines raise a ValueError naming the file and line. Entries naming missing files are
    skipped with a warning that counts them (or raise, with `strict`).
    """
    directory = Path(directory)
    found = [directory / n for n in CAPTION_FILES if (directory / n).exists()]
    if not found:
        raise FileNotFoundError(f"{directory}: no captions file; expected one of {', '.join(CAPTION_FILES)}")
    src = found[0]
    rows = _read_jsonl(src) if src.suffix == ".jsonl" else _read_csv(src)
    entries, missing = [], []
    for line, rel, captions in rows:
        path = (directory / rel).resolve()
        if not path.is_file():
            if strict:
                raise FileNotFoundError(f"{src}:{line}: names {rel!r}, which does not exist")
            missing.append(rel)
            continue
        entries.append({"path": path, "captions": captions, "line": line})
    if missing:
        log.warning("%s: skipped %d entries naming missing files (first: %s)", src, len(missing), missing[0])
    return entries


def _read_jsonl(src: Path) -> list[tuple[int, str, dict]]:
    rows = []
    for line_no, line in enumerate(src.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{src}:{line_no}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("path"), str) or not obj["path"]:
            raise ValueError(f"{src}:{line_no}: each line needs a \"path\" string")
        rows.append((line_no, obj["path"], _captions_of(obj, f"{src}:{line_no}")))
    return rows


def _captions_of(obj: dict, where: str) -> dict[str, str]:
    caps = obj.get("captions")
    if isinstance(caps, dict) and caps and all(isinstance(v, str) for v in caps.values()):
        return dict(caps)
    if isinstance(obj.get("caption"), str):
        return {"caption": obj["caption"]}
    raise ValueError(f"{where}: needs a \"caption\" string or a \"captions\" object of strings")


def _read_csv(src: Path) -> list[tuple[int, str, dict]]:
    with src.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "caption"} <= set(reader.fieldnames):
            raise ValueError(f"{src}:1: the header must name the columns path,caption; got {reader.fieldnames}")
        rows = []
        for row in reader:
            line = reader.line_num
            if not row.get("path") or row.get("caption") is None:
                raise ValueError(f"{src}:{line}: needs a path and a caption")
            rows.append((line, row["path"], {"caption": row["caption"]}))
    return rows


def sample_frame_indices(n_src: int, src_fps: float, num_frames: int, fps: float | None, start: float) -> np.ndarray:
    """Source frame indices for `num_frames` frames at `fps` from time `start` (nearest frame in
    time); a clip shorter than needed repeats its last frame."""
    if fps is None:
        idx = np.arange(num_frames) + round(start * src_fps)
    else:
        idx = np.floor((start + np.arange(num_frames) / fps) * src_fps + 1e-6).astype(int)
    return np.clip(idx, 0, n_src - 1)


def resize_and_crop(video: torch.Tensor, size: tuple[int, int] | None, multiple: int = 8) -> torch.Tensor:
    """(3, T, H, W) -> (3, T, h, w). With `size`: resize (antialiased) so the frame covers it,
    then centre-crop. With None: keep the native size, centre-cropped down to a multiple."""
    _, _, h, w = video.shape
    if size is None:
        th, tw = max(multiple, h - h % multiple), max(multiple, w - w % multiple)
        if th > h or tw > w:  # smaller than one multiple: scale up to it
            return resize_and_crop(video, (th, tw), multiple)
    else:
        th, tw = size
        scale = max(th / h, tw / w)
        if scale != 1:
            nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
            video = F.interpolate(video.permute(1, 0, 2, 3), size=(nh, nw), mode="bilinear", antialias=True,
                                  align_corners=False).permute(1, 0, 2, 3).clamp(-1, 1)
            h, w = nh, nw
    top, left = (h - th) // 2, (w - tw) // 2
    return video[:, :, top : top + th, left : left + tw]


class FolderVideoDataset(torch.utils.data.Dataset):
    """Clips from a folder of videos: dicts with `video` float (3, T, H, W) in [-1, 1], `caption`,
    `path`.

    Time: `num_frames` frames at `fps` (None keeps the source rate), from a start drawn uniformly
    (seeded by index and `seed`, so an epoch is reproducible) or the beginning (`random_start=False`);
    a video shorter than the clip repeats its last frame. Space: with `size=(H, W)` the frame is
    resized to cover it and centre-cropped (aspect kept, nothing stretched); with `size=None` the
    native size is kept, centre-cropped down to a multiple of 8. A video that fails to decode is
    skipped (the next one is used) and counted in `self.skipped`.
    """

    def __init__(
        self,
        directory: str | Path,
        num_frames: int = 17,
        fps: float | None = 8.0,
        size: tuple[int, int] | None = (64, 64),
        seed: int = 0,
        random_start: bool = True,
        caption: str = "random",
    ):
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")
        self.entries = load_captions(directory)
        if not self.entries:
            raise ValueError(f"{directory}: the captions file names no existing video")
        self.num_frames, self.fps, self.size = num_frames, fps, size
        self.seed, self.random_start, self.caption = seed, random_start, caption
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> dict:
        entry = self.entries[index]
        rng = np.random.default_rng([self.seed, index])
        frames, src_fps = read_video(entry["path"])
        duration = frames.shape[0] / src_fps
        need = (self.num_frames - 1) / (self.fps or src_fps)
        start = rng.uniform(0, max(0.0, duration - need - 1 / src_fps)) if self.random_start else 0.0
        idx = sample_frame_indices(frames.shape[0], src_fps, self.num_frames, self.fps, start)
        video = resize_and_crop(frames_to_tensor(frames[idx]), self.size)
        caps = entry["captions"]
        if self.caption in caps:
            text = caps[self.caption]
        else:
            text = caps[sorted(caps)[int(rng.integers(len(caps)))]]
        return {"video": video, "caption": text, "path": str(entry["path"])}

    def __getitem__(self, index: int) -> dict:
        for k in range(len(self.entries)):
            i = (index + k) % len(self.entries)
            try:
                return self.load(i)
            except VideoReadError as e:
                self.skipped += 1
                log.warning("skipping %s", e)
        raise VideoReadError(f"no video in the folder could be decoded ({self.skipped} failures)")
