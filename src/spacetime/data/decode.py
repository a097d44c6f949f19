"""The decoder behind `read_video`, the folder data set and the probe: PyAV, hardened for users'
files. Whatever FFmpeg makes of a file becomes a `VideoReadError` naming it, or frames; a damaged
file yields the frames that decode and says what is missing; frames carry their timestamps, so
clips are resampled by time; a window of a long video is decoded from the keyframe before it.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_BAD_PACKETS = 16  # a file this damaged is given up on instead of decoded to its end


class VideoReadError(ValueError):
    """A file that is missing, empty, corrupt or holds no decodable video; names the file."""


@dataclass
class Decoded:
    """What `decode` found. `times` are seconds from the stream's start, one per kept frame."""

    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    fps: float = 0.0
    height: int = 0
    width: int = 0
    errors: list[str] = field(default_factory=list)  # packets or frames that failed to decode
    listed: int = 0  # frames the container lists, when the whole stream was decoded...
    decoded: int = 0  # ...and how many of them decoded

    @property
    def damage(self) -> str | None:
        """Why the decode was incomplete, or None."""
        why = [f"{len(self.errors)} packet(s) failed to decode ({self.errors[0]})"] if self.errors else []
        if self.decoded < self.listed:  # a cut may end at a packet boundary: only the count tells
            why.append(f"{self.decoded} of the {self.listed} frames the container lists decoded")
        return "; ".join(why) or None


def decode(
    path: str | os.PathLike,
    *,
    start: float = 0.0,
    end: float | None = None,
    max_frames: int | None = None,
    rgb: bool = True,
) -> Decoded:
    """The decoder behind `read_video` and the probe; `rgb=False` decodes without keeping pixels."""
    if not (math.isfinite(start) and start >= 0) or (end is not None and not end > start):
        raise ValueError(f"need 0 <= start < end, got start={start}, end={end}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    path = Path(path)
    seek = start > 0
    d = _decode(path, start, end, max_frames, rgb, seek, threads=True)
    if seek and (not d.times or d.times[0] > start + 1.5 / d.fps):
        seek = False  # the container cannot seek (or seeks past the point): decode from the beginning
        d = _decode(path, start, end, max_frames, rgb, seek, threads=True)
    if d.damage:  # frame threading can drop the frames around damage: once more, one frame at a time
        d = max(
            d, _decode(path, start, end, max_frames, rgb, seek, threads=False), key=lambda x: len(x.times)
        )
    if not d.times:
        why = f" ({d.damage})" if d.damage else ""
        raise VideoReadError(f"{path}: no decodable frames" + (f" after {start:g} s" if start else "") + why)
    return d


def _open(path: Path):
    """(container, its first video stream), or VideoReadError saying why not."""
    import av

    if not path.exists():
        raise VideoReadError(f"{path}: no such file")
    if not path.is_file():  # a directory, or a FIFO that would block forever
        raise VideoReadError(
            f"{path}: is {'a directory' if path.is_dir() else 'not a regular file'}, not a video"
        )
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except Exception as e:  # noqa: BLE001 — whatever FFmpeg makes of a user's file, it is a read error
        raise VideoReadError(
            f"{path}: not a readable video: truncated, corrupt or not a video ({_why(e)})"
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: no video stream")
    return container, container.streams.video[0]


def _decode(
    path: Path, start: float, end: float | None, max_frames: int | None, rgb: bool, seek: bool, threads: bool
) -> Decoded:
    container, stream = _open(path)
    with container:
        stream.thread_type = "AUTO" if threads else "NONE"
        tb = stream.time_base or Fraction(1, 1)
        t0 = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        d = Decoded(fps=_stream_fps(stream))
        if seek:
            try:  # lands on the keyframe at or before `start`; frames before it are dropped below
                container.seek(int((t0 + start) / tb), stream=stream, backward=True)
            except Exception:  # noqa: BLE001
                return d
        n = 0
        packets = container.demux(stream)
        while len(d.errors) < MAX_BAD_PACKETS:
            try:
                frames = next(packets).decode()
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 — a damaged packet: note it, go on to the next
                d.errors.append(_why(e))
                continue
            for frame in frames:
                # without timestamps the frame rate places the frame; after a seek nothing can
                t = frame.time - t0 if frame.time is not None else (None if seek else n / d.fps)
                n += 1
                if t is None:
                    return Decoded(fps=d.fps)
                if t < start - 1e-4:
                    continue
                turns = frame.rotation // 90 if frame.rotation % 90 == 0 else 0  # counter-clockwise
                h, w = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
                if end is not None and t >= end - 1e-4:
                    return d
                if d.times and (h, w) != (d.height, d.width):
                    log.warning("%s: frame size changes at %.3f s; keeping the frames before", path, t)
                    return d
                if rgb:  # (H, W, 3), turned upright as players show it
                    try:
                        d.frames.append(
                            np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns))
                        )
                    except Exception as e:  # noqa: BLE001 — a pixel format swscale cannot convert
                        d.errors.append(_why(e))
                        continue
                d.height, d.width = h, w
                d.times.append(t)
                if max_frames is not None and len(d.times) >= max_frames:
                    return d
        if not seek and end is None:  # the whole stream: frames the container lists may be missing
            d.listed, d.decoded = stream.frames, n
        return d


def video_info(path: str | os.PathLike) -> dict:
    """What the container says, without decoding: `duration` (s, None when it does not say),
    `fps`, `frames` (0 when it does not say). Cheap; used to pick a clip's start before decoding."""
    container, stream = _open(Path(path))
    with container:
        fps = _stream_fps(stream)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        else:
            duration = stream.frames / fps if stream.frames else None
        return {"duration": duration, "fps": fps, "frames": stream.frames or 0}


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 25.0  # FFmpeg's own fallback for streams that declare no rate
