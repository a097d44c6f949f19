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
    problems: list[str] = field(default_factory=list)  # what the timestamps or frame sizes show is lost
    listed: int = 0  # frames the container lists, when the whole stream was decoded...
    decoded: int = 0  # ...and how many of them decoded
    missing: float = 0.0  # seconds lost in gaps between the kept frames
    dropped: int = 0  # frames dropped because their timestamps go back

    @property
    def damage(self) -> str | None:
        """Why the decode was incomplete, or None."""
        why = [f"{len(self.errors)} packet(s) failed to decode ({self.errors[0]})"] if self.errors else []
        if self.decoded < self.listed:  # a cut may end at a packet boundary: only the count tells
            why.append(f"{self.decoded} of the {self.listed} frames the container lists decoded")
        if self.dropped:
            why.append(f"{self.dropped} frame(s) dropped whose timestamps go back")
        return "; ".join(why + self.problems) or None


def decode(
    path: str | os.PathLike,
    *,
    start: float = 0.0,
    end: float | None = None,
    max_frames: int | None = None,
    rgb: bool = True,
    pad: bool = False,
    max_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> Decoded:
    """The decoder behind `read_video` and the probe; `rgb=False` decodes without keeping pixels.
    `pad` also keeps the frame before `start` and the first at or after `end`: the frame nearest
    any time in [start, end] is then among those kept, however uneven the frame rate.
    `max_side`: a VideoReadError for frames larger than that a side, from the header, before any
    decoding. `size` (height, width): each frame is scaled to it as it is decoded (upright), so
    memory follows the size wanted, not the file's (`height`/`width` stay the file's)."""
    if not (math.isfinite(start) and start >= 0) or (end is not None and not end > start):
        raise ValueError(f"need 0 <= start < end, got start={start}, end={end}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    path = Path(path)
    seek = start > 0
    d = _decode(path, start, end, max_frames, rgb, seek, pad, threads=True, max_side=max_side, size=size)
    if seek and (not d.times or d.times[0] > start + (1e-4 if pad else 1.5 / d.fps)):
        seek = False  # the container cannot seek (or seeks past the point): decode from the beginning
        d = _decode(path, start, end, max_frames, rgb, seek, pad, threads=True, max_side=max_side, size=size)
    if d.damage:  # frame threading can drop the frames around damage: once more, one frame at a time
        d = max(
            d, _decode(path, start, end, max_frames, rgb, seek, pad, threads=False, max_side=max_side,
                    size=size), key=lambda x: len(x.times)
        )
    if not d.times:
        why = f" ({d.damage})" if d.damage else ""
        raise VideoReadError(f"{path}: no decodable frames" + (f" after {start:g} s" if start else "") + why)
    return d


# The demuxers a video or image file is read with. Not FFmpeg's whole set: playlists and scripts
# (concat, hls, dash, sdp) open other files or URLs named inside the file — a 30-byte "video" that
# lists itself exhausted the server's file handles — and only local files are read (protocol).
_IMAGE_PIPES = ("bmp dds dpx exr gif hdr j2k jpeg jpegls jpegxl pam pbm pcx pfm pgm pgmyuv phm png ppm psd qoi sgi "
                "sunrast tiff webp xbm xpm xwd").split()
FORMATS = ",".join(["mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "gif", "apng", "mpegts",
                    "flv", "live_flv", "mjpeg", "mpjpeg", "h264", "hevc", "h263", "m4v", "ivf", "av1", "obu", "ogg",
                    "asf", "mpeg", "mpegvideo", "yuv4mpegpipe", "nut", "mxf", "dv", "rm", "vc1", "image2",
                    "image2pipe", *(f"{p}_pipe" for p in _IMAGE_PIPES),
                    # audio and subtitles: read, so that such a file is named as having no video stream
                    "wav", "w64", "aiff", "mp3", "aac", "flac", "ac3", "amr", "srt", "ass", "webvtt"])
_OPEN_OPTIONS = {"format_whitelist": FORMATS, "protocol_whitelist": "file"}


def open_video(path: Path, max_side: int | None = None):
    """(container, its main video stream), or VideoReadError saying why not; `max_side`: refuse
    frames larger than that a side from the stream's header, before anything is decoded."""
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
        container = av.open(str(path), mode="r", options=_OPEN_OPTIONS)
    except Exception as e:  # noqa: BLE001 — whatever FFmpeg makes of a user's file, it is a read error
        if type(e).__name__ == "ArgumentError":  # what FFmpeg says of a format outside FORMATS
            raise VideoReadError(f"{path}: not a video or image format spacetime reads (playlists and scripts such "
                                 f"as ffconcat or HLS are refused) ({_why(e)})") from None
        raise VideoReadError(
            f"{path}: not a readable video: truncated, corrupt or not a video ({_why(e)})"
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: no video stream")
    # FFmpeg's own choice (as its player makes): a cover picture or thumbnail track that comes
    # first is passed over for the stream with the most frames and pixels
    stream = container.streams.best("video") or container.streams.video[0]
    w, h = stream.codec_context.width, stream.codec_context.height
    if max_side is not None and max(w, h) > max_side:  # a GIF's 8000x8000 screen of 1x1 frames: refused unread
        container.close()
        raise VideoReadError(f"{path}: {w}x{h} frames are over {max_side} pixels a side")
    return container, stream


def _decode(
    path: Path,
    start: float,
    end: float | None,
    max_frames: int | None,
    rgb: bool,
    seek: bool,
    pad: bool,
    threads: bool,
    max_side: int | None = None,
    size: tuple[int, int] | None = None,
) -> Decoded:
    container, stream = open_video(path, max_side)
    with container:
        stream.thread_type = "AUTO" if threads else "NONE"
        tb = stream.time_base or Fraction(1, 1)
        t0 = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        d = Decoded(fps=_stream_fps(stream))
        if seek:
            # lands on the keyframe at or before `start`; with `pad`, two frames before it, as TS
            # seeks are not exact and the frame before `start` is kept
            try:
                container.seek(int((t0 + start - (2 / d.fps if pad else 0)) / tb), stream=stream, backward=True)
            except Exception:  # noqa: BLE001
                return d
        n = 0
        shift = 0.0  # added to times after they restart (joined files), so they keep rising
        first = last = None  # the first and the previous frame's times
        before = None  # with `pad`: the last frame before `start`
        for frame in decoded_frames(container, stream, d.errors):
            # without timestamps the frame rate places the frame; after a seek nothing can
            t = frame.time - t0 if frame.time is not None else (None if seek else n / d.fps)
            n += 1
            if t is None:
                return Decoded(fps=d.fps)
            if last is not None and t + shift < last - 1e-4:
                if t + shift > first + 1e-4:  # out of order: damage
                    d.dropped += 1
                    continue
                # back to the start: files joined end to end (cat a.ts b.ts), played one after the other
                d.problems.append(f"timestamps restart at {last + 1 / d.fps:.3f} s (joined files?)")
                shift = last + 1 / d.fps - t
            t = last = t + shift
            first = t if first is None else first
            if t < start - 1e-4:
                before = (frame, t) if pad else None
                continue
            if before is not None:  # the frame shown at `start`
                if not _keep(d, *before, rgb, path, max_side, size):
                    return d
                before = None
            if end is not None and t >= end - 1e-4:
                if pad:
                    _keep(d, frame, t, rgb, path, max_side, size)
                return d
            if not _keep(d, frame, t, rgb, path, max_side, size):
                return d
            if max_frames is not None and len(d.times) >= max_frames:
                return d
        if not seek and end is None:  # the whole stream: frames the container lists may be missing
            d.listed, d.decoded = stream.frames, n
            if not stream.frames and d.times:  # MKV, WebM, TS list no count: the timestamps tell
                _check_times(d, _stream_duration(container, stream))
            if container.format.name == "mpegts" and (size := path.stat().st_size) % 188 and size % 192:
                # a transport stream is packets of 188 bytes (192 in M2TS) and has no index to miss:
                # a file cut short shows only by ending partway through one
                d.problems.append(f"the file ends partway through a transport-stream packet ({size} bytes is not a "
                                  "whole number of 188- or 192-byte packets): cut short")
        return d


def decoded_frames(container, stream, errors: list[str]):
    """The stream's frames in order, as FFmpeg decodes them; a damaged packet is noted in `errors`
    and skipped, and after MAX_BAD_PACKETS of them the file is given up on."""
    packets = container.demux(stream)
    while len(errors) < MAX_BAD_PACKETS:
        try:
            frames = next(packets).decode()
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001 — a damaged packet: note it, go on to the next
            errors.append(_why(e))
            continue
        yield from frames


def _keep(d: Decoded, frame, t: float, rgb: bool, path: Path, max_side: int | None = None,
          size: tuple[int, int] | None = None) -> bool:
    """Add `frame`, shown at `t`, to `d` (scaled to `size`, upright); False when the frame size
    changed (the frames before are kept)."""
    turns = frame.rotation // 90 if frame.rotation % 90 == 0 else 0  # counter-clockwise
    h, w = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
    if max_side is not None and max(h, w) > max_side:  # a stream whose header understated its size
        raise VideoReadError(f"{path}: {w}x{h} frames are over {max_side} pixels a side")
    if size is not None and rgb and (h, w) != tuple(size):
        # scaled before it becomes RGB: the file's full-size frames are never all held (turned
        # frames are scaled to the turned size, so they come out `size` once upright)
        th, tw = (size[1], size[0]) if turns % 2 else size
        fmt = frame.format
        alpha = fmt.has_palette or any(c.is_alpha for c in fmt.components)
        frame = frame.reformat(width=tw, height=th, format="rgba" if alpha else "rgb24", interpolation="AREA")
    if d.times and (h, w) != (d.height, d.width):
        d.problems.append(f"frame size changes from {d.width}x{d.height} to {w}x{h} (WxH) at {t:.3f} s; the "
                          "frames from there on are not read")
        return False
    if rgb:  # (H, W, 3), turned upright as players show it
        try:
            d.frames.append(np.ascontiguousarray(np.rot90(_to_rgb(frame), turns)))
        except Exception as e:  # noqa: BLE001 — a pixel format swscale cannot convert
            d.errors.append(_why(e))
            return True
    d.height, d.width = h, w
    d.times.append(t)
    return True


def _to_rgb(frame) -> np.ndarray:
    """uint8 (H, W, 3); a frame with transparency (alpha plane or palette) composited over black."""
    fmt = frame.format
    if not (fmt.has_palette or any(c.is_alpha for c in fmt.components)):
        return frame.to_ndarray(format="rgb24")
    rgba = frame.to_ndarray(format="rgba")
    return over_black(rgba[..., :3], rgba[..., 3:])


def over_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 colours (..., 3) composited by uint8 alpha (..., 1) over black, the one background
    transparency gets (docs/data.md): what is hidden under transparent pixels never shows."""
    return ((rgb.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def _stream_duration(container, stream) -> float | None:
    """The stream's duration (s) as the container gives it, or None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    # Matroska's per-track tag, "HH:MM:SS.nnnnnnnnn": where the track ends, its late start included
    tag = stream.metadata.get("DURATION", "")
    try:
        h, m, sec = tag.split(":")
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        return int(h) * 3600 + int(m) * 60 + float(sec) - start
    except ValueError:
        pass
    if len(container.streams) == 1:  # else audio may be what sets it
        return _container_duration(container)
    return None


def _container_duration(container) -> float | None:
    """The container's duration (s), or None. Matroska's (MKV, WebM) is where the file ends, counted
    from 0: a clip cut out with its timestamps kept (ffmpeg's segment muxer) starts late, and its
    length is that less the start."""
    if not container.duration:
        return None
    late = container.start_time and "matroska" in container.format.name
    return (container.duration - (container.start_time if late else 0)) / 1_000_000  # AV_TIME_BASE


def _check_times(d: Decoded, duration: float | None) -> None:
    """Note frames that timestamps show are lost, for containers that list no frame count: a cut
    (the frames end well before the duration the container gives) and gaps in a steady frame
    rate (a variable rate may hold a frame on purpose, so its gaps are not judged)."""
    steps = np.diff(d.times)
    typical = float(np.median(steps)) if len(steps) else 1 / d.fps
    steady = len(steps) >= 4 and typical > 0 and np.mean(np.abs(steps - typical) <= 0.1 * typical) >= 0.8
    slack = max(2.5 * typical, 0.25, 0.0 if steady or not len(steps) else float(steps.max()))
    if duration and d.times[-1] + typical < duration - slack:
        d.problems.append(f"the frames end at {d.times[-1] + typical:.3f} s of the {duration:.3f} s the container "
                          "gives")
    if not steady:
        return
    for i in np.flatnonzero(steps > 2.5 * typical):
        d.problems.append(f"a {steps[i]:.3f} s gap after {d.times[i]:.3f} s (about "
                          f"{round(steps[i] / typical) - 1} frames missing)")
        d.missing += float(steps[i] - typical)


def video_info(path: str | os.PathLike) -> dict:
    """What the container says, without decoding: `duration` (s, None when it does not say),
    `fps`, `frames` (0 when it does not say; 1 for an image file, as `read_video` reads it), `still`
    (one picture: an image file or a 1-frame video, whose fps means nothing). Cheap; used to pick a
    clip's start before decoding."""
    container, stream = open_video(Path(path))
    with container:
        fps = _stream_fps(stream)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = _container_duration(container)
        else:
            duration = stream.frames / fps if stream.frames else None
        # FFmpeg reads image files with its "image2" and "<codec>_pipe" demuxers, at a made-up 25 fps
        still = stream.frames == 1 or container.format.name == "image2" or container.format.name.endswith("_pipe")
        return {"duration": duration, "fps": fps, "frames": stream.frames or int(still), "still": still}


def _why(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 25.0  # FFmpeg's own fallback for streams that declare no rate
