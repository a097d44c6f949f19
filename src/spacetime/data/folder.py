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
import io
import json
import logging
import math
import numbers
import os
import unicodedata
from pathlib import Path

import numpy as np
import torch

from spacetime.data.decode import VideoReadError, decode, video_info
from spacetime.data.video import frames_to_tensor

log = logging.getLogger(__name__)

CAPTION_FILES = ("captions.jsonl", "captions.csv")


def find_captions_file(directory: str | Path) -> Path | None:
    """`directory`'s captions file (captions.jsonl before captions.csv), or None."""
    found = [Path(directory) / n for n in CAPTION_FILES if (Path(directory) / n).is_file()]
    if len(found) > 1:
        log.warning("%s: both %s exist; using %s", directory, " and ".join(CAPTION_FILES), found[0].name)
    return found[0] if found else None


def on_disk(directory: Path, rel: str) -> str:
    """`rel` as the folder spells it: a name in the other Unicode normalization (macOS writes "é" as
    "e" and a combining accent, NFD; most scripts write NFC) names the file, as it would on macOS;
    and a captions file written on Windows ("clips\\a.mp4") names clips/a.mp4 where no file has
    the backslash in its name."""
    if os.path.lexists(directory / rel):
        return rel
    spellings = [rel, rel.replace("\\", "/")] if "\\" in rel and os.sep == "/" else [rel]
    for spelling in spellings:
        for other in (spelling, unicodedata.normalize("NFC", spelling), unicodedata.normalize("NFD", spelling)):
            if other != rel and os.path.lexists(directory / other):
                return other
    return rel


def is_file(path: Path) -> bool:
    """`path.is_file()`, False for a name the system refuses (too long) rather than an OSError."""
    try:
        return path.is_file()
    except OSError:
        return False


def _checked_path(rel: str, where: str) -> str:
    # a NUL or a lone surrogate (JSON's "\ud800") cannot be in a file name: os calls would fail naming neither
    if "\x00" in rel:
        raise ValueError(f"{where}: the path {rel!r} holds a NUL character, which no file name can")
    try:
        os.fsencode(rel)
    except UnicodeEncodeError:
        raise ValueError(f"{where}: the path {rel!r} is not a file name this system can spell") from None
    return rel


def read_caption_rows(src: Path) -> list[tuple[int, str, dict[str, str]]]:
    """(line, relative path, {name: caption}) per entry; a malformed line is a ValueError naming
    the file and line. Extra fields are ignored."""
    return _read_jsonl(src) if src.suffix == ".jsonl" else _read_csv(src)


def folder_relative(directory: Path, rel: str) -> str:
    """A captioned path as the folder's listing spells it: in the file's own Unicode normalization, and
    an absolute path or one through ".." that names a file inside the folder as that file's relative
    path; a path outside the folder as written (normalized)."""
    rel = on_disk(directory, rel)
    full = Path(os.path.normpath(directory.absolute() / rel))
    try:
        return full.relative_to(os.path.normpath(directory.absolute())).as_posix()
    except ValueError:
        return Path(os.path.normpath(rel)).as_posix()


def caption_notes(
    rows: list[tuple[int, str, dict[str, str]]], directory: Path | None = None
) -> tuple[dict[str, list[int]], list[tuple[str, int]]]:
    """What a captions file's rows may hold by mistake, legal but worth saying: paths named on more
    than one line (path -> lines; each entry is a sample of its own, with its own clip window and
    caption) and entries with an empty caption ((path, line); one trains as the unconditional
    prompt, which prompt dropout already provides). With `directory`, two spellings of one file
    (absolute, through "..", in the other Unicode normalization) are one path."""
    lines: dict[str, list[int]] = {}
    empty = []
    for line, rel, captions in rows:
        rel = Path(os.path.normpath(rel)).as_posix() if directory is None else folder_relative(directory, rel)
        lines.setdefault(rel, []).append(line)
        if any(not c.strip() for c in captions.values()):
            empty.append((rel, line))
    return {rel: ls for rel, ls in lines.items() if len(ls) > 1}, empty


def load_captions(directory: str | Path, strict: bool = False) -> list[dict]:
    """Entries {path (absolute), captions: {name: text}, line} of `directory`'s captions file.

    Entries naming missing files are skipped with a warning that counts them (or raise
    FileNotFoundError naming the file and line, with `strict`). Paths named more than once and
    empty captions are kept, with a warning (`caption_notes`).
    """
    directory = Path(directory)
    src = find_captions_file(directory)
    if src is None:
        raise FileNotFoundError(f"{directory}: no captions file; expected one of {', '.join(CAPTION_FILES)}")
    from spacetime.world.dataset import rank_and_world

    rows = read_caption_rows(src)
    # a warning about the whole folder is the same on every rank: rank 0 says it, the others at DEBUG
    level = logging.WARNING if rank_and_world()[0] == 0 else logging.DEBUG
    repeated, empty = caption_notes(rows, directory)
    if repeated:
        log.log(level, "%s: %d videos are named by more than one entry (each entry is a sample of its own): %s", src,
                len(repeated), ", ".join(f"{rel!r} (lines {', '.join(map(str, ls))})" for rel, ls in list(repeated.items())[:5]))
    if empty:
        log.log(level, "%s: %d entries have an empty caption, which trains as the unconditional prompt: %s", src,
                len(empty), ", ".join(f"{rel!r} (line {line})" for rel, line in empty[:5]))
    entries, missing = [], []
    for line, rel, captions in rows:
        path = (directory / on_disk(directory, rel)).resolve()
        if not is_file(path):
            # os.path's tests are False, not an OSError, for a name the system refuses
            kind = "a directory" if os.path.isdir(path) else "not a regular file" if os.path.exists(path) else None
            if strict:
                raise FileNotFoundError(f"{src}:{line}: names {rel!r}, which "
                                        + (f"is {kind}, not a video" if kind else "does not exist"))
            missing.append(f"{rel!r} (line {line}{', ' + kind if kind else ''})")
            continue
        entries.append({"path": path, "captions": captions, "line": line})
    if missing:
        log.log(level, "%s: skipped %d entries naming missing files: %s", src, len(missing), ", ".join(missing[:5]))
    return entries


def read_text(src: Path) -> str:
    """A captions (or prompts) file's text: UTF-8, with or without a byte-order mark, or UTF-16 with one (what
    Windows tools write as "Unicode"); other bytes are a ValueError naming the line, never replaced
    in silence (a cp1252 "café.mp4" would name a file that does not exist). Lines end at "\n": a
    Windows "\r\n" and an old Mac's lone "\r" are made one (the whole file was one line)."""
    text = _decoded(src)
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _decoded(src: Path) -> str:
    raw = src.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise ValueError(f"{src}: not valid UTF-16 text ({e.reason}); save it as UTF-8") from None
    head = raw[:256]
    if head and head.count(0) * 4 >= len(head):  # ASCII in UTF-16 is every other byte NUL
        raise ValueError(f"{src}:1: UTF-16 text without a byte-order mark (or not text at all); save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark (some editors write one) is not part of the first line
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{src}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}; saved as Latin-1 or "
                         "Windows-1252?); save the file as UTF-8") from None


def _read_jsonl(src: Path) -> list[tuple[int, str, dict[str, str]]]:
    rows = []
    # lines end at "\n" only: JSON strings may hold U+2028 or U+0085, which str.splitlines() breaks at
    for line_no, line in enumerate(read_text(src).split("\n"), 1):
        if not line.strip():
            continue
        # a JSON array, or an object spread over lines (pretty-printed), is the commonest wrong shape
        hint = ("; the file holds one JSON object per line (JSON Lines), not one JSON document"
                if line_no == 1 and line.strip() in ("{", "[") or line.lstrip().startswith("[{") else "")
        try:
            obj = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise ValueError(f"{src}:{line_no}: not valid JSON ({e.msg.removesuffix(' at')} at column {e.colno}){hint}") from None
        except (ValueError, RecursionError) as e:  # an integer of over 4300 digits, arrays nested too deep
            raise ValueError(f"{src}:{line_no}: not valid JSON ({e})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("path"), str) or not obj["path"]:
            raise ValueError(f'{src}:{line_no}: each line needs a "path" string{hint}')
        rows.append((line_no, _checked_path(obj["path"], f"{src}:{line_no}"), _captions_of(obj, f"{src}:{line_no}")))
    return rows


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # json keeps the last of a repeated key: {"caption": "a", "caption": "b"} would drop a caption in silence
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"the key {key!r} appears more than once in one object")
    return obj


def _captions_of(obj: dict, where: str) -> dict[str, str]:
    caps = obj.get("captions")
    if isinstance(caps, dict) and caps and all(isinstance(v, str) for v in caps.values()):
        return dict(caps)
    if isinstance(obj.get("caption"), str):
        return {"caption": obj["caption"]}
    raise ValueError(f'{where}: needs a "caption" string or a "captions" object of strings')


def _read_csv(src: Path) -> list[tuple[int, str, dict[str, str]]]:
    text = read_text(src)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))  # a caption as long as JSONL allows (the default stops at 128 KiB)
    done = 1  # the lines read so far: the header's, then each row's
    try:
        with io.StringIO(text, newline="") as f:
            # strict: a quote opened and never closed is an error, not a caption that swallows the rest of the file
            reader = csv.DictReader(f, strict=True)
            if reader.fieldnames is None or not {"path", "caption"} <= set(reader.fieldnames):
                raise ValueError(
                    f"{src}:1: the header must name the columns path,caption; got {reader.fieldnames}"
                )
            rows = []
            for row in reader:
                done = reader.line_num
                # the line the row begins on: a quoted caption may span lines, and blank lines are passed over
                fields = [v for v in row.values() if isinstance(v, str)] + row.get(None, [])
                start = done - sum(v.count("\n") for v in fields)  # read_text ends every line with "\n"
                if not row.get("path") or row.get("caption") is None:
                    raise ValueError(f"{src}:{start}: needs a path and a caption")
                if None in row:  # DictReader's key for the fields past the header's: a caption cut at a comma
                    raise ValueError(f"{src}:{start}: {len(reader.fieldnames) + len(row[None])} fields, but the header "
                                     f"names {len(reader.fieldnames)}; put a caption that holds a comma in quotes")
                rows.append((start, _checked_path(row["path"], f"{src}:{start}"), {"caption": row["caption"]}))
    except csv.Error as e:
        lines = text.split("\n")
        start = next((n for n in range(done, len(lines)) if lines[n].strip()), done) + 1  # the next row's first line
        raise ValueError(f'{src}:{start}: not valid CSV ({e}); a quoted field must end with a quote, and a quote '
                         'inside one is written twice ("")') from None
    finally:
        csv.field_size_limit(limit)
    return rows


def sample_indices(times: np.ndarray, start: float, num_frames: int, fps: float | None) -> np.ndarray:
    """Indices into frames shown at `times` (s, ascending) for `num_frames` frames from `start`:
    at `fps`, the frame nearest each time start + k/fps (the earlier one on a tie); with None,
    consecutive frames. Past the end, the last frame repeats."""
    times = np.asarray(times, dtype=np.float64)
    if fps is None:
        idx = int(np.searchsorted(times, start - 1e-6)) + np.arange(num_frames)
    else:
        targets = start + np.arange(num_frames) / fps
        right = np.clip(np.searchsorted(times, targets), 0, len(times) - 1)
        left = np.maximum(right - 1, 0)
        idx = np.where(np.abs(times[left] - targets) <= np.abs(times[right] - targets) + 1e-9, left, right)
    return np.clip(idx, 0, len(times) - 1)


def resize_and_crop(frames: np.ndarray, size: tuple[int, int] | None, multiple: int = 8) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, h, w, 3). With `size=(h, w)`: scale so the frame covers it (aspect
    kept), then take the centre. With None: the native size, centre-cropped down to a multiple
    (scaled up to one multiple when smaller)."""
    from PIL import Image

    _, h, w, _ = frames.shape
    if size is None:
        th, tw = max(multiple, h - h % multiple), max(multiple, w - w % multiple)
        if th <= h and tw <= w:
            top, left = (h - th) // 2, (w - tw) // 2
            return frames[:, top : top + th, left : left + tw]
    else:
        th, tw = size
    scale = max(th / h, tw / w)
    bw, bh = tw / scale, th / scale  # the source box that scales onto the target, centred
    box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
    # PIL's resampling widens its kernel when shrinking: antialiased, no aliasing of fine detail
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((tw, th), Image.BILINEAR, box=box)) for f in frames]
    )


class FolderVideoDataset(torch.utils.data.Dataset):
    """Clips from a folder of videos: dicts with `video` float (3, T, H, W) in [-1, 1], `caption`,
    `path`.

    Time: `num_frames` frames at `fps` (nearest source frame by timestamp; None keeps the source
    rate), from a start drawn uniformly (seeded by `seed`, the epoch and the index, so a run is
    reproducible; `random_start=False` starts at 0). Only that window is decoded. A video shorter
    than the clip repeats its last frame. Space: with `size=(H, W)` the frame is scaled to cover it
    and centre-cropped (aspect kept, nothing stretched); with None the native size is kept,
    centre-cropped down to a multiple of 8. Captions: `caption` names the length to use ("short",
    "detailed"...); "random", or a name an entry lacks, draws among its lengths (seeded).

    A video that fails to decode (after `retries` more tries) is skipped (the next index is used)
    and remembered in `broken` (path -> reason); `skipped` counts them. With `max_bad_fraction`,
    more broken videos than that share of the folder stop with a VideoReadError saying so. With
    DataLoader workers each worker keeps its own; a `quiet` copy only records (the training
    streams read through one and tell the training process's dataset, which warns and stops).
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
        max_bad_fraction: float | None = None,
        retries: int = 1,
    ):
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be an integer >= 1, got {num_frames!r}")
        if fps is not None and not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number or None (the source rate), got {fps!r}")
        if size is not None and not (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(s, numbers.Integral) and s > 0 for s in size)
        ):
            raise ValueError(f"size must be (height, width) in positive pixels or None, got {size!r}")
        self.entries = load_captions(directory)
        if not self.entries:
            raise ValueError(f"{directory}: the captions file names no existing video")
        self.num_frames, self.fps = num_frames, fps
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.seed, self.random_start, self.caption = seed, random_start, caption
        if max_bad_fraction is not None and not 0 <= max_bad_fraction <= 1:
            raise ValueError(f"max_bad_fraction must be in [0, 1] or None, got {max_bad_fraction!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        self.max_bad_fraction, self.retries = max_bad_fraction, retries
        self.epoch = 0
        self.broken: dict[str, str] = {}
        self.unreadable: set[str] = set()  # the paths in `broken` that failed to decode
        self.quiet = False

    @property
    def skipped(self) -> int:
        return len(self.broken)

    def set_epoch(self, epoch: int) -> None:
        """Draw other starts and caption lengths in another epoch (as DistributedSampler does)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> dict:
        """Item `index`, or VideoReadError."""
        entry = self.entries[index]
        path = entry["path"]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        info = video_info(path)
        step = 1 / (self.fps or info["fps"])
        span = (self.num_frames - 1) * step
        start = 0.0
        if self.random_start and info["duration"]:
            start = float(rng.uniform(0, max(0.0, info["duration"] - span - 1 / info["fps"])))
        try:  # padded by a frame either side: the nearest frame to each time is among those decoded
            d = decode(path, start=start, end=start + span + step, pad=True)
        except VideoReadError:
            if start == 0:
                raise
            start = 0.0  # the container overstated its duration: take the clip from the start
            d = decode(path, end=span + step, pad=True)
        idx = sample_indices(np.asarray(d.times), start, self.num_frames, self.fps)
        frames = resize_and_crop(np.stack([d.frames[i] for i in idx]), self.size)
        caps = entry["captions"]
        name = self.caption if self.caption in caps else sorted(caps)[int(rng.integers(len(caps)))]
        return {"video": frames_to_tensor(frames), "caption": caps[name], "path": str(path), "index": index}

    def __getitem__(self, index: int) -> dict:
        n = len(self.entries)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} videos")
        for k in range(n):
            i = (index + k) % n
            if str(self.entries[i]["path"]) in self.broken:
                continue
            for attempt in range(self.retries + 1):  # a bounded retry: a network file system may hiccup
                try:
                    return self.load(i)
                except VideoReadError as e:
                    error = e
            self.skip(str(self.entries[i]["path"]), str(error))
        raise self.none_left()

    def skip(self, path: str, reason: str) -> None:
        """Remember `path` as broken (it is not read again) and say so; past `max_bad_fraction` of the
        folder, stop with a VideoReadError. A `quiet` dataset only remembers."""
        self.broken[path] = reason
        self.unreadable.add(path)
        if self.quiet:
            return
        log.warning("skipping a broken video (%d so far): %s", len(self.broken), reason)
        n = len(self.entries)
        if self.max_bad_fraction is not None and len(self.broken) > self.max_bad_fraction * n:
            raise VideoReadError(
                f"{len(self.broken)} of {n} videos are broken, more than max_bad_fraction={self.max_bad_fraction}; "
                f"last: {reason}. Fix or drop them (spacetime data probe lists them), or raise the limit")

    def none_left(self) -> VideoReadError:
        """The error for a folder whose every video is in `broken`, with the reasons recorded."""
        # `broken` also holds videos others found unusable (DiT training: under one latent patch at native
        # size), which decode fine: the reasons say which is which
        reasons = "; ".join(list(self.broken.values())[:3]) + ("; ..." if len(self.broken) > 3 else "")
        if len(self.unreadable) == len(self.broken):
            return VideoReadError(f"no video in the folder could be decoded ({len(self.broken)} broken): {reasons}")
        return VideoReadError(f"no video in the folder can be used ({len(self.unreadable)} broken, "
                              f"{len(self.broken) - len(self.unreadable)} unusable): {reasons}")
